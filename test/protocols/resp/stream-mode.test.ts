/**
 * SUBSCRIBE stream-mode state (stream-mode.ts): one message in flight; after `--ack-timeout`
 * takes it back, the next settle is refused once (naming it), and a TOUCH is refused without
 * using that refusal up. The end-to-end behaviour is in operability.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StreamMode, type StreamDelivery } from '../../../src/protocols/resp/stream-mode.js';

function message(id: number): StreamDelivery {
  return { id };
}

test('a settle takes the message in flight; with none, it is refused as a bad command', () => {
  const s = new StreamMode('s.t');
  assert.equal(s.topic, 's.t');
  assert.equal(s.takeInFlight(), null);
  const m = message(7);
  s.delivered(m);
  assert.equal(s.inFlight, m);
  assert.equal(s.takeInFlight(), m);
  assert.equal(s.inFlight, null);
  const err = s.refusal('ACK', true);
  assert.equal(err.code, 'MQ_ERR_BAD_COMMAND');
  assert.equal(err.toRespLine(), 'ERR invalid command: ACK: no message is in flight on this connection');
});

test('after an expiry: TOUCH is refused and leaves the refusal for the settle, which uses it up', () => {
  const s = new StreamMode('s.t');
  const m = message(9);
  s.delivered(m);
  s.expired(message(8)); // another message (a RESERVE of this connection): ignored
  assert.equal(s.inFlight, m);
  s.expired(m);
  assert.equal(s.inFlight, null);
  assert.ok(s.hasExpired);
  assert.equal(s.refusal('TOUCH', false).toRespLine(), 'ERR no message 9 (not settled within --ack-timeout) is in flight on this consumer');
  assert.ok(s.hasExpired);
  assert.equal(s.refusal('ACK', true).code, 'MQ_ERR_NOT_IN_FLIGHT');
  assert.ok(!s.hasExpired);
  assert.equal(s.refusal('ACK', true).code, 'MQ_ERR_BAD_COMMAND');
});
