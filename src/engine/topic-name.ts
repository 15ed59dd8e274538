/**
 * Topic names (SPEC §2): 1-255 bytes of `A-Z a-z 0-9 . _ - :`.
 */
import { BrokerError } from '../errors.js';

const TOPIC_PATTERN = /^[A-Za-z0-9._:-]{1,255}$/;

/** Whether `name` is a valid topic name. */
export function isValidTopicName(name: string): boolean {
  return TOPIC_PATTERN.test(name);
}

/** Throws BrokerError MQ_ERR_BAD_TOPIC (400 / -ERR) unless `name` is a valid topic name. */
export function assertTopicName(name: string): void {
  if (!TOPIC_PATTERN.test(name)) {
    const shown = name.length > 64 ? `${name.slice(0, 64)}...` : name;
    throw new BrokerError('MQ_ERR_BAD_TOPIC', [shown.replace(/[^\x20-\x7e]/g, '?')]);
  }
}
