/**
 * The workload of the power-loss checker (issue #13): producers that pipeline PUBLISHes and
 * consumers that RESERVE and settle (ACK, DACK, NACK), over real RESP connections (node:net).
 *
 * Every connection records each command it sent with the byte position where the command ends
 * in the stream it wrote, and each reply with the byte position where it ends in the stream it
 * read. The trace of the server counts the bytes it read from and wrote to each connection, so
 * at any cut of the trace the checker knows exactly which commands the server had received and
 * which it had answered (RESP answers in command order on each connection).
 */
import net from 'node:net';
import { encodeCommand, isErrorReply, parseReply, type Reply } from '../../helpers/index.js';

export type CommandKind = 'PUBLISH' | 'RESERVE' | 'ACK' | 'DACK' | 'NACK';

export interface RecordedCommand {
  kind: CommandKind;
  topic: string;
  /** PUBLISH: the payload. ACK/DACK/NACK: the payload of the message settled. */
  payload: string | undefined;
  /** Byte position in this connection's outgoing stream where the command ends (exclusive). */
  outEnd: number;
  reply: Reply | undefined;
  /** Byte position in the incoming stream where the reply ends (exclusive); undefined when never answered. */
  replyEnd: number | undefined;
}

/** A RESP connection that records its commands, replies and their byte positions. */
export class RecordingConnection {
  readonly socket: net.Socket;
  readonly commands: RecordedCommand[] = [];
  clientPort = 0;
  #outBytes = 0;
  #inBytes = 0;
  #buf: Buffer = Buffer.alloc(0);
  #answered = 0;
  readonly #waiters: ((r: Reply | undefined) => void)[] = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.clientPort = socket.localPort ?? 0;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w(undefined);
    });
  }

  static connect(port: number): Promise<RecordingConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RecordingConnection(socket));
      });
    });
  }

  /** Sends one command; resolves with its reply, or undefined when the connection closed first. */
  send(kind: CommandKind, topic: string, payload: string | undefined, args: (string | number)[]): Promise<Reply | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const bytes = encodeCommand([kind, topic, ...args]);
    this.#outBytes += bytes.length;
    this.commands.push({ kind, topic, payload, outEnd: this.#outBytes, reply: undefined, replyEnd: undefined });
    this.socket.write(bytes);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #onData(d: Buffer): void {
    const base = this.#inBytes - this.#buf.length; // stream position of #buf[0]
    this.#inBytes += d.length;
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    let pos = 0;
    for (;;) {
      const r = parseReply(this.#buf, pos);
      if (r === undefined) break;
      pos = r.end;
      const cmd = this.commands[this.#answered++];
      if (cmd === undefined) throw new Error('a reply without a command');
      cmd.reply = r.value;
      cmd.replyEnd = base + pos;
      this.#waiters.shift()?.(r.value);
    }
    this.#buf = pos === this.#buf.length ? Buffer.alloc(0) : this.#buf.subarray(pos);
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface WorkloadOptions {
  respPort: number;
  /** PUBLISHes in all (the workload ends when they are all answered or the server is gone). */
  publishes: number;
  producers: number;
  /** PUBLISHes each producer keeps in flight. */
  pipeline: number;
  consumers: number;
  /** Topics that consumers drain; one more topic ('cold') is published to now and then and never consumed, so old segments stay live and compaction copies them forward. */
  hotTopics: number;
  /** Every n-th publish of a producer goes to 'cold'. */
  coldEvery: number;
  payloadMinBytes: number;
  payloadMaxBytes: number;
  /** The power is cut once this many settles were answered after the producers are done (or the hot topics are empty). */
  settleTarget: number;
  rng: () => number;
}

export interface WorkloadRecord {
  connections: RecordingConnection[];
  /** PUBLISHes sent. */
  published: number;
  settled: number;
}

/**
 * Runs producers and consumers. Resolves once the producers have had every PUBLISH answered (or
 * the server died); consumers keep going until `stopConsumers` is called. `drained` resolves
 * once the producers are done and every consumer found every hot topic empty in a row (or
 * `settleTarget` settles were answered), the moment to cut the power.
 */
export async function runWorkload(
  opts: WorkloadOptions,
): Promise<{ record: WorkloadRecord; drained: Promise<void>; stopConsumers: () => Promise<void> }> {
  const record: WorkloadRecord = { connections: [], published: 0, settled: 0 };
  const topics = Array.from({ length: opts.hotTopics }, (_, i) => `hot.${i}`);
  let next = 0;
  let producing = true;
  let idleConsumers = 0;
  let resolveDrained!: () => void;
  const drained = new Promise<void>((resolve) => (resolveDrained = resolve));
  const checkDrained = (): void => {
    if (!producing && (idleConsumers === opts.consumers || record.settled >= opts.settleTarget)) resolveDrained();
  };
  const producer = async (p: number): Promise<void> => {
    const conn = await RecordingConnection.connect(opts.respPort);
    record.connections.push(conn);
    let n = 0;
    const inFlight = new Set<Promise<unknown>>();
    while (!conn.closed && next < opts.publishes) {
      next++;
      n++;
      const topic = n % opts.coldEvery === 0 ? 'cold' : topics[Math.floor(opts.rng() * topics.length)]!;
      const size = opts.payloadMinBytes + Math.floor(opts.rng() * (opts.payloadMaxBytes - opts.payloadMinBytes + 1));
      const head = `${topic}|p${p}-${n}|`;
      const payload = head + 'x'.repeat(Math.max(0, size - head.length));
      record.published++;
      const sent = conn.send('PUBLISH', topic, payload, [payload]);
      inFlight.add(sent);
      void sent.then(() => inFlight.delete(sent));
      if (inFlight.size >= opts.pipeline) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  };
  let stop = false;
  const consumer = async (): Promise<void> => {
    const conn = await RecordingConnection.connect(opts.respPort);
    record.connections.push(conn);
    let t = 0;
    let emptyInARow = 0;
    let idle = false;
    while (!stop && !conn.closed) {
      const topic = topics[t++ % topics.length]!;
      const r = await conn.send('RESERVE', topic, undefined, [50]);
      if (!Array.isArray(r) || r.length < 2) {
        if (++emptyInARow >= topics.length && !idle && !producing) {
          idle = true;
          idleConsumers++;
          checkDrained();
        }
        continue;
      }
      if (idle) {
        idle = false;
        idleConsumers--;
      }
      emptyInARow = 0;
      const id = String(r[0]);
      const payload = (r[1] as Buffer).toString('latin1');
      const x = opts.rng();
      const settle = await (x < 0.8
        ? conn.send('ACK', topic, payload, [id])
        : x < 0.92
          ? conn.send('DACK', topic, payload, [id, 0])
          : conn.send('NACK', topic, payload, [id]));
      if (settle !== undefined && !isErrorReply(settle)) record.settled++;
      checkDrained();
    }
    if (!idle) idleConsumers++;
    checkDrained();
  };
  const consumers = Array.from({ length: opts.consumers }, () => consumer());
  await Promise.all(Array.from({ length: opts.producers }, (_, p) => producer(p)));
  producing = false;
  checkDrained();
  return {
    record,
    drained,
    stopConsumers: async () => {
      stop = true;
      await Promise.all(consumers);
    },
  };
}
