/**
 * The payload cache is bounded (BrokerOptions.payloadCacheBytes): MessageStore keeps payloads
 * while their bytes plus a per-entry overhead fit, frees the room when a message goes, and every
 * payload past the bound is read back from its segment.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageStore } from '../../src/broker/message-store.js';
import { CACHE_ENTRY_OVERHEAD_BYTES, PayloadCache } from '../../src/broker/payload-cache.js';
import { Topic } from '../../src/broker/topic.js';
import { harness, publish, recorder, settle, takeAll, text } from '../helpers/index.js';

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
  const taken = takeAll(consumer, 'q');
  assert.deepEqual(
    taken.map((m) => text(m)),
    payloads,
    'uncached payloads are read back intact',
  );
  for (const m of taken.slice(0, 3)) await settle(consumer, m, 'ACK');
  await publish(broker, 'q', 'after');
  const ready = broker.inspect('q')!.ready;
  assert.equal(ready.length, 1);
  assert.equal(ready[0]!.payloadCached, true, 'the acked payloads left room');
});

test('PayloadCache: small payloads share slabs within the bound; views keep their bytes; an emptied slab is freed', () => {
  const cache = new PayloadCache(1 << 20); // 8 slabs of 128 KiB
  assert.equal(cache.slabBytes, 128 * 1024);
  const refs: number[] = [];
  const payload = (i: number): Buffer => Buffer.from(`message-${i}`.padEnd(100, '.'));
  for (let i = 0; refs.length === i; i++) {
    const ref = cache.add(payload(i));
    if (ref === 0) break;
    refs.push(ref);
    assert.ok(cache.heldBytes <= 1 << 20, 'never past the bound');
  }
  // 8 slabs of 1310 payloads (100 bytes each, 131072 / 100 = 1310.72).
  assert.equal(refs.length, 8 * 1310);
  assert.equal(cache.heldBytes, 1 << 20);
  const firstView = cache.view(refs[0]!, 100);
  assert.equal(firstView.toString().slice(0, 10), 'message-0.');
  // Emptying the first slab frees it: room for another slab's worth.
  for (const ref of refs.slice(0, 1310)) cache.release(ref);
  assert.equal(cache.heldBytes, 7 * 128 * 1024);
  const again = cache.add(payload(99_999));
  assert.notEqual(again, 0);
  assert.equal(cache.view(again, 100).toString().slice(0, 14), 'message-99999.');
  assert.equal(firstView.toString().slice(0, 10), 'message-0.', 'a view handed out earlier keeps its bytes');
  for (let i = 1310; i < refs.length; i += 997) assert.equal(cache.view(refs[i]!, 100).toString(), payload(i).toString());
});

test('PayloadCache: long payloads are kept as given, empty ones are not cached, and a zero bound caches nothing', () => {
  const cache = new PayloadCache(1 << 20);
  const long = Buffer.alloc(cache.dedicatedMinBytes, 7);
  const ref = cache.add(long);
  assert.notEqual(ref, 0);
  assert.equal(cache.view(ref, long.length).buffer, long.buffer, 'not copied');
  assert.equal(cache.heldBytes, long.length + CACHE_ENTRY_OVERHEAD_BYTES);
  cache.release(ref);
  assert.equal(cache.heldBytes, 0);
  assert.equal(cache.add(Buffer.alloc(0)), 0);
  const none = new PayloadCache(0);
  assert.equal(none.add(Buffer.from('x')), 0);
  assert.equal(none.add(Buffer.alloc(1000)), 0);
  assert.equal(none.heldBytes, 0);
});
