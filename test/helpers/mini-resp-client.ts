/**
 * A minimal pipelining RESP2 client for the crash suite: it must tell exactly which commands
 * were answered before the server died, which a client library with retries and reconnects
 * would blur.
 */
import net from 'node:net';
import { RespErrorReply, encodeCommand, parseReply as parseUtilReply, type Reply as UtilReply } from './resp-client.js';

export type MiniReply = string | number | Buffer | null | MiniReply[] | Error;

interface Pending {
  resolve: (r: MiniReply) => void;
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
  send(...args: (string | Buffer | number)[]): Promise<MiniReply> {
    if (this.#closed) return Promise.reject(new Error('connection closed'));
    this.#socket.write(encodeCommand(args));
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

/** resp-client.ts's parser, with `-ERR` replies as Error objects (what this client's callers test for). */
function toErrors(value: UtilReply): MiniReply {
  if (value instanceof RespErrorReply) return new Error(value.line);
  if (Array.isArray(value)) return value.map(toErrors);
  return value;
}

/** Parses one RESP2 reply at `pos`; undefined when incomplete. */
function parseReply(buf: Buffer, pos: number): { value: MiniReply; end: number } | undefined {
  const r = parseUtilReply(buf, pos);
  return r === undefined ? undefined : { value: toErrors(r.value), end: r.end };
}
