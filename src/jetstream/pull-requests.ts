/**
 * Pull requests of one gateway: each asks JetStream for up to a batch of messages of one topic's
 * durable consumer (waiting at the server until they come or it expires, or "no_wait": only what
 * is ready now), with its reply going to `<inbox>.<id>`. A message arrives under its stored subject
 * (the ack subject in its reply field), a status (heartbeat, timeout, no messages, consumer
 * deleted, leadership change) on the request's own subject. An arriving message is admitted:
 * moved to `<topic>.dead` if past `--max-deliveries`, else (with its delivery record looked up
 * when redelivered) handed to the topic's puller.
 *
 * A waiting pull request can be lost without any answer: NATS 2.9 takes a request sent while the
 * consumer has no leader (just made, or its leader's node died) without a "no responders" status
 * (the JetStream API import `$JS.API.>` listens on every node), and a request waiting at a node
 * that dies is gone with it. So every pull asks for idle heartbeats ({@link PULL_HEARTBEAT_MS})
 * and one that has said nothing for {@link PULL_SILENCE_MS} is given up and sent again; and a
 * consumer create that JetStream answered before the consumer had a leader (a second create of
 * the same durable while the first is under way is answered at once by a member) is followed
 * by consumer info requests until a leader is named, before the topic's first pulls are sent.
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import { AckPolicy, type ConsumerInfo } from '@nats-io/jetstream';
import type { DeadLetters } from './dead-letters.js';
import type { JsEngineContext } from './engine-context.js';
import { MQ_HEADERS, parseAckSubject } from './js-delivery.js';
import { isConsumerNotFound, isNotFound } from './nats-link.js';
import { parseDeliveryRecord } from './delivery-record.js';
import type { PulledMessage } from './puller-host.js';
import { dackStreamName, topicOfSubject } from './subjects.js';
import type { TopicPuller } from './topic-puller.js';

/** The idle heartbeat every pull request asks JetStream for (ms; at most half its expiry). */
export const PULL_HEARTBEAT_MS = 500;

/** A pull request that said nothing (message, heartbeat, status) for this long is lost (ms). */
export const PULL_SILENCE_MS = 2 * PULL_HEARTBEAT_MS + 250;

/** Pause between consumer info requests while a new consumer has no leader yet (ms). */
const LEADER_POLL_MS = 50;

/** One pull request out. */
interface PullOut {
  puller: TopicPuller;
  /** Messages it may still bring. */
  left: number;
  /** A no_wait pull (the topic's pull ahead). */
  noWait: boolean;
  /** Gives the request up: armed when it is sent, pushed back by every sign of it. */
  watchdog: NodeJS.Timeout;
  /** Date.now() when it was sent or last heard of (0 until sent). */
  lastSignMs: number;
}

export class PullRequests {
  readonly #ctx: JsEngineContext;
  readonly #deadLetters: DeadLetters;
  /** Pull requests out: id → its puller and the timer that gives up on it. */
  readonly #pulls = new Map<number, PullOut>();
  #pullSeq = 0;
  #inbox = '';
  #inboxSub: Subscription | null = null;
  readonly #ensuring = new Map<TopicPuller, Promise<void>>();
  /** Topics whose consumer is being looked up after a lost pull (see {@link #checkConsumer}). */
  readonly #checking = new Set<TopicPuller>();

  constructor(ctx: JsEngineContext, deadLetters: DeadLetters) {
    this.#ctx = ctx;
    this.#deadLetters = deadLetters;
  }

  /** Subscribes to this gateway's pull replies (once connected). */
  listen(): void {
    const nc = this.#ctx.link!.nc;
    this.#inbox = `_INBOX_MQ.${nc.info?.client_id ?? 0}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    this.#inboxSub = nc.subscribe(`${this.#inbox}.*`, { callback: (_err, msg) => this.#onPullReply(msg) });
  }

