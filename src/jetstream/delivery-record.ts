/**
 * The record a stored message may have in `<stream>_DACKS` (subject `<dackPrefix>.<stream seq>`,
 * one message per subject): what JetStream's own count of deliveries does not know.
 * - `dackCount`: the message's dackCount after its last DACK;
 * - `unseen`: how many of JetStream's deliveries of it no client saw: a gateway pulled it for a
 *   consumer that had stopped waiting, kept it unclaimed and gave it back. `attempt` (and so
 *   `--max-deliveries`) leaves them out, whichever gateway pulled it.
 *
 * Only the gateway holding the message (one at a time) writes its record; a gateway reads it when
 * JetStream delivers the message again, and drops it when the message is acked or replaced (BACK,
 * dead letter). Text: `<dackCount> <unseen>`; a record of one number (written before `unseen`
 * existed) is a dackCount.
 */

export interface DeliveryRecord {
  dackCount: number;
  unseen: number;
}

/** The record as stored. */
export function encodeDeliveryRecord(record: DeliveryRecord): Uint8Array {
  return new TextEncoder().encode(`${record.dackCount} ${record.unseen}`);
}

/** A stored record, or undefined when the text is not one. */
export function parseDeliveryRecord(text: string): DeliveryRecord | undefined {
  const m = /^(\d{1,15})(?: (\d{1,15}))?$/.exec(text.trim());
  if (m === null) return undefined;
  return { dackCount: Number(m[1]), unseen: m[2] === undefined ? 0 : Number(m[2]) };
}
