/**
 * `--max-deliveries` on JetStream: a delivery whose attempt reached N and ends without an ACK is
 * published to `<topic>.dead` (a new id there; deliveries and dackCount kept in headers) and the
 * original is acked; one arriving past N (its gateway died) is moved on arrival (pull-requests.ts).
 */
import { DEAD_LETTER_SUFFIX } from '../engine/queue-engine.js';
import type { JsEngineContext } from './engine-context.js';
import { MQ_HEADERS } from './js-delivery.js';
import { NatsLink } from './nats-link.js';
import type { PulledMessage } from './puller-host.js';
import { dackStreamName } from './subjects.js';

export class DeadLetters {
  readonly #ctx: JsEngineContext;

  constructor(ctx: JsEngineContext) {
    this.#ctx = ctx;
  }

  /** Whether `topic` has a dead-letter topic (not a `.dead` topic itself, and room for the suffix). */
  deadLetterable(topic: string): boolean {
    return !topic.endsWith(DEAD_LETTER_SUFFIX) && topic.length + DEAD_LETTER_SUFFIX.length <= 255;
  }

  /** Whether a delivery that ends without an ACK now goes to the dead-letter topic. */
  exhausted(d: { attempt: number; topic: string }): boolean {
    const maxDeliveries = this.#ctx.opts.maxDeliveries;
    return maxDeliveries > 0 && d.attempt >= maxDeliveries && this.deadLetterable(d.topic);
  }

  /** Whether a message arriving with `attempt` is past `--max-deliveries` (moved on arrival). */
  pastLimit(topic: string, attempt: number): boolean {
    const maxDeliveries = this.#ctx.opts.maxDeliveries;
    return maxDeliveries > 0 && attempt > maxDeliveries && this.deadLetterable(topic);
  }

  /**
   * Publishes a copy to `<topic>.dead` (new id, deliveries and dackCount kept), then acks the
   * original and drops its delivery record.
   */
  async move(m: PulledMessage): Promise<void> {
    const ctx = this.#ctx;
    const link = ctx.link!;
    const dead = ctx.puller(m.topic + DEAD_LETTER_SUFFIX);
    const hdrs = NatsLink.headers({ [MQ_HEADERS.attempts]: m.attempt, [MQ_HEADERS.dackCount]: m.dackCount });
    try {
      await link.publish(dead.names.subject, m.payload, hdrs);
    } catch (err) {
      link.nakNow(m.ackSubject);
      throw err;
    }
    await link.ack(m.ackSubject, m.streamSeq);
    if (m.recordStored) {
      const names = ctx.puller(m.topic).names;
      ctx.track(link.jsm.streams.purge(dackStreamName(ctx.opts.stream), { filter: `${names.dackPrefix}.${m.streamSeq}` })).catch(() => undefined);
    }
    ctx.puller(m.topic).counters.deadLettered++;
    dead.counters.published++;
    ctx.notePublished(dead.topic);
    ctx.logger.warn({ topic: m.topic, id: m.messageId, deliveries: m.attempt, dackCount: m.dackCount, deadLetterTopic: dead.topic }, 'message moved to its dead-letter topic after --max-deliveries deliveries');
  }
}
