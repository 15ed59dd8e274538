/**
 * The removal of an acked message from a replicated stream, through the stream's own raft group
 * (issue 15): `$JS.API.STREAM.MSG.DELETE.<stream>` with `{"seq":n,"no_erase":true}`.
 *
 * Why: nats-server 2.9.10 answers a double-acked +ACK as soon as the consumer's leader processed
 * it, before the ack is replicated to the consumer's group (consumer.go processAck: sendAckReply
 * right after processAckMsg, which only proposes the ack); a work queue then drops the message on
 * each replica when the replicated ack is applied (processReplicatedAck -> stream ackMsg, a local
 * RemoveMsg). A consumer leader killed in between takes the ack with it, and the next leader
 * delivers the message again: an ACK answered +OK undone. A message delete is answered by the
 * stream's leader only once the delete was committed by the stream's group and applied
 * (jetstream_cluster.go applyStreamEntries, deleteMsgOp), so a removed message stays removed
 * whichever node dies; a consumer does not deliver a message its replica of the stream no longer
 * holds (getNextMsg: LoadMsg/LoadNextMsg skip it), and a consumer leader holding it pending takes
 * the removal as an ack (stream storeUpdates -> decStreamPending -> processTerm).
 *
 * Answers: success; "no message found" (10057) or "sequence 5 not found" (10043): the message was
 * already removed (the consumer's replicated ack got there first) = success; a 503 (no
 * responders, "JetStream system temporarily unavailable" while the stream elects a leader) is
 * transient; anything else (the stream gone, deletes denied) fails.
 */
import type { Msg } from '@nats-io/transport-node';
import { isNoResponders, type AnswerFailure } from './ack-requests.js';

/** JetStream's "sequence not found" (the message is not in the stream: already removed). */
const SEQUENCE_NOT_FOUND = 10043;
/** JetStream's "message delete failed": "no message found" says it was already removed. */
const DELETE_FAILED = 10057;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The API subject that removes a message from `stream`. */
export function msgDeleteSubject(stream: string): string {
  return `$JS.API.STREAM.MSG.DELETE.${stream}`;
}

/** The body of the removal of stream sequence `streamSeq` (no_erase: its bytes are not overwritten). */
export function msgDeleteBody(streamSeq: number): Uint8Array {
  return enc.encode(`{"seq":${streamSeq},"no_erase":true}`);
}

/** The error of a removal JetStream refused. */
function refused(subject: string, text: string, description: string, transient: boolean): AnswerFailure {
  const error = new Error(`JetStream did not remove the acked message (${subject}): ${description}`);
  Object.assign(error, { subject, answer: text });
  return { error, transient };
}

/** Judges the answer to a removal (see the file's comment). */
export function judgeMsgDelete(msg: Msg, subject: string): AnswerFailure | null {
  if (isNoResponders(msg)) {
    const error = new Error(`no responders: '${subject}'`);
    error.name = 'NoResponders';
    return { error, transient: true };
  }
  const text = dec.decode(msg.data);
  if (text.includes('"success":true')) return null;
  let answer: { error?: { code?: number; err_code?: number; description?: string } };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    return refused(subject, text, `an answer that is not JSON: ${JSON.stringify(text.slice(0, 200))}`, false);
  }
  const e = answer.error;
  if (e === undefined) return refused(subject, text, `an answer without success nor error: ${text.slice(0, 200)}`, false);
  if (e.err_code === SEQUENCE_NOT_FOUND || (e.err_code === DELETE_FAILED && e.description === 'no message found')) return null;
  const description = `${e.description ?? 'error'} (${e.code ?? '?'}/${e.err_code ?? '?'})`;
  return refused(subject, text, description, e.code === 503);
}
