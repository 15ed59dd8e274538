/**
 * `POST /subscribe/:topic`: one full-duplex HTTP/2 stream per consumer (SPEC §3, the Go
 * original's protocol).
 *
 * In: JSON strings separated by whitespace (one per line in practice, as Go's json.Decoder read
 * them): `"INIT"`, `"ACK"`, `"NACK"`, `"BACK"`, `"DACK 5"`, and `"TOUCH"` (restarts the
 * `--ack-timeout` timer of the message in flight, SPEC §7). Out: one JSON object per line,
 * `{"msg":"<base64>","id":N,"dackCount":N}` (dackCount omitted when 0, as the original) or
 * `{"error":"...","code":"MQ_ERR_..."}` (the code of src/errors.ts, as the README's table lists it).
 * After INIT, and after each settle (applied at once, its record written in
 * the background), the next message is delivered as soon as there is one. A bad command gets an error line and the stream stays
 * open with its in-flight message. When the stream goes away its in-flight message is NACKed.
 *
 * When `--ack-timeout` takes the message back, an error line says so, and no next message is
 * delivered until the client sends its (now refused) settle: the protocol's settles name no
 * message, so a late "ACK" must never land on a message the client has not seen. That state
 * machine (one delivery held, the refusal after an expiry) is the engine's StreamConsumer
 * (engine/stream-consumer.ts), shared with RESP `SUBSCRIBE`; this file is the wire format, the
 * output bound and the end of the stream.
 *
 * When the topic is deleted while a message of it is held here (`DELETE /:topic`, RESP `DEL`),
 * an error line with `"code":"MQ_ERR_TOPIC_DELETED"` and the message's `"id"` says so at once,
 * and the next message (of the re-created topic) is delivered as soon as there is one, without
 * waiting for a command. A settle or TOUCH before that delivery gets the MQ_ERR_TOPIC_DELETED
 * error RESP answers a settle of a deleted message with; a settle after it applies to it.
 *
 * When the client ends its side of the stream (curl `--data '"INIT"'`), nothing more can be
 * settled: the response ends after the pending delivery, if any, and closing NACKs it.
 *
 * Output is bounded (issue 13): once `stream.write()` returns false (more than the stream's
 * highWaterMark is waiting for the client's HTTP/2 flow-control window), no further command is
 * run, so nothing more is delivered, until 'drain'; reading is paused meanwhile, so flow control
 * stops the client from sending more commands. A client that sends "ACK" after "ACK" but never
 * reads its response therefore holds one delivery, not every message of the topic.
 */
