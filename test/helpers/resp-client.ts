/**
 * A raw RESP2 client over node:net that keeps every reply (and every byte) it receives, with the
 * encoder and reply parser it uses; it talks to real servers, nothing is mocked.
 */
import assert from 'node:assert/strict';
import net from 'node:net';

/** One decoded RESP2 reply: simple string, integer, bulk (Buffer), nil, array, or error. */
export type Reply = string | number | Buffer | null | Reply[] | RespErrorReply;

/** A `-CODE message` reply. Kept apart from Error so deepStrictEqual compares it by text. */
export class RespErrorReply {
  constructor(readonly line: string) {}
}

export function isErrorReply(r: Reply | undefined): r is RespErrorReply {
  return r instanceof RespErrorReply;
}

/** Encodes one command as a RESP2 multibulk. */
export function encodeCommand(args: readonly (string | Buffer | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parses one RESP2 reply at `pos`; undefined when more bytes are needed. Throws on a bad type byte. */
export function parseReply(buf: Buffer, pos: number): { value: Reply; end: number } | undefined {
  if (pos >= buf.length) return undefined;
  const nl = buf.indexOf('\r\n', pos + 1);
  if (nl < 0) return undefined;
  const line = buf.toString('latin1', pos + 1, nl);
  const end = nl + 2;
  switch (buf[pos]) {
    case 0x2b: // +
      return { value: line, end };
    case 0x2d: // -
      return { value: new RespErrorReply(line), end };
    case 0x3a: // :
      return { value: Number(line), end };
    case 0x24: {
      // $
      const n = Number(line);
      if (n < 0) return { value: null, end };
      if (buf.length < end + n + 2) return undefined;
      return { value: Buffer.from(buf.subarray(end, end + n)), end: end + n + 2 };
    }
    case 0x2a: {
      // *
      const n = Number(line);
      if (n < 0) return { value: null, end };
      const items: Reply[] = [];
      let p = end;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (r === undefined) return undefined;
        items.push(r.value);
        p = r.end;
      }
      return { value: items, end: p };
    }
    default:
      throw new Error(`bad RESP reply type byte 0x${buf[pos]!.toString(16)} at ${pos}: ${JSON.stringify(buf.toString('latin1', pos, pos + 40))}`);
  }
}

interface Waiter {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A raw RESP2 connection. Replies are queued in arrival order; {@link next} takes the next one
 * (waiting for it), so commands and server pushes (SUBSCRIBE deliveries) are read the same way.
 */
export class RespConn {
  readonly socket: net.Socket;
  /** Every byte received, in order. */
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  readonly #replies: Reply[] = [];
  readonly #waiters: Waiter[] = [];
  #buf: Buffer = Buffer.alloc(0);
  #closed = false;
  /** Resolves when the socket has closed (either side). */
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#closed = true;
        for (const w of this.#waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error('connection closed before a reply'));
        }
        resolve();
      });
    });
  }

  static connect(port: number): Promise<RespConn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RespConn(socket));
      });
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Replies received and not yet taken by {@link next}. */
  get bufferedReplies(): number {
    return this.#replies.length;
  }

  /** Writes raw bytes; resolves once they are handed to the OS. */
  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Sends one command and resolves with the next reply. */
  async send(...args: (string | Buffer | number)[]): Promise<Reply> {
    const reply = this.next();
    await this.write(encodeCommand(args));
    return reply;
  }

  /** Resolves with the next reply (rejects when the connection closes first or after `timeoutMs`). */
  next(timeoutMs = 10_000): Promise<Reply> {
    if (this.#replies.length > 0) return Promise.resolve(this.#replies.shift()!);
    if (this.#closed) return Promise.reject(new Error('connection closed before a reply'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push({ resolve, reject, timer });
    });
  }

  /** The next `n` replies. */
  async nextN(n: number, timeoutMs = 10_000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(timeoutMs));
    return out;
  }

  /** Sends several commands in one write and resolves with their replies, in order. */
  async pipeline(commands: (string | Buffer | number)[][]): Promise<Reply[]> {
    const replies = this.nextN(commands.length);
    await this.write(Buffer.concat(commands.map(encodeCommand)));
    return replies;
  }

  close(): void {
    this.socket.destroy();
  }

  #onData(d: Buffer): void {
    this.received.push(d);
    this.receivedBytes += d.length;
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    for (;;) {
      const r = parseReply(this.#buf, 0);
      if (r === undefined) return;
      this.#buf = this.#buf.subarray(r.end);
      const w = this.#waiters.shift();
      if (w !== undefined) {
        clearTimeout(w.timer);
        w.resolve(r.value);
      } else {
        this.#replies.push(r.value);
      }
    }
  }
}

/** A RESERVE reply decoded: `[id, payload, dackCount]`. */
export interface Reserved {
  id: string;
  payload: Buffer;
  dackCount: number;
}

/** Decodes a RESERVE reply; throws (fails the test) unless it has the `[bulk id, bulk payload, integer]` shape. */
export function asReserved(r: Reply): Reserved {
  if (!Array.isArray(r) || r.length !== 3 || !Buffer.isBuffer(r[0]) || !Buffer.isBuffer(r[1]) || typeof r[2] !== 'number') {
    throw new Error(`not a RESERVE reply: ${describeReply(r)}`);
  }
  return { id: r[0].toString('latin1'), payload: r[1], dackCount: r[2] };
}

/** A short printable form of a reply, for assertion messages. */
export function describeReply(r: Reply): string {
  if (r === null) return 'nil';
  if (Buffer.isBuffer(r)) return `$${JSON.stringify(r.toString('latin1').slice(0, 60))}`;
  if (r instanceof RespErrorReply) return `-${r.line}`;
  if (Array.isArray(r)) return `[${r.map(describeReply).join(', ')}]`;
  return typeof r === 'string' ? `+${r}` : `:${r}`;
}

/** The text of an error reply (`ERR ...`); fails the test on any other reply. */
export function errorLine(r: Reply): string {
  assert.ok(isErrorReply(r), `expected an error reply, got ${describeReply(r)}`);
  return r.line;
}

/** RESP `STATS topic` as a record of its figures (numbers). */
export async function statsOf(c: RespConn, topic: string): Promise<Record<string, number>> {
  const r = (await c.send('STATS', topic)) as (Buffer | number)[];
  const s: Record<string, number> = {};
  for (let i = 0; i < r.length; i += 2) s[String(r[i])] = Number(r[i + 1]);
  return s;
}

/**
 * Opens RESP connections to a port and closes them all at once: a suite's `connect()` whose
 * connections its `after` hook closes.
 */
export class RespConnections {
  readonly #open: RespConn[] = [];
  readonly #port: () => number;

  /** `port` is read at each connect (suites start their server in `before`). */
  constructor(port: () => number) {
    this.#port = port;
  }

  readonly connect = async (): Promise<RespConn> => {
    const c = await RespConn.connect(this.#port());
    this.#open.push(c);
    return c;
  };

  closeAll(): void {
    for (const c of this.#open.splice(0)) c.close();
  }
}
