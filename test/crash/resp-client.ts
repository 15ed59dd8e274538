/**
 * A minimal pipelining RESP2 client for the crash suite: it must tell exactly which commands
 * were answered before the server died, which a client library with retries and reconnects
 * would blur.
 */
import net from 'node:net';

export type Reply = string | number | Buffer | null | Reply[] | Error;

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

export class MiniRespClient {
  readonly #socket: net.Socket;
  readonly #pending: Pending[] = [];
  #buf: Buffer = Buffer.alloc(0);
  #closed = false;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.#socket = net.connect(port, '127.0.0.1');
    this.#socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', () => resolve());
      this.#socket.once('error', reject);
    });
    this.#socket.on('data', (d: Buffer) => this.#onData(d));
    this.#socket.on('error', () => {});
    this.#socket.on('close', () => {
      this.#closed = true;
      const err = new Error('connection closed');
      for (const p of this.#pending.splice(0)) p.reject(err);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one command; resolves with its reply (an Error object for `-ERR`), rejects if the connection dies first. */
  send(...args: (string | Buffer | number)[]): Promise<Reply> {
    if (this.#closed) return Promise.reject(new Error('connection closed'));
    const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
      parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    this.#socket.write(Buffer.concat(parts));
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    for (;;) {
      const r = parseReply(this.#buf, 0);
      if (r === undefined) return;
      this.#buf = this.#buf.subarray(r.end);
      const p = this.#pending.shift();
      if (p !== undefined) p.resolve(r.value);
    }
  }
}

function readLine(buf: Buffer, pos: number): { line: string; end: number } | undefined {
  const i = buf.indexOf('\r\n', pos);
  if (i < 0) return undefined;
  return { line: buf.toString('latin1', pos, i), end: i + 2 };
}

/** Parses one RESP2 reply at `pos`; undefined when incomplete. */
export function parseReply(buf: Buffer, pos: number): { value: Reply; end: number } | undefined {
  if (pos >= buf.length) return undefined;
  const type = String.fromCharCode(buf[pos]!);
  const l = readLine(buf, pos + 1);
  if (l === undefined) return undefined;
  switch (type) {
    case '+':
      return { value: l.line, end: l.end };
    case '-':
      return { value: new Error(l.line), end: l.end };
    case ':':
      return { value: Number(l.line), end: l.end };
    case '$': {
      const n = Number(l.line);
      if (n < 0) return { value: null, end: l.end };
      if (buf.length < l.end + n + 2) return undefined;
      return { value: Buffer.from(buf.subarray(l.end, l.end + n)), end: l.end + n + 2 };
    }
    case '*': {
      const n = Number(l.line);
      if (n < 0) return { value: null, end: l.end };
      const items: Reply[] = [];
      let p = l.end;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (r === undefined) return undefined;
        items.push(r.value);
        p = r.end;
      }
      return { value: items, end: p };
    }
    default:
      throw new Error(`bad reply type ${type}`);
  }
}
