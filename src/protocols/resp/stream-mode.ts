/**
 * The SUBSCRIBE stream-mode state of one RESP connection (SPEC §4): one message in flight at a
 * time, and after `--ack-timeout` takes it back, the next settle is refused before the next
 * message is pushed, so a late ACK cannot land on a message the client has not seen.
 *
 * Kept apart from the commands so that it can move behind a queue-engine interface later
 * (issue 12); the HTTP/2 subscribe stream has the same rules.
 */
import { BrokerError } from '../../errors.js';

/** What the state needs of a delivered message: its id, and its identity (the same object until settled). */
export interface StreamDelivery {
  readonly id: number;
}

export class StreamMode {
  /** The topic subscribed to. */
  readonly topic: string;
  /** The message pushed to the client and not yet settled. */
  #inFlight: StreamDelivery | null = null;
  /** Id of the message `--ack-timeout` took back, until the next settle gives it up. */
  #expiredId: number | null = null;

  constructor(topic: string) {
    this.topic = topic;
  }

  /** The message a settle or TOUCH applies to; null when none is (see {@link refusal}). */
  get inFlight(): StreamDelivery | null {
    return this.#inFlight;
  }

  /** Whether a settle now gives up an expired message (and so the next one is asked for). */
  get hasExpired(): boolean {
    return this.#expiredId !== null;
  }

  /** `msg` was pushed to the client. */
  delivered(msg: StreamDelivery): void {
    this.#inFlight = msg;
  }

  /** `--ack-timeout` took `msg` back (a message of a RESERVE on this connection is ignored). */
  expired(msg: StreamDelivery): void {
    if (this.#inFlight !== msg) return;
    this.#inFlight = null;
    this.#expiredId = msg.id;
  }

  /** Takes the message in flight for a settle: the next settle needs the next message. */
  takeInFlight(): StreamDelivery | null {
    const msg = this.#inFlight;
    this.#inFlight = null;
    return msg;
  }

  /**
   * Why `command` (a settle, or `TOUCH`) finds no message in flight: `MQ_ERR_NOT_IN_FLIGHT`
   * naming the expired message, else `MQ_ERR_BAD_COMMAND`. A settle (`givesUp`) gives the expired
   * message up, so it is refused once; a TOUCH leaves it for the settle.
   */
  refusal(command: string, givesUp: boolean): BrokerError {
    const expired = this.#expiredId;
    if (expired === null) return new BrokerError('MQ_ERR_BAD_COMMAND', [`${command}: no message is in flight on this connection`]);
    if (givesUp) this.#expiredId = null;
    return new BrokerError('MQ_ERR_NOT_IN_FLIGHT', [`${expired} (not settled within --ack-timeout)`]);
  }
}
