/** The text of a message's record in `<stream>_DACKS` (delivery-record.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeDeliveryRecord, parseDeliveryRecord } from '../../src/jetstream/delivery-record.js';

test('a record reads back as written; a record of one number (older gateways) is a dackCount', () => {
  const text = new TextDecoder().decode(encodeDeliveryRecord({ dackCount: 2, unseen: 5 }));
  assert.equal(text, '2 5');
  assert.deepEqual(parseDeliveryRecord(text), { dackCount: 2, unseen: 5 });
  assert.deepEqual(parseDeliveryRecord('3'), { dackCount: 3, unseen: 0 });
  for (const bad of ['', 'x', '1 2 3', '-1 0', '1 -2', '1.5 0', '1 y']) assert.equal(parseDeliveryRecord(bad), undefined, bad);
});
