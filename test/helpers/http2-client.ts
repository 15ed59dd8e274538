/**
 * HTTP/2 clients for tests: one request with its whole response, an h2c session, and a client of
 * the subscribe stream (`POST /subscribe/:topic`) that reads one JSON object per line.
 */
import http2 from 'node:http2';

/** Result of one HTTP/2 request. */
export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/2 request on `session` (with extra `headers`); resolves with status, headers and the whole body. */
export function h2request(
  session: http2.ClientHttp2Session,
  method: string,
  urlPath: string,
  body?: Buffer | string,
  requestHeaders: http2.OutgoingHttpHeaders = {},
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': method, ':path': urlPath, ...requestHeaders });
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      headers = h;
      status = Number(h[':status']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Connects an h2c session to 127.0.0.1:`port`. */
export function h2connect(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  return session;
}

/** One line of a subscribe stream, parsed. */
export interface SubscribeLine {
  msg?: string;
  id?: number;
  dackCount?: number;
  error?: string;
  /** The error code of an error line (`MQ_ERR_*`). */
  code?: string;
}

/**
 * A client of `POST /subscribe/:topic`: sends JSON-string commands, one per line, and reads the
 * response one JSON object per line.
 */
export class H2Subscriber {
  readonly stream: http2.ClientHttp2Stream;
  status = 0;
  readonly #lines: SubscribeLine[] = [];
  readonly #waiters: { resolve: (l: SubscribeLine) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  #buffered = '';
  #ended = false;
  readonly response: Promise<number>;
  /** Resolves when the stream has closed. */
  readonly closed: Promise<void>;

  constructor(session: http2.ClientHttp2Session, topic: string) {
    this.stream = session.request({ ':method': 'POST', ':path': `/subscribe/${topic}` });
    this.stream.setEncoding('utf8');
    this.response = new Promise((resolve, reject) => {
      this.stream.once('response', (h) => {
        this.status = Number(h[':status']);
        resolve(this.status);
      });
      this.stream.once('error', reject);
    });
    this.response.catch(() => {});
    this.stream.on('data', (chunk: string) => this.#onData(chunk));
    this.stream.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.stream.on('close', () => {
        this.#ended = true;
        for (const w of this.#waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error('subscribe stream closed before a line'));
        }
        resolve();
      });
    });
  }

  /** Sends a command as a JSON string and a newline (`"INIT"\n`). */
  send(command: string): void {
    this.stream.write(`${JSON.stringify(command)}\n`);
  }

  /** Sends raw text (for malformed commands). */
  sendRaw(text: string): void {
    this.stream.write(text);
  }

  /** Lines received and not yet taken. */
  get bufferedLines(): number {
    return this.#lines.length;
  }

  /** The next line (rejects after `timeoutMs` or when the stream closes first). */
  next(timeoutMs = 10_000): Promise<SubscribeLine> {
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift()!);
    if (this.#ended) return Promise.reject(new Error('subscribe stream closed before a line'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no subscribe line within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push({ resolve, reject, timer });
    });
  }

  /** The next line, which must be a delivery; returns it with its payload decoded. */
  async nextDelivery(timeoutMs = 10_000): Promise<{ payload: Buffer; id: number; dackCount: number; line: SubscribeLine }> {
    const line = await this.next(timeoutMs);
    if (typeof line.msg !== 'string') throw new Error(`expected a delivery, got ${JSON.stringify(line)}`);
    return { payload: Buffer.from(line.msg, 'base64'), id: line.id!, dackCount: line.dackCount ?? 0, line };
  }

  close(): void {
    if (!this.stream.destroyed) this.stream.close();
  }

  #onData(chunk: string): void {
    this.#buffered += chunk;
    let nl: number;
    while ((nl = this.#buffered.indexOf('\n')) >= 0) {
      const text = this.#buffered.slice(0, nl);
      this.#buffered = this.#buffered.slice(nl + 1);
      if (text.trim() === '') continue;
      const line = JSON.parse(text) as SubscribeLine;
      const w = this.#waiters.shift();
      if (w !== undefined) {
        clearTimeout(w.timer);
        w.resolve(line);
      } else {
        this.#lines.push(line);
      }
    }
  }
}

