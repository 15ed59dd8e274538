// A small incremental RESP2 reply reader for the benchmark clients (not the broker's parser).
// Values: simple string → { type: '+', value }, error → { type: '-', value }, integer →
// { type: ':', value: number }, bulk → Buffer (a copy) or null, array → array or null.
// A value that is not complete yet is re-read from its start when more bytes arrive; replies
// here are small, so that costs little and keeps the code short.

const CR = 13;

/** Reads one value at `pos`; returns `[value, nextPos]` or `undefined` when incomplete. */
function readValue(buf, pos) {
  if (pos >= buf.length) return undefined;
  const type = buf[pos];
  const lineEnd = buf.indexOf(CR, pos + 1);
  if (lineEnd === -1 || lineEnd + 1 >= buf.length) return undefined;
  const next = lineEnd + 2;
  switch (type) {
    case 0x2b: // +
      return [{ type: '+', value: buf.latin1Slice(pos + 1, lineEnd) }, next];
    case 0x2d: // -
      return [{ type: '-', value: buf.toString('utf8', pos + 1, lineEnd) }, next];
    case 0x3a: // :
      return [{ type: ':', value: Number(buf.latin1Slice(pos + 1, lineEnd)) }, next];
    case 0x24: { // $
      const len = Number(buf.latin1Slice(pos + 1, lineEnd));
      if (len < 0) return [null, next];
      if (next + len + 2 > buf.length) return undefined;
      return [Buffer.from(buf.subarray(next, next + len)), next + len + 2];
    }
    case 0x2a: { // *
      const count = Number(buf.latin1Slice(pos + 1, lineEnd));
      if (count < 0) return [null, next];
      const items = new Array(count);
      let p = next;
      for (let i = 0; i < count; i++) {
        const r = readValue(buf, p);
        if (r === undefined) return undefined;
        items[i] = r[0];
        p = r[1];
      }
      return [items, p];
    }
    case 0x5f: // _ (RESP3 null, in case)
      return [null, next];
    default:
      throw new Error(`RESP reader: unexpected type byte 0x${type.toString(16)} at ${pos}: ${JSON.stringify(buf.latin1Slice(pos, Math.min(buf.length, pos + 40)))}`);
  }
}

/** Feeds socket chunks, calls `onReply(value)` for every complete reply, in order. */
export class RespReader {
  #pending = null;
  #onReply;

  constructor(onReply) {
    this.#onReply = onReply;
  }

  push(chunk) {
    const buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    let pos = 0;
    for (;;) {
      const r = readValue(buf, pos);
      if (r === undefined) break;
      pos = r[1];
      this.#onReply(r[0]);
    }
    this.#pending = pos < buf.length ? buf.subarray(pos) : null;
  }
}

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(...parts) {
  const bufs = parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(String(p))));
  let head = `*${bufs.length}\r\n`;
  const out = [];
  for (const b of bufs) {
    out.push(Buffer.from(`${head}$${b.length}\r\n`, 'latin1'), b);
    head = '\r\n';
  }
  out.push(Buffer.from('\r\n', 'latin1'));
  return Buffer.concat(out);
}
