/**
 * Helpers for driving a JetStreamEngine directly (no protocol): open one on a cluster, a
 * consumer whose deliveries and expiries queue up to be awaited, promise forms of the callbacks.
 */
import type { Delivery, SettleKind } from '../../src/engine/queue-engine.js';
import { BrokerError } from '../../src/errors.js';
import { JetStreamEngine, type JetStreamEngineOptions } from '../../src/jetstream/jetstream-engine.js';
import type { JetStreamConsumer } from '../../src/jetstream/js-consumer.js';
import { silentLogger } from '../helpers/index.js';
import type { NatsCluster } from './cluster.js';

/** Opens an engine on `cluster` with short timers suited to tests (lease 3 s, pulls of 1 s, requests 2 s). */
export async function openEngine(cluster: NatsCluster, opts: Partial<JetStreamEngineOptions> = {}): Promise<JetStreamEngine> {
  const engine = new JetStreamEngine({
    servers: cluster.urls.split(','),
    stream: 'MQTEST',
    replicas: 3,
    maxMessageBytes: 1024 * 1024,
    ackTimeoutMs: 0,
    maxDeliveries: 0,
    leaseMs: 3000,
    pullExpiresMs: 1000,
    requestTimeoutMs: 2000,
    logger: silentLogger,
    ...opts,
  });
  await engine.open();
  return engine;
}

export function publish(engine: JetStreamEngine, topic: string, payload: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    engine.publish(topic, Buffer.isBuffer(payload) ? payload : Buffer.from(payload), (err, id) => (err === null ? resolve(id) : reject(err)));
  });
}

export function deleteTopic(engine: JetStreamEngine, topic: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    engine.deleteTopic(topic, (err, existed) => (err === null ? resolve(existed) : reject(err)));
  });
}

/** A consumer whose deliveries and ack-timeout expiries can be awaited in order. */
export class TestConsumer {
  readonly handle: JetStreamConsumer;
  readonly deliveries: Delivery[] = [];
  readonly expired: { delivery: Delivery; deadLettered: boolean }[] = [];
  #waiters: ((d: Delivery) => void)[] = [];
  #queue: Delivery[] = [];

  constructor(engine: JetStreamEngine) {
    this.handle = engine.openConsumer({
      onDelivery: (d) => {
        this.deliveries.push(d);
        const w = this.#waiters.shift();
        if (w !== undefined) w(d);
        else this.#queue.push(d);
      },
      onExpired: (delivery, deadLettered) => {
        this.expired.push({ delivery, deadLettered });
      },
    });
  }

  /** Requests the next message of `topic` and resolves with it (rejects after `timeoutMs`). */
  next(topic: string, timeoutMs = 10_000): Promise<Delivery> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== got);
        this.handle.cancel();
        reject(new Error(`no delivery of ${topic} within ${timeoutMs} ms`));
      }, timeoutMs);
      const got = (d: Delivery): void => {
        clearTimeout(timer);
        resolve(d);
      };
      this.#waiters.push(got);
      this.handle.request(topic);
    });
  }

  /** Requests `topic` and resolves true if nothing is delivered within `ms` (then cancels). */
  async nothingWithin(topic: string, ms: number): Promise<boolean> {
    try {
      const d = await this.next(topic, ms);
      this.#queue.unshift(d);
      return false;
    } catch {
      return true;
    }
  }

  settle(d: Delivery, kind: SettleKind, delayMs = 0): Promise<void> {
    return new Promise((resolve, reject) => {
      this.handle.settle(d.deliveryId, kind, delayMs, (err) => (err === null ? resolve() : reject(err)));
    });
  }
}

/** The error code a call throws, or 'none'. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (err) {
    if (err instanceof BrokerError) return err.code;
    throw err;
  }
}
