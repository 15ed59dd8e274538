/**
 * The payload cache is bounded (BrokerOptions.payloadCacheBytes): MessageStore keeps payloads
 * while their bytes plus a per-entry overhead fit, frees the room when a message goes, and every
 * payload past the bound is read back from its segment.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CACHE_ENTRY_OVERHEAD_BYTES, MessageStore } from '../../src/broker/message-store.js';
import { Topic } from '../../src/broker/topic.js';
import { harness, publish, recorder, settle, takeAll, text } from './broker-fixtures.js';

test('MessageStore caches payloads up to its bound, inclusive, and frees the room when a message is forgotten', () => {
  const payloadBytes = 100;
  const store = new MessageStore(3 * (payloadBytes + CACHE_ENTRY_OVERHEAD_BYTES));
  const topic = new Topic('t', store);
  const handles = [0, 1, 2, 3].map((i) => store.add(i, topic, 0, payloadBytes));
  for (const h of handles) store.cachePayload(h, Buffer.alloc(payloadBytes, h));
  assert.deepEqual(
    handles.map((h) => store.isCached(h)),
    [true, true, true, false],
    'three fit exactly; the fourth would pass the bound',
  );
  assert.equal(store.payloadOf(handles[1]!)[0], 1);
  store.forget(handles[0]!);
  assert.equal(store.isCached(handles[0]!), false);
  store.cachePayload(handles[3]!, Buffer.alloc(payloadBytes, 3));
  assert.equal(store.isCached(handles[3]!), true, 'the forgotten payload made room');
  store.uncachePayload(handles[3]!);
  store.uncachePayload(handles[3]!); // twice: counted once
  store.cachePayload(handles[3]!, Buffer.alloc(payloadBytes, 3));
  assert.equal(store.isCached(handles[3]!), true);
  const big = store.add(9, topic, 0, 10_000);
  store.cachePayload(big, Buffer.alloc(10_000));
  assert.equal(store.isCached(big), false, 'a payload larger than the whole bound is never cached');
});

test('the broker caches publishes up to payloadCacheBytes and reads the rest back from the log; acks make room again', async (t) => {
  const payloadBytes = 1000;
  const broker = harness(t).open({ payloadCacheBytes: 3 * (payloadBytes + CACHE_ENTRY_OVERHEAD_BYTES) });
  const payloads = Array.from({ length: 6 }, (_, i) => String(i).repeat(payloadBytes));
  for (const p of payloads) await publish(broker, 'q', p);
  assert.deepEqual(
    broker.inspect('q')!.ready.map((m) => m.payloadCached),
    [true, true, true, false, false, false],
  );
  const { consumer } = recorder(broker);
  const taken = takeAll(broker, consumer, 'q');
  assert.deepEqual(
    taken.map((m) => text(broker, m)),
    payloads,
    'uncached payloads are read back intact',
  );
  for (const m of taken.slice(0, 3)) await settle(broker, consumer, m.id, 'ACK');
  await publish(broker, 'q', 'after');
  const ready = broker.inspect('q')!.ready;
  assert.equal(ready.length, 1);
  assert.equal(ready[0]!.payloadCached, true, 'the acked payloads left room');
});
