/**
 * Settling deliveries (SPEC §2): ACK, NACK, BACK, DACK, and TOUCH, which only restarts the ack
 * timer. A settle takes effect in memory at once (a settled delivery cannot be settled twice);
 * its reply waits for the record. If an ACK's record cannot be written the message is put back
 * at the front, which is where replay would find it too.
 *
 * Deliveries are found by deliveryId (the engine seam), or by message id for protocols whose
 * settles name the message (RESP `ACK topic id`): through the id index to the message's current
 * delivery, which must be this consumer's.
 */
import { BrokerError } from '../errors.js';
import type { DoneCallback, SettleKind } from '../engine/queue-engine.js';
import type { LogWriter } from '../log/log-writer.js';
import { Placement, RecordType } from '../log/record.js';
import { BrokerAppend } from './broker-append.js';
import type { BrokerCore } from './broker-core.js';
import type { Consumer } from './consumer.js';
import type { Dispatcher } from './dispatch.js';
import { MessageState, type Message } from './message.js';

export class Settlements {
  readonly #core: BrokerCore;
  readonly #dispatcher: Dispatcher;

  constructor(core: BrokerCore, dispatcher: Dispatcher) {
    this.#core = core;
    this.#dispatcher = dispatcher;
  }

  /** The delivery `deliveryId` in flight to `consumer`. Throws MQ_ERR_NOT_IN_FLIGHT. */
  byDeliveryId(consumer: Consumer, deliveryId: number): Message {
    const msg = consumer.inFlight.get(deliveryId);
    if (msg === undefined) throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [`delivery ${deliveryId}`]);
    return msg;
  }

  /**
   * The delivery of message `id` in flight to `consumer` (of topic `topicName` when given), or
   * one whose topic was deleted meanwhile (GONE). Throws MQ_ERR_NOT_IN_FLIGHT.
   */
  byMessageId(consumer: Consumer, id: number, topicName?: string): Message {
    const store = this.#core.store;
    const h = store.handleOf(id);
    let msg = h < 0 ? undefined : store.views.get(h);
    if (msg === undefined || msg.owner !== consumer) msg = consumer.gone?.get(id);
    if (msg === undefined || (topicName !== undefined && msg.topic !== topicName)) {
      throw new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [topicName === undefined ? id : `${id} of topic '${topicName}'`]);
    }
    return msg;
  }

  /**
   * Settles `msg`, in flight to `consumer`: ACK removes it for good, NACK puts it at the front,
   * BACK at the back, DACK holds it for `delayMs` and then returns it to the front with
   * dackCount + 1. `cb` runs when the record is durable. Throws MQ_ERR_TOPIC_DELETED (the delivery
   * is over all the same). `writer` is BrokerCore.assertOpen's, asked before the lookup.
   */
  settle(writer: LogWriter, consumer: Consumer, msg: Message, kind: SettleKind, delayMs: number, cb: DoneCallback): void {
    const core = this.#core;
    consumer.inFlight.delete(msg.deliveryId);
    if (msg.state === MessageState.GONE) {
      consumer.gone?.delete(msg.id);
      throw new BrokerError('MQ_ERR_TOPIC_DELETED', [msg.topic]);
    }
    const store = core.store;
    const h = msg.handle;
    const topic = store.topicOf(h);
    topic.inFlight.delete(h);
    core.topics.endDelivery(h);
    if (kind === 'NACK') topic.nacked++;
    else if (kind === 'BACK') topic.backed++;
    else if (kind === 'DACK') topic.dacked++;
    const deadLetters = this.#dispatcher.deadLetters;
    if (kind !== 'ACK' && deadLetters.exhausted(h, topic) && deadLetters.move(writer, h, topic, cb)) return;
    let type: RecordType;
    let dueAtMs = 0;
    switch (kind) {
      case 'ACK':
        type = RecordType.ACK;
        topic.acked++;
        core.topics.forget(h, topic);
        break;
      case 'NACK':
        type = RecordType.NACK;
        topic.pushReadyFront(h);
        break;
      case 'BACK':
        type = RecordType.BACK;
        topic.pushReadyBack(h);
        break;
      case 'DACK':
        type = RecordType.DACK;
        dueAtMs = Date.now() + delayMs;
        store.dackCounts[h]!++;
        store.setDueAt(h, dueAtMs);
        store.states[h] = MessageState.DELAYED;
        topic.delayed.add(h);
        break;
    }
    if (type !== RecordType.ACK) {
      store.placements[h] = type === RecordType.NACK ? Placement.FRONT : type === RecordType.BACK ? Placement.BACK : Placement.DELAYED;
      store.placeOffsets[h] = writer.nextAppendOffset;
    }
    writer.append(BrokerAppend.settle(type, msg.topic, msg.id, dueAtMs, h, cb, this.#onSettled));
    if (kind !== 'ACK' && kind !== 'DACK') this.#dispatcher.dispatch(topic);
  }

  readonly #onSettled = (err: Error | null, rec: BrokerAppend): void => {
    const h = rec.h;
    const core = this.#core;
    const store = core.store;
    // The handle is still this message's unless it was freed (durably gone) meanwhile.
    if (err === null && rec.type === RecordType.ACK) {
      // The message was live in the log when its ACK was appended (a settle after a delete is
      // refused), so replay counts this ACK.
      core.live.noteTopicRecord(rec.segment!, rec.topic);
      const topic = core.topics.get(rec.topic);
      if (topic !== undefined) topic.loggedAcked++;
    }
    if (store.isCurrent(h, rec.messageId)) {
      if (err === null) {
        if (rec.type === RecordType.ACK) core.live.noteAcked(h, rec.segment!);
        else core.live.noteRef(h, rec.segment!);
      } else if (rec.type === RecordType.ACK && store.states[h] === MessageState.GONE) {
        // The ack is not durable: after a restart the message would be back, so put it back now.
        const topic = this.#dispatcher.reinstate(h);
        if (topic !== undefined) topic.acked--;
      }
    }
    rec.onDone!(err === null ? null : core.storageError(err));
  };

  /**
   * Restarts the `--ack-timeout` timer of `msg`, in flight to its consumer. Nothing is logged:
   * after a restart the message is ready again anyway. Throws MQ_ERR_TOPIC_DELETED.
   */
  touch(msg: Message): void {
    if (msg.state === MessageState.GONE) throw new BrokerError('MQ_ERR_TOPIC_DELETED', [msg.topic]);
    const core = this.#core;
    if (core.ackTimeoutMs > 0) core.ackDeadlines.track(msg, performance.now() + core.ackTimeoutMs);
  }
}
