/**
 * Settles on JetStream (see the mapping in jetstream-engine.ts): ACK = +ACK answered by the server;
 * NACK = -NAK (the front); BACK = a copy at the end, then +ACK of the original; DACK n = the new
 * dackCount stored in `<stream>_DACKS` (delivery-record.ts), then -NAK with an n-second delay. A
 * delivery that ends without a settle (consumer closed, ack timeout) is NAKed, or dead-lettered;
 * a message pulled that no client saw is given back with one more unseen delivery recorded.
 */
import type { DoneCallback, SettleKind } from '../engine/queue-engine.js';
import type { DeadLetters } from './dead-letters.js';
import type { JsEngineContext } from './engine-context.js';
import { encodeDeliveryRecord } from './delivery-record.js';
import { MQ_HEADERS, parseAckSubject, type JsDelivery } from './js-delivery.js';
import { NatsLink, storageError } from './nats-link.js';
import type { PulledMessage } from './puller-host.js';
import { topicSubjects } from './subjects.js';
import type { TopicPuller } from './topic-puller.js';

export class SettleOps {
  readonly #ctx: JsEngineContext;
  readonly #deadLetters: DeadLetters;

  constructor(ctx: JsEngineContext, deadLetters: DeadLetters) {
    this.#ctx = ctx;
    this.#deadLetters = deadLetters;
  }

  /** Counts and runs one settle; `cb` once JetStream answered it. */
  settle(d: JsDelivery, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    const puller = this.#ctx.puller(d.topic);
    if (kind === 'ACK') {
      // The path of every consumed message: a callback, no promise (see ack-requests.ts);
      // close() waits for the link's signals as for the calls it tracks.
      puller.counters.acked++;
      this.#ctx.link!.ackThen(d.ackSubject, d.streamSeq, (err) => {
        if (err !== null) return cb(storageError(err));
        if (d.recordStored) this.#dropDackCount(d);
        cb(null);
      });
      return;
    }
    if (kind === 'NACK') puller.counters.nacked++;
    else if (kind === 'BACK') puller.counters.backed++;
    else puller.counters.dacked++;
    let op: Promise<void>;
    if (this.#deadLetters.exhausted(d)) op = this.#deadLetters.move(d);
    else if (kind === 'NACK') op = this.returnToJetStream(puller, d);
    else if (kind === 'BACK') op = this.#back(d);
    else op = this.#dack(puller, d, delayMs);
    this.#ctx.track(op).then(
      () => cb(null),
      (err: unknown) => cb(storageError(err)),
    );
  }

  /**
   * NAKs a delivery (back to the front) and holds its topic's next pulls until JetStream answered:
   * acks and pulls are handled apart in the server, so a pull sent at once could be served first.
   * Its redelivery is awaited: the topic's spares (pulled after it) and what arrives meanwhile are
   * handed on after it (topic-puller.ts), so that a NACKed message is the next one delivered. The
   * spares are not given back (before, each was NAKed and pulled again: up to 64 per NACK).
   */
  async returnToJetStream(puller: TopicPuller, d: JsDelivery): Promise<void> {
    const deliveredCount = parseAckSubject(d.ackSubject)?.deliveredCount ?? 0;
    puller.awaitRedelivery({ streamSeq: d.streamSeq, deliveredCount, dackCount: d.dackCount, unseen: d.unseen, recordStored: d.recordStored });
    let ok = false;
    try {
      await this.#ctx.link!.nak(d.ackSubject, 0);
      ok = true;
    } finally {
      puller.nakAnswered(d.streamSeq, ok);
    }
  }

  /**
   * Gives back a message this gateway pulled and no client saw (a spare nobody claimed): its
   * record in the DACK-count stream first counts one more unseen delivery, so that whichever
   * gateway gets it next leaves this one out of `attempt`; then the NAK. Pulls of the topic wait
   * from now until the NAK is answered, as for a NACK (the order a NACK left stays). When the
   * record cannot be written, the NAK is sent all the same (the delivery then counts).
   */
  async giveBackUnseen(puller: TopicPuller, m: PulledMessage): Promise<void> {
    const link = this.#ctx.link!;
    puller.holdPulls(m.streamSeq);
    puller.noteGivenBack(m.streamSeq, Date.now());
    try {
      try {
        await link.publish(`${puller.names.dackPrefix}.${m.streamSeq}`, encodeDeliveryRecord({ dackCount: m.dackCount, unseen: m.unseen + 1 }));
      } catch (err) {
        this.#ctx.logger.warn({ err, topic: m.topic }, 'jetstream: could not record a delivery no client saw; it counts toward --max-deliveries');
      }
      await link.nak(m.ackSubject, 0);
    } finally {
      puller.releasePulls(m.streamSeq);
    }
  }

  /** A delivery that ends without a settle (consumer closed, ack timeout): NAK, or dead letter. */
  returnToFront(d: JsDelivery): void {
    const ctx = this.#ctx;
    if (this.#deadLetters.exhausted(d)) ctx.track(this.#deadLetters.move(d)).catch((err: unknown) => ctx.logger.error({ err, topic: d.topic }, 'jetstream: dead-lettering failed'));
    else if (ctx.closing) ctx.link?.nakNow(d.ackSubject);
    else ctx.track(this.returnToJetStream(ctx.puller(d.topic), d)).catch((err: unknown) => ctx.logger.warn({ err, topic: d.topic }, 'jetstream: a NAK was not answered; the lease returns the message'));
  }

  async #back(d: JsDelivery): Promise<void> {
    const link = this.#ctx.link!;
    const names = topicSubjects(this.#ctx.opts.stream, d.topic);
    const hdrs = NatsLink.headers({ [MQ_HEADERS.id]: d.messageId, [MQ_HEADERS.attempts]: d.attempt, [MQ_HEADERS.dackCount]: d.dackCount });
    try {
      await link.publish(names.subject, d.payload, hdrs);
    } catch (err) {
      link.nakNow(d.ackSubject);
      throw err;
    }
    await link.ack(d.ackSubject, d.streamSeq);
    if (d.recordStored) this.#dropDackCount(d);
  }

  async #dack(puller: TopicPuller, d: JsDelivery, delayMs: number): Promise<void> {
    const link = this.#ctx.link!;
    try {
      await link.publish(`${puller.names.dackPrefix}.${d.streamSeq}`, encodeDeliveryRecord({ dackCount: d.dackCount + 1, unseen: d.unseen }));
    } catch (err) {
      link.nakNow(d.ackSubject);
      throw err;
    }
    const now = Date.now();
    puller.addDack(now + delayMs, now);
    await link.nak(d.ackSubject, delayMs);
  }

  #dropDackCount(d: JsDelivery): void {
    const stream = this.#ctx.opts.stream;
    const names = topicSubjects(stream, d.topic);
    this.#ctx.track(this.#ctx.link!.jsm.streams.purge(`${stream}_DACKS`, { filter: `${names.dackPrefix}.${d.streamSeq}` })).catch(() => undefined);
  }
}
