/**
 * Shared fixtures of the broker tests: opening a broker on a temp directory, promise wrappers
 * for publish / settle / delete, and a consumer that records its deliveries.
 */
import { Broker, type BrokerOptions, type SettleKind } from '../../src/broker/broker.js';
import type { Consumer } from '../../src/broker/consumer.js';
import type { Message } from '../../src/broker/message.js';
import type { BrokerError } from '../../src/errors.js';
import { removeDir, silentLogger, tempDir } from '../helpers.js';

export interface TestContext {
  after: (fn: () => void | Promise<void>) => void;
}

export function brokerOptions(dir: string, overrides: Partial<BrokerOptions> = {}): BrokerOptions {
  return {
    dir,
    fsync: 'always',
    fsyncIntervalMs: 1000,
    segmentBytes: 1 << 20,
    maxMessageBytes: 1 << 20,
    periodMs: 1000,
    repair: false,
    logger: silentLogger,
    ...overrides,
  };
}

/** A temp directory and the brokers opened on it; all closed, then the directory removed, after the test. */
export interface Harness {
  dir: string;
  /** Opens a new broker on the directory (replaying its log). */
  open(overrides?: Partial<BrokerOptions>): Broker;
  /** Closes `broker` and opens a new one on the same directory. */
  restart(broker: Broker, overrides?: Partial<BrokerOptions>): Promise<Broker>;
}

export function harness(t: TestContext): Harness {
  const dir = tempDir('mq-broker-');
  const open = new Set<Broker>();
  t.after(async () => {
    for (const b of open) await b.close();
    removeDir(dir);
  });
  const h: Harness = {
    dir,
    open(overrides = {}) {
      const broker = new Broker(brokerOptions(dir, overrides));
      broker.open();
      const close = broker.close.bind(broker);
      broker.close = async () => {
        if (!open.has(broker)) return;
        open.delete(broker);
        await close();
      };
      open.add(broker);
      return broker;
    },
    async restart(broker, overrides = {}) {
      await broker.close();
      return h.open(overrides);
    },
  };
  return h;
}

export function publish(broker: Broker, topic: string, payload: Buffer | string): Promise<number> {
  const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return new Promise((resolve, reject) => {
    broker.publish(topic, buf, (err, id) => (err === null ? resolve(id) : reject(err)));
  });
}

export function settle(
  broker: Broker,
  consumer: Consumer,
  id: number,
  kind: SettleKind,
  delaySeconds = 0,
  topicName?: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    broker.settle(consumer, id, kind, delaySeconds, (err) => (err === null ? resolve() : reject(err)), topicName);
  });
}

export function deleteTopic(broker: Broker, topic: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    broker.deleteTopic(topic, (err: BrokerError | null, existed: boolean) => (err === null ? resolve(existed) : reject(err)));
  });
}

/** A consumer that records every delivery. */
export function recorder(broker: Broker): { consumer: Consumer; got: Message[] } {
  const got: Message[] = [];
  const consumer = broker.createConsumer((msg) => got.push(msg));
  return { consumer, got };
}

/** Takes every ready message of `topic` (now in flight to `consumer`) and returns their payloads. */
export function takeAll(broker: Broker, consumer: Consumer, topic: string): Message[] {
  const out: Message[] = [];
  for (;;) {
    const msg = broker.take(consumer, topic);
    if (msg === undefined) return out;
    out.push(msg);
  }
}

export function text(broker: Broker, msg: Message): string {
  return broker.payloadOf(msg).toString();
}

/** Payload texts of the ready queue of `topic`, front to back, taken and then acked. */
export async function drainTexts(broker: Broker, topic: string): Promise<string[]> {
  const consumer = broker.createConsumer(() => {});
  const msgs = takeAll(broker, consumer, topic);
  const texts = msgs.map((m) => text(broker, m));
  await Promise.all(msgs.map((m) => settle(broker, consumer, m.id, 'ACK')));
  return texts;
}

/**
 * Payload texts of the ready queue of `topic`, front to back, leaving them ready (taken and NACKed
 * back in order, which is logged: after a restart they are in front of messages that were in flight).
 */
export function peekTexts(broker: Broker, topic: string): string[] {
  const consumer = broker.createConsumer(() => {});
  const msgs = takeAll(broker, consumer, topic);
  const texts = msgs.map((m) => text(broker, m));
  broker.closeConsumer(consumer); // NACKs them back to the front in their order (logged as NACKs)
  return texts;
}
