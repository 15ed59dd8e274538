/**
 * The contract a crash state is checked against (SPEC §2, §5; issue #13), at a cut of the trace:
 * which commands the server had received and which it had answered by then, and what a server
 * started on the state must (and must not) deliver.
 */
import { isErrorReply } from '../../helpers/index.js';
import type { SocketIo } from './fs-model.js';
import type { RecordingConnection } from './workload.js';

/** What a server started on a crash state held. */
export interface Observation {
  /** False when the server did not start (the log did not open without --repair). */
  started: boolean;
  /** Why it did not start (its stderr), when it did not. */
  startError: string;
  /** Every message delivered while draining: payload -> deliveries, the last dackCount, the topic. */
  messages: Map<string, { count: number; dackCount: number; topic: string }>;
  /** Torn tails the server cut away at start (log lines). */
  tornTails: number;
}

export interface Violation {
  kind:
    | 'log-did-not-open'
    | 'answered-publish-lost'
    | 'acked-message-came-back'
    | 'unpublished-message-appeared'
    | 'message-delivered-twice'
    | 'message-in-wrong-topic'
    | 'answered-dack-lost'
    | 'dack-count-from-nowhere';
  detail: string;
}

/** Bytes the server read from / wrote to one connection, by trace position. */
class ByteCounter {
  readonly #seqs: number[] = [];
  readonly #totals: number[] = [];

  add(seq: number, bytes: number): void {
    const total = (this.#totals[this.#totals.length - 1] ?? 0) + bytes;
    this.#seqs.push(seq);
    this.#totals.push(total);
  }

  /** Bytes moved by calls with seq <= cut. */
  at(cut: number): number {
    let lo = 0;
    let hi = this.#seqs.length; // first index with seq > cut
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#seqs[mid]! <= cut) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.#totals[lo - 1]!;
  }
}

interface PayloadFacts {
  pubReceived: boolean;
  pubAnswered: boolean;
  ackReceived: boolean;
  ackAnswered: boolean;
  dacksReceived: number;
  dacksAnswered: number;
}

/** How strictly to check: `always` checks everything; otherwise answered work may be lost, but nothing may appear that was not sent and the log must open. */
export type Strictness = 'always' | 'relaxed';

export class Ledger {
  readonly #connections: RecordingConnection[];
  readonly #in = new Map<number, ByteCounter>();
  readonly #out = new Map<number, ByteCounter>();

  constructor(connections: RecordingConnection[], socketIo: SocketIo[]) {
    this.#connections = connections;
    for (const io of socketIo) {
      const map = io.direction === 'in' ? this.#in : this.#out;
      let c = map.get(io.clientPort);
      if (c === undefined) map.set(io.clientPort, (c = new ByteCounter()));
      c.add(io.seq, io.bytes);
    }
  }

  /** Connections of the workload that the trace never saw (a sign the correlation is broken). */
  unseenConnections(): number[] {
    return this.#connections.filter((c) => c.commands.length > 0 && !this.#in.has(c.clientPort)).map((c) => c.clientPort);
  }

  /** Checks that the trace and the clients agree: every reply a client got was written by the server (byte counts). */
  consistencyProblems(lastSeq: number): string[] {
    const problems: string[] = [];
    for (const c of this.#connections) {
      const out = this.#out.get(c.clientPort)?.at(lastSeq) ?? 0;
      const inn = this.#in.get(c.clientPort)?.at(lastSeq) ?? 0;
      let lastReplyEnd = 0;
      let lastOutEnd = 0;
      for (const cmd of c.commands) {
        if (cmd.replyEnd !== undefined) {
          lastReplyEnd = cmd.replyEnd;
          lastOutEnd = cmd.outEnd;
        }
      }
      if (lastReplyEnd > out) problems.push(`connection :${c.clientPort}: client read ${lastReplyEnd} bytes of replies, trace shows ${out} written`);
      if (lastOutEnd > inn) problems.push(`connection :${c.clientPort}: a command ending at byte ${lastOutEnd} was answered, trace shows ${inn} read`);
    }
    return problems;
  }

