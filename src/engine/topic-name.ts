/**
 * Topic names (SPEC §2): 1-255 bytes of `A-Z a-z 0-9 . _ - :`. Every protocol refuses a bad name
 * with the one error built here, so HTTP and RESP show the same text for the same name.
 */
import { BrokerError } from '../errors.js';

const TOPIC_PATTERN = /^[A-Za-z0-9._:-]{1,255}$/;

/** Longest part of a refused name shown in the error (characters); longer ones end in `...`. */
const SHOWN_NAME_MAX_CHARS = 64;

/** Whether `name` is a valid topic name. */
export function isValidTopicName(name: string): boolean {
  return TOPIC_PATTERN.test(name);
}

/**
 * The error for a refused topic name: MQ_ERR_BAD_TOPIC (400 / -ERR), showing at most the first
 * 64 characters of `name`, with anything outside printable ASCII shown as `?`.
 */
export function badTopicError(name: string): BrokerError {
  const shown = name.length > SHOWN_NAME_MAX_CHARS ? `${name.slice(0, SHOWN_NAME_MAX_CHARS)}...` : name;
  return new BrokerError('MQ_ERR_BAD_TOPIC', [shown.replace(/[^\x20-\x7e]/g, '?')]);
}

/** Throws {@link badTopicError} unless `name` is a valid topic name. */
export function assertTopicName(name: string): void {
  if (!TOPIC_PATTERN.test(name)) throw badTopicError(name);
}
