/**
 * An embedded segment-log broker for tests: opening one on a temp directory, promise wrappers
 * for publish / settle / delete, and a consumer that records its deliveries. Consumers are
 * opened and settled through the engine seam (QueueEngine.openConsumer, ConsumerHandle), as the
 * protocol adapters do.
 */
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import type { Consumer } from '../../src/broker/consumer.js';
import type { Message } from '../../src/broker/message.js';
import type { ConsumerHandle, Delivery, SettleKind } from '../../src/engine/queue-engine.js';
import type { BrokerError } from '../../src/errors.js';
import { silentLogger } from './loggers.js';
import { removeDir, tempDir, type AfterHook } from './temp-dirs.js';


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

export function harness(t: AfterHook): Harness {
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

/**
 * Settles `delivery` through its consumer (the engine seam: ConsumerHandle.settle names the
 * delivery); `delayMs` is the DACK delay. Resolves once the record is durable.
 */
export function settle(consumer: ConsumerHandle, delivery: Delivery, kind: SettleKind, delayMs = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    consumer.settle(delivery.deliveryId, kind, delayMs, (err) => (err === null ? resolve() : reject(err)));
  });
}

export function deleteTopic(broker: Broker, topic: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    broker.deleteTopic(topic, (err: BrokerError | null, existed: boolean) => (err === null ? resolve(existed) : reject(err)));
  });
}

/**
 * A consumer opened through the engine seam that records every delivery and every ack timeout
 * (`expired`: the delivery and whether it was dead-lettered). Deliveries are the broker's Message
 * views, so tests can read what the seam does not show (deliveries, dueAtMs, payloadCached).
 */
export function recorder(broker: Broker): { consumer: Consumer; got: Message[]; expired: [Message, boolean][] } {
  const got: Message[] = [];
  const expired: [Message, boolean][] = [];
  const consumer = broker.openConsumer({
    onDelivery: (d) => got.push(d as Message),
    onExpired: (d, deadLettered) => expired.push([d as Message, deadLettered]),
  });
  return { consumer, got, expired };
}

/** Takes every ready message of `topic` (now in flight to `consumer`). */
export function takeAll(consumer: Consumer, topic: string): Message[] {
  const out: Message[] = [];
  for (;;) {
    const msg = consumer.take(topic);
    if (msg === undefined) return out;
    out.push(msg);
  }
}

/** The payload of `msg` as text. */
export function text(msg: Delivery): string {
  return msg.payload.toString();
}

/** Payload texts of the ready queue of `topic`, front to back, taken and then acked. */
export async function drainTexts(broker: Broker, topic: string): Promise<string[]> {
  const { consumer } = recorder(broker);
  const msgs = takeAll(consumer, topic);
  const texts = msgs.map(text);
  await Promise.all(msgs.map((m) => settle(consumer, m, 'ACK')));
  return texts;
}

/**
 * Payload texts of the ready queue of `topic`, front to back, leaving them ready (taken and NACKed
 * back in order, which is logged: after a restart they are in front of messages that were in flight).
 */
export function peekTexts(broker: Broker, topic: string): string[] {
  const { consumer } = recorder(broker);
  const msgs = takeAll(consumer, topic);
  const texts = msgs.map(text);
  consumer.close(); // NACKs them back to the front in their order (logged as NACKs)
  return texts;
}

/** Ready payloads of `topic`, front to back, read without touching the queue (Broker.inspect). */
export function readyTexts(broker: Broker, topic: string): string[] {
  return (broker.inspect(topic)?.ready ?? []).map(text);
}