  /** The facts about every published payload at `cut`. */
  factsAt(cut: number): Map<string, PayloadFacts> {
    const facts = new Map<string, PayloadFacts>();
    const get = (p: string): PayloadFacts => {
      let f = facts.get(p);
      if (f === undefined) {
        f = { pubReceived: false, pubAnswered: false, ackReceived: false, ackAnswered: false, dacksReceived: 0, dacksAnswered: 0 };
        facts.set(p, f);
      }
      return f;
    };
    for (const c of this.#connections) {
      const received = this.#in.get(c.clientPort)?.at(cut) ?? 0;
      const written = this.#out.get(c.clientPort)?.at(cut) ?? 0;
      for (const cmd of c.commands) {
        if (cmd.outEnd > received) break; // later commands arrived later still
        if (cmd.payload === undefined) continue;
        const answeredOk = cmd.replyEnd !== undefined && cmd.replyEnd <= written && cmd.reply !== undefined && !isErrorReply(cmd.reply);
        const f = get(cmd.payload);
        if (cmd.kind === 'PUBLISH') {
          f.pubReceived = true;
          f.pubAnswered ||= answeredOk && cmd.reply === 'OK';
        } else if (cmd.kind === 'ACK') {
          f.ackReceived = true;
          f.ackAnswered ||= answeredOk && cmd.reply === 'OK';
        } else if (cmd.kind === 'DACK') {
          f.dacksReceived++;
          if (answeredOk && cmd.reply === 'OK') f.dacksAnswered++;
        }
      }
    }
    return facts;
  }

  /** Counts at `cut`, for reports. */
  summaryAt(cut: number): { publishesAnswered: number; acksAnswered: number } {
    let publishesAnswered = 0;
    let acksAnswered = 0;
    for (const f of this.factsAt(cut).values()) {
      if (f.pubAnswered) publishesAnswered++;
      if (f.ackAnswered) acksAnswered++;
    }
    return { publishesAnswered, acksAnswered };
  }
}

/** Every way `obs` breaks the contract at `cut` (empty when it holds). */
export function checkObservation(ledger: Ledger, cut: number, obs: Observation, strictness: Strictness): Violation[] {
  if (!obs.started) return [{ kind: 'log-did-not-open', detail: obs.startError }];
  const facts = ledger.factsAt(cut);
  const out: Violation[] = [];
  const strict = strictness === 'always';
  for (const [payload, seen] of obs.messages) {
    const f = facts.get(payload);
    if (f === undefined || !f.pubReceived) {
      out.push({ kind: 'unpublished-message-appeared', detail: JSON.stringify(payload.slice(0, 40)) });
      continue;
    }
    if (seen.count > 1) out.push({ kind: 'message-delivered-twice', detail: `${payload.slice(0, 30)} delivered ${seen.count} times` });
    if (!payload.startsWith(`${seen.topic}|`)) out.push({ kind: 'message-in-wrong-topic', detail: `${payload.slice(0, 30)} in ${seen.topic}` });
    if (seen.dackCount > f.dacksReceived) {
      out.push({ kind: 'dack-count-from-nowhere', detail: `${payload.slice(0, 30)} dackCount ${seen.dackCount} > ${f.dacksReceived} DACKs received` });
    }
    if (strict && f.ackAnswered) out.push({ kind: 'acked-message-came-back', detail: payload.slice(0, 30) });
    if (strict && seen.dackCount < f.dacksAnswered) {
      out.push({ kind: 'answered-dack-lost', detail: `${payload.slice(0, 30)} dackCount ${seen.dackCount} < ${f.dacksAnswered} DACKs answered` });
    }
  }
  if (strict) {
    for (const [payload, f] of facts) {
      if (f.pubAnswered && !f.ackReceived && !obs.messages.has(payload)) {
        out.push({ kind: 'answered-publish-lost', detail: payload.slice(0, 30) });
      }
    }
  }
  return out;
}

/** Answered publishes not delivered (and not acked), for reporting what a relaxed mode lost. */
export function lostAnswered(ledger: Ledger, cut: number, obs: Observation): number {
  let lost = 0;
  for (const [payload, f] of ledger.factsAt(cut)) if (f.pubAnswered && !f.ackReceived && !obs.messages.has(payload)) lost++;
  return lost;
}