import type { ServerHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import { dackDelayMs, type Delivery, type QueueEngine, type SettleKind } from '../../engine/queue-engine.js';
import { StreamConsumer, type StreamHandlers } from '../../engine/stream-consumer.js';
import { BrokerError } from '../../errors.js';

/** Longest command line we buffer before refusing it (bytes). */
const MAX_COMMAND_BYTES = 1024;

export class SubscribeStream {
  readonly #stream: ServerHttp2Stream;
  readonly #engine: QueueEngine;
  readonly #topic: string;
  readonly #logger: Logger;
  /** Made by "INIT": the delivery held, the refusal after an ack timeout. */
  #consumer: StreamConsumer | null = null;
  /** Settles not answered yet (their records are being written; their errors may still need reporting). */
  #settlesWriting = 0;
  #inputEnded = false;
  /** A delivery was handed to this stream: the client is past its first (INIT's) request. */
  #delivered = false;
  #closed = false;
  /** The last write returned false: run no command (so deliver nothing) until 'drain'. */
  #outputBlocked = false;
  #buffered = '';
  #queue: string[] = [];

  /** What the StreamConsumer tells this stream: made once per stream, not per delivery. */
  readonly #handlers: StreamHandlers = {
    onDelivery: (delivery: Delivery): void => this.#onDelivery(delivery),
    onExpired: (delivery: Delivery, notice: BrokerError): void => this.#onExpired(delivery, notice),
    onTopicDeleted: (delivery: Delivery, notice: BrokerError): void => this.#onExpired(delivery, notice),
  };

  /** The outcome of every settle of this stream: one function, not a closure per settle. */
  readonly #onSettled = (err: BrokerError | null): void => {
    this.#settlesWriting--;
    if (err !== null) this.#errorOf(err);
    this.#maybeFinish();
  };

  constructor(stream: ServerHttp2Stream, topic: string, engine: QueueEngine, logger: Logger) {
    this.#stream = stream;
    this.#engine = engine;
    this.#topic = topic;
    this.#logger = logger;
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.#onData(chunk));
    stream.on('end', () => {
      this.#inputEnded = true;
      this.#consumer?.endInput();
      this.#maybeFinish();
    });
    stream.on('close', () => this.#close());
    stream.on('error', (err) => this.#logger.debug({ err }, 'subscribe stream error'));
    stream.on('drain', () => {
      this.#outputBlocked = false;
      stream.resume();
      this.#run();
    });
  }

  #write(line: string): void {
    if (this.#closed || this.#stream.destroyed) return;
    if (!this.#stream.write(line)) {
      this.#outputBlocked = true;
      this.#stream.pause();
    }
  }

  /**
   * Writes the error line of `err`: `{"error":message,"code":"MQ_ERR_..."}` (every line carries
   * the code of src/errors.ts that the README's table lists); `id` names the message it is about.
   */
  #error(err: BrokerError, id?: number): void {
    this.#write(`${JSON.stringify(id === undefined ? { error: err.message, code: err.code } : { error: err.message, code: err.code, id })}\n`);
  }

  /** {@link #error} for a thrown value: an error that is not a BrokerError is sent as MQ_ERR_INTERNAL. */
  #errorOf(err: unknown): void {
    this.#error(err instanceof BrokerError ? err : new BrokerError('MQ_ERR_INTERNAL', [err instanceof Error ? err.message : String(err)]));
  }

  #onData(chunk: string): void {
    this.#buffered += chunk;
    for (;;) {
      const token = this.#nextToken();
      if (token === undefined) break;
      this.#queue.push(token);
    }
    if (this.#buffered.length > MAX_COMMAND_BYTES) {
      this.#buffered = '';
      this.#error(new BrokerError('MQ_ERR_BAD_COMMAND', [`a command longer than ${MAX_COMMAND_BYTES} bytes`]));
    }
    this.#run();
  }

  /**
   * Takes the next whitespace-separated value from the input buffer: a JSON string token as
   * raw text, or a bad token up to the end of its line. undefined when more input is needed.
   */
  #nextToken(): string | undefined {
    const buf = this.#buffered;
    let i = 0;
    while (i < buf.length && (buf[i] === ' ' || buf[i] === '\n' || buf[i] === '\r' || buf[i] === '\t')) i++;
    if (i === buf.length) {
      this.#buffered = '';
      return undefined;
    }
    if (buf[i] === '"') {
      let j = i + 1;
      while (j < buf.length && buf[j] !== '"') j += buf[j] === '\\' ? 2 : 1;
      if (j >= buf.length) {
        // An unterminated string is only complete garbage once its line has ended.
        const nl = buf.indexOf('\n', i);
        if (nl < 0) {
          this.#buffered = buf.slice(i);
          return undefined;
        }
        this.#buffered = buf.slice(nl + 1);
        return buf.slice(i, nl);
      }
      this.#buffered = buf.slice(j + 1);
      return buf.slice(i, j + 1);
    }
    const nl = buf.indexOf('\n', i);
    if (nl < 0) {
      this.#buffered = buf.slice(i);
      return undefined;
    }
    this.#buffered = buf.slice(nl + 1);
    return buf.slice(i, nl).trim();
  }

  /** Runs queued commands in order, while the output is not blocked. */
  #run(): void {
    while (!this.#closed && !this.#outputBlocked && this.#queue.length > 0) {
      this.#command(this.#queue.shift()!);
    }
    this.#maybeFinish();
  }

  #command(token: string): void {
    let text: unknown;
    try {
      text = JSON.parse(token);
    } catch {
      text = undefined;
    }
    if (typeof text !== 'string') {
      this.#error(new BrokerError('MQ_ERR_BAD_COMMAND', [`${clip(token)} is not a JSON string: send one such as "INIT", "ACK" or "DACK 5"`]));
      return;
    }
    const parts = text.trim().split(/\s+/);
    const word = parts[0]!.toUpperCase();
    if (word === 'INIT') {
      if (this.#consumer !== null) return this.#error(new BrokerError('MQ_ERR_BAD_COMMAND', ['INIT: this stream is already initialised']));
      if (parts.length !== 1) return this.#error(new BrokerError('MQ_ERR_WRONG_ARITY', ['init']));
      this.#init();
      return;
    }
    if (word !== 'ACK' && word !== 'NACK' && word !== 'BACK' && word !== 'DACK' && word !== 'TOUCH') {
      // RESP's words for the same mistake; the name as sent (the client's TOUCH echo relies on it).
      const shown = parts.slice(1, 4).map((a) => `'${clip(a)}'`).join(' ');
      this.#error(new BrokerError('MQ_ERR_UNKNOWN_COMMAND', [clip(parts[0]!), shown]));
      return;
    }
    let delayMs = 0;
    if (word === 'DACK') {
      // The engine's check and refusal, the same on RESP; a missing or extra argument gets it too.
      try {
        delayMs = dackDelayMs(parts.length === 2 && /^\d{1,15}$/.test(parts[1]!) ? Number(parts[1]) : undefined);
      } catch (err) {
        return this.#errorOf(err);
      }
    } else if (parts.length !== 1) {
      return this.#error(new BrokerError('MQ_ERR_WRONG_ARITY', [word.toLowerCase()]));
    }
    const consumer = this.#consumer;
    if (consumer === null) return this.#error(new BrokerError('MQ_ERR_BAD_COMMAND', [`send "INIT" before ${word}`]));
    if (word === 'TOUCH') {
      try {
        consumer.touch();
      } catch (err) {
        this.#errorOf(err);
      }
      return;
    }
    this.#settle(consumer, word, delayMs);
  }

  #init(): void {
    const consumer = new StreamConsumer(this.#engine, this.#topic, this.#handlers);
    this.#consumer = consumer;
    // Only when INIT waited behind a blocked output past the end of the input: subscribe, deliver nothing.
    if (this.#inputEnded) consumer.endInput();
    try {
      consumer.start();
    } catch (err) {
      this.#errorOf(err);
    }
  }

  #onDelivery(delivery: Delivery): void {
    this.#delivered = true;
    let payload: Buffer;
    try {
      payload = delivery.payload;
    } catch (err) {
      this.#logger.error({ err, id: delivery.messageId }, 'could not read a payload back from the log');
      this.#error(
        err instanceof BrokerError
          ? err
          : new BrokerError('MQ_ERR_INTERNAL', [`could not read the message from storage: ${err instanceof Error ? err.message : String(err)}`]),
        delivery.messageId,
      );
      this.#stream.close();
      return;
    }
    const dack = delivery.dackCount > 0 ? `,"dackCount":${delivery.dackCount}` : '';
    this.#write(`{"msg":"${payload.toString('base64')}","id":${delivery.messageId}${dack}}\n`);
    this.#maybeFinish();
  }

  /**
   * The ack timeout took the held delivery back (the next settle will be refused), or its topic
   * was deleted (the next message is already requested): say so, naming the message.
   */
  #onExpired(delivery: Delivery, notice: BrokerError): void {
    this.#error(notice, delivery.messageId);
    this.#maybeFinish();
  }

  /**
   * Settles the held delivery and asks for the next one at once, without waiting for the settle
   * record to be fdatasynced (StreamConsumer.settle): the protocol never answers a settle, so
   * nothing a client was told depends on it, and waiting would cap a subscriber at one message
   * per fsync. The settle takes effect in memory immediately; if its record cannot be written an
   * error line follows and the message goes back to the front (at-least-once, SPEC §2). A refused
   * settle (nothing held, the ack timeout took it, its topic was deleted) gets its error line at
   * once. RESP, whose settles are answered with +OK, does wait.
   */
  #settle(consumer: StreamConsumer, kind: SettleKind, delayMs: number): void {
    this.#settlesWriting++;
    consumer.settle(kind, delayMs, this.#onSettled);
  }

  /** After the client ended its side: end the response once nothing more can happen. */
  #maybeFinish(): void {
    if (!this.#inputEnded || this.#closed) return;
    if (this.#settlesWriting > 0 || this.#queue.length > 0) return;
    const consumer = this.#consumer;
    // INIT's delivery, requested before the input ended, may still come: wait for it (a one-shot
    // `curl --data '"INIT"'`). Once the client has had deliveries, the next one was requested by
    // its last settle, not by the client, and may never come (an empty topic): end now.
    if (consumer !== null && consumer.waiting && consumer.current === null && !this.#delivered) return;
    if (!this.#stream.destroyed) this.#stream.end();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#consumer?.close();
  }
}

function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}...` : s;
}
