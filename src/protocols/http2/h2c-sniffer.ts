/**
 * Cleartext HTTP/2 beside HTTP/1.1 on one port (`--no-tls`, issue 14): the first bytes of a
 * connection tell which one the client speaks. An HTTP/2 client with prior knowledge opens with
 * the connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4); an HTTP/1.1 client
 * opens with a request line (`GET /metrics HTTP/1.1`). The two differ by the 15th byte at the
 * latest (`PRI * HTTP/2.0` against a hypothetical `PRI * HTTP/1.1`), and usually by the first.
 *
 * Over TLS no sniffing is needed: ALPN (`h2`, `http/1.1`) decides, in node:http2's `allowHTTP1`.
 *
 * The bytes read to decide are put back with `socket.unshift()` before the socket is handed on,
 * so the HTTP/2 session or the HTTP/1.1 parser sees the connection from its first byte. Only the
 * first read of each connection passes through here; nothing is added per request.
 */
import type { Socket } from 'node:net';

/** The HTTP/2 client connection preface (RFC 9113 §3.4), 24 bytes. */
export const H2C_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Which protocol a cleartext connection speaks, as told by its first bytes. */
export type SniffedProtocol = 'h2c' | 'http/1.1';

/**
 * Decides from the first bytes of a connection: `'h2c'` once all of {@link H2C_PREFACE} has
 * arrived, `'http/1.1'` as soon as a byte differs from it, `undefined` while what arrived is a
 * proper prefix of the preface (more bytes are needed). Pure; exported for the tests.
 */
export function classifyFirstBytes(head: Buffer): SniffedProtocol | undefined {
  const n = Math.min(head.length, H2C_PREFACE.length);
  if (head.compare(H2C_PREFACE, 0, n, 0, n) !== 0) return 'http/1.1';
  return n === H2C_PREFACE.length ? 'h2c' : undefined;
}

/** Options of {@link sniffProtocol}. */
export interface SniffOptions {
  /** How long the client may take to send enough bytes to decide, from the call, in ms. */
  readonly timeoutMs: number;
  /** Called once with the decision; the bytes read are back in the socket, which is paused. */
  readonly onProtocol: (socket: Socket, protocol: SniffedProtocol) => void;
}

/**
 * Reads the first bytes of `socket` until {@link classifyFirstBytes} decides, puts them back and
 * calls `onProtocol`. A socket that ends, fails or stays silent for `timeoutMs` first is
 * destroyed and `onProtocol` is never called (nothing was asked of the server, so nothing is
 * answered). At most {@link H2C_PREFACE}.length bytes are needed, so at most one chunk plus a few
 * bytes are held.
 */
export function sniffProtocol(socket: Socket, opts: SniffOptions): void {
  let head: Buffer | null = null;
  const timer = setTimeout(() => socket.destroy(), opts.timeoutMs).unref();
  const stop = (): void => {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onGone);
    socket.off('error', onGone);
    socket.off('close', onGone);
  };
  const onGone = (): void => {
    stop();
    socket.destroy();
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) head = head === null ? chunk : Buffer.concat([head, chunk]);
    if (head === null) return;
    const protocol = classifyFirstBytes(head);
    if (protocol === undefined) return;
    stop();
    socket.unshift(head);
    opts.onProtocol(socket, protocol);
  };
  socket.on('readable', onReadable);
  socket.on('end', onGone);
  socket.on('error', onGone);
  socket.on('close', onGone);
}