  /** Forgets every pull out (close). */
  clear(): void {
    for (const { watchdog } of this.#pulls.values()) clearTimeout(watchdog);
    this.#pulls.clear();
  }

  /**
   * Sends one pull request of up to `batch` messages for `puller` (`noWait`: only those ready
   * now; it needs no heartbeats), making its durable consumer first if needed. Returns its id.
   */
  start(puller: TopicPuller, batch: number, noWait: boolean): number {
    const ctx = this.#ctx;
    const id = ++this.#pullSeq;
    const expiresMs = ctx.opts.pullExpiresMs;
    const heartbeatMs = Math.min(PULL_HEARTBEAT_MS, Math.floor(expiresMs / 2));
    const silenceMs = heartbeatMs === PULL_HEARTBEAT_MS ? PULL_SILENCE_MS : 2 * heartbeatMs + 250;
    // Until it is sent, the watchdog covers the consumer's creation (a JetStream API call).
    const pull: PullOut = { puller, left: batch, noWait, watchdog: setTimeout(() => this.#pullEnded(id, 0), ctx.opts.requestTimeoutMs * 2 + silenceMs), lastSignMs: 0 };
    pull.watchdog.unref();
    this.#pulls.set(id, pull);
    puller.pullIds.add(id);
    const send = (): void => {
      if (this.#pulls.get(id) !== pull || ctx.closing) return;
      const body = noWait
        ? `{"batch":${batch},"no_wait":true}`
        : `{"batch":${batch},"expires":${expiresMs * 1_000_000},"idle_heartbeat":${heartbeatMs * 1_000_000}}`;
      clearTimeout(pull.watchdog);
      pull.lastSignMs = Date.now();
      // A no_wait pull is answered at once (messages, then a status unless its batch was filled).
      const quietMs = noWait ? ctx.opts.requestTimeoutMs : silenceMs;
      pull.watchdog = setTimeout(() => this.#checkSilence(id, pull, quietMs), quietMs);
      pull.watchdog.unref();
      ctx.link!.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${ctx.opts.stream}.${puller.names.durable}`, body, { reply: `${this.#inbox}.${id}` });
    };
    if (puller.consumerReady) send();
    else this.#ensureConsumer(puller).then(send, (err: unknown) => {
      ctx.logger.warn({ err, topic: puller.topic }, 'jetstream: could not create the topic consumer; retrying');
      this.#pullEnded(id, 250);
    });
    return id;
  }

  /**
   * The watchdog of pull `id` fired: unless it was heard of meanwhile, it is lost (no leader
   * took it, or its node died) and ends, so that its puller sends another. Decided after the
   * I/O that is already waiting (setImmediate), so that a heartbeat read late (a busy event
   * loop) still counts.
   */
  #checkSilence(id: number, pull: PullOut, silenceMs: number): void {
    setImmediate(() => {
      if (this.#pulls.get(id) !== pull) return;
      const quietMs = Date.now() - pull.lastSignMs;
      if (quietMs < silenceMs) {
        pull.watchdog = setTimeout(() => this.#checkSilence(id, pull, silenceMs), silenceMs - quietMs);
        pull.watchdog.unref();
        return;
      }
      this.#pullEnded(id, 0);
      this.#checkConsumer(pull.puller);
    });
  }

  /**
   * A pull of `puller` was lost: besides a node that died or a consumer without a leader, its
   * consumer may have been deleted by hand (`nats consumer rm`) while no pull waited, which
   * JetStream answers with silence. Its info is asked once (one look-up per topic at a time);
   * only the answer 10014 "consumer not found" makes the next pulls create it again, and ends
   * the pulls still out to the deleted one. A timeout or any other error changes nothing: the
   * cluster may be electing a leader, and the heartbeats tell the rest.
   */
  #checkConsumer(puller: TopicPuller): void {
    const ctx = this.#ctx;
    if (this.#checking.has(puller) || !puller.consumerReady || ctx.closing) return;
    this.#checking.add(puller);
    ctx
      .track(ctx.link!.jsm.consumers.info(ctx.opts.stream, puller.names.durable))
      .then(
        () => undefined,
        (err: unknown) => {
          if (!isConsumerNotFound(err) || ctx.closing) return;
          ctx.logger.warn({ topic: puller.topic, consumer: puller.names.durable }, 'jetstream: the topic consumer was deleted outside miniqueue; making it again');
          puller.consumerReady = false;
          for (const id of [...puller.pullIds]) this.#pullEnded(id, 0);
        },
      )
      .finally(() => this.#checking.delete(puller));
  }

  #ensureConsumer(puller: TopicPuller): Promise<void> {
    const ctx = this.#ctx;
    let p = this.#ensuring.get(puller);
    if (p === undefined) {
      p = ctx.link!.jsm.consumers
        .add(ctx.opts.stream, {
          durable_name: puller.names.durable,
          description: `miniqueue topic ${puller.topic}`,
          filter_subject: puller.names.subject,
          ack_policy: AckPolicy.Explicit,
          ack_wait: ctx.opts.leaseMs * 1_000_000,
          max_deliver: -1,
          max_ack_pending: -1,
          max_waiting: 4096,
        })
        // Gateways starting on the same topic at once race to create it; the loser's error is
        // no error if the consumer is there now.
        .catch((err: unknown) =>
          ctx.link!.jsm.consumers.info(ctx.opts.stream, puller.names.durable).catch(() => {
            throw err;
          }),
        )
        .then((info) => this.#leaderElected(puller, info))
        .then(() => {
          puller.consumerReady = true;
        })
        .finally(() => this.#ensuring.delete(puller));
      this.#ensuring.set(puller, p);
    }
    return p;
  }

  /**
   * Resolves once the consumer of `puller` has a leader: a create answered before its raft group
   * elected one (see the file comment) would send the first pulls to nobody. Asks for its info
   * until a leader is named, for at most a request timeout (the heartbeats catch the rest).
   */
  async #leaderElected(puller: TopicPuller, info: ConsumerInfo): Promise<void> {
    const ctx = this.#ctx;
    const deadlineMs = Date.now() + ctx.opts.requestTimeoutMs;
    let cluster = info.cluster;
    while (cluster !== undefined && !cluster.leader && Date.now() < deadlineMs && !ctx.closing) {
      await new Promise((r) => setTimeout(r, LEADER_POLL_MS));
      try {
        cluster = (await ctx.link!.jsm.consumers.info(ctx.opts.stream, puller.names.durable)).cluster;
      } catch {
        // No answer yet (the group is being set up): ask again.
      }
    }
  }

  /**
   * Ends pull `id` (after `delayMs`, to back off when the cluster refused it); `served`: JetStream
   * said it served it all it could (no messages, request timeout).
   */
  #pullEnded(id: number, delayMs: number, served = false): void {
    const ctx = this.#ctx;
    const pull = this.#pulls.get(id);
    if (pull === undefined) return;
    this.#pulls.delete(id);
    pull.puller.pullIds.delete(id);
    clearTimeout(pull.watchdog);
    if (delayMs <= 0 || ctx.closing) {
      if (!ctx.closing) pull.puller.pullEnded(pull.left, pull.noWait, served ? id : 0);
      return;
    }
    setTimeout(() => {
      if (!ctx.closing) pull.puller.pullEnded(pull.left, pull.noWait);
    }, delayMs).unref();
  }

  /**
   * A reply to a pull request: a status on the request's own inbox subject, or a message, which
   * arrives under its stored subject. JetStream serves a consumer's waiting pull requests oldest
   * first and every pull of a gateway expires after the same time, so a message counts against
   * the oldest pull of its topic still out (ending it when its batch is full); a rare mismatch is
   * put right by the watchdogs.
   */
  #onPullReply(msg: Msg): void {
    const ctx = this.#ctx;
    const ackInfo = msg.reply === undefined ? undefined : parseAckSubject(msg.reply);
    if (ackInfo !== undefined) {
      const topic = topicOfSubject(ctx.opts.stream, msg.subject);
      const puller = topic === undefined ? undefined : ctx.existingPuller(topic);
      if (puller === undefined || ctx.closing) {
        ctx.link?.nakNow(msg.reply!);
        return;
      }
      const oldestId: number | undefined = puller.pullIds.values().next().value;
      const pull = oldestId === undefined ? undefined : this.#pulls.get(oldestId);
      let ticket: number;
      if (oldestId === undefined || pull === undefined) ticket = puller.arrivedUnasked(ackInfo.streamSeq);
      else {
        pull.left--;
        pull.lastSignMs = Date.now();
        ticket = puller.messageArrived(ackInfo.streamSeq, oldestId);
        if (pull.left <= 0) this.#pullEnded(oldestId, 0);
      }
      this.#admit(puller, msg, ackInfo, ticket);
      return;
    }
    const id = Number(msg.subject.slice(this.#inbox.length + 1));
    const pull = this.#pulls.get(id);
    if (pull === undefined) return;
    pull.lastSignMs = Date.now();
    const code = msg.headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat: the request still waits at the consumer's leader
    if (code === 404 || code === 408) return this.#pullEnded(id, 0, true);
    if (code === 409 && /deleted/i.test(msg.headers?.description ?? '')) pull.puller.consumerReady = false;
    if (code === 503) pull.puller.consumerReady = false; // no responders: the consumer is gone, or JetStream is
    this.#pullEnded(id, code === 409 ? 100 : 500);
  }

  /**
   * A message pulled for `puller`: dead-lettered if past --max-deliveries, else to a consumer.
   * One JetStream delivered before is looked up in the DACK-count stream first: a DACK may have
   * stored a newer dackCount, and a gateway that gave it back unseen stored how many of
   * JetStream's deliveries no client saw (delivery-record.ts); its lease is renewed meanwhile,
   * and a read that took the lease or longer drops the copy (left to its lease).
   */
  #admit(puller: TopicPuller, msg: Msg, ack: { streamSeq: number; deliveredCount: number }, ticket: number): void {
    const ctx = this.#ctx;
    const h = msg.headers;
    const header = (name: string): number => {
      const v = h?.get(name);
      const n = v === undefined || v === '' ? 0 : Number(v);
      return Number.isSafeInteger(n) && n >= 0 ? n : 0;
    };
    const fields: PulledMessage = {
      messageId: header(MQ_HEADERS.id) || ack.streamSeq,
      topic: puller.topic,
      attempt: header(MQ_HEADERS.attempts) + ack.deliveredCount,
      dackCount: header(MQ_HEADERS.dackCount),
      unseen: 0,
      recordStored: false,
      payload: Buffer.from(msg.data),
      streamSeq: ack.streamSeq,
      ackSubject: msg.reply!,
    };
    const admitted = (): void => {
      if (ctx.closing) {
        puller.dropped(ticket, fields.streamSeq);
        ctx.link?.nakNow(fields.ackSubject);
        return;
      }
      if (fields.attempt > 1) puller.counters.redelivered++;
      if (this.#deadLetters.pastLimit(puller.topic, fields.attempt)) {
        puller.dropped(ticket, fields.streamSeq);
        ctx.track(this.#deadLetters.move(fields)).catch((err: unknown) => ctx.logger.error({ err, topic: puller.topic }, 'jetstream: dead-lettering failed; the message stays'));
        return;
      }
      puller.received(fields, ticket, Date.now());
    };
    if (ack.deliveredCount === 1) return admitted();
    // A redelivery of a delivery NAKed here that nobody held since: its record is known.
    const known = puller.knownRedelivery(ack.streamSeq, ack.deliveredCount);
    if (known !== undefined) {
      fields.recordStored = known.recordStored;
      fields.dackCount = known.dackCount;
      fields.unseen = Math.min(known.unseen, ack.deliveredCount - 1);
      fields.attempt -= fields.unseen;
      return admitted();
    }
    // Its lease is renewed while the record is read: a read can take the whole request timeout
    // (the DACK stream electing a leader after a node died), longer than a short --nats-lease,
    // and JetStream would meanwhile deliver it again elsewhere; that copy could be ACKed +OK
    // before this one is handed on (seen in the node-kill test with --nats-lease 2s). Renewing
    // is not enough when the consumer's leader changed meanwhile (the new one may not know of
    // this delivery: seen once in 59 runs): a copy whose read took the lease or longer is not
    // handed on but left to its lease (no NAK: nats-server 2.9 would take it for the current
    // delivery's), and JetStream delivers it again if it is still there.
    const readStartMs = Date.now();
    const renewer = setInterval(() => ctx.link?.working(fields.ackSubject), Math.max(50, Math.floor(ctx.opts.leaseMs / 3)));
    ctx.track(ctx.link!.jsm.streams.getMessage(dackStreamName(ctx.opts.stream), { last_by_subj: `${puller.names.dackPrefix}.${ack.streamSeq}` }))
      .then(
        (stored) => {
          const record = stored === null ? undefined : parseDeliveryRecord(stored.string());
          if (record === undefined) return;
          fields.recordStored = true;
          if (record.dackCount > 0) fields.dackCount = record.dackCount;
          fields.unseen = Math.min(record.unseen, ack.deliveredCount - 1);
          fields.attempt -= fields.unseen;
        },
        (err: unknown) => {
          if (!isNotFound(err)) ctx.logger.warn({ err, topic: puller.topic }, 'jetstream: could not read a delivery record back; using the headers and JetStream\'s delivery count');
        },
      )
      .finally(() => {
        clearInterval(renewer);
        if (Date.now() - readStartMs < ctx.opts.leaseMs) return admitted();
        puller.dropped(ticket, fields.streamSeq);
        ctx.logger.warn({ topic: puller.topic, streamSeq: fields.streamSeq, leaseMs: ctx.opts.leaseMs }, 'jetstream: a redelivered message whose delivery record took the lease or longer to read is not handed on (it may have been delivered again meanwhile); JetStream delivers it again after the lease');
      });
  }
}
