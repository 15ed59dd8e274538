import assert from 'node:assert/strict';
import test from 'node:test';
import { IdIndex } from '../../src/broker/id-index.js';

test('id index: random sets, gets and deletes agree with a Map, including ids past 2^32', () => {
  const index = new IdIndex();
  const model = new Map<number, number>();
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  // Dense runs (ids are offsets) and far-apart ids, so probe runs cross and wrap.
  const bases = [0, 1 << 20, 2 ** 32 - 100, 2 ** 40, 2 ** 48 - 5000];
  for (let step = 0; step < 200_000; step++) {
    const id = bases[rand(bases.length)]! + rand(4000);
    const op = rand(10);
    if (op < 5) {
      index.set(id, step);
      model.set(id, step);
    } else if (op < 8) {
      assert.equal(index.delete(id), model.delete(id));
    } else {
      assert.equal(index.get(id), model.get(id) ?? -1);
    }
    assert.equal(index.size, model.size);
  }
  for (const [id, h] of model) assert.equal(index.get(id), h);
  const seen = new Map<number, number>();
  index.forEach((id, h) => seen.set(id, h));
  assert.deepEqual([...seen].sort((a, b) => a[0] - b[0]), [...model].sort((a, b) => a[0] - b[0]));
});

test('id index: emptied by deletes, it shrinks and still finds what is left; reserve keeps it large until released', () => {
  const index = new IdIndex();
  index.reserve(100_000);
  for (let id = 0; id < 100_000; id++) index.set(id, id);
  for (let id = 0; id < 99_990; id++) assert.ok(index.delete(id));
  for (let id = 99_990; id < 100_000; id++) assert.equal(index.get(id), id);
  index.reserve(0);
  index.delete(99_990);
  assert.equal(index.size, 9);
  for (let id = 99_991; id < 100_000; id++) assert.equal(index.get(id), id);
  assert.equal(index.get(5), -1);
});

test('id index: ids in increasing order (publishes, replay) with deletes in any order, then out-of-order sets, agree with a Map', () => {
  const index = new IdIndex();
  const model = new Map<number, number>();
  let seed = 777;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let next = 2 ** 33 - 50_000; // offsets past 2^32
  const live: number[] = [];
  for (let step = 0; step < 300_000; step++) {
    const op = rand(20);
    if (op < 9) {
      // Mostly consecutive, sometimes a gap (other records between two publishes).
      next += rand(8) === 0 ? 1 + rand(1000) : 1;
      index.set(next, step);
      model.set(next, step);
      live.push(next);
    } else if (op < 16 && live.length > 0) {
      // Acks: mostly the oldest (a consumer in order), sometimes any.
      const k = rand(3) === 0 ? rand(live.length) : rand(Math.min(live.length, 8));
      const id = live[k]!;
      live[k] = live[live.length - 1]!;
      live.pop();
      assert.equal(index.delete(id), model.delete(id));
      assert.equal(index.delete(id), false);
    } else if (op < 17) {
      // An id below the newest that is not live (a RESTORE met in replay): the out-of-order part.
      const id = next - 1 - rand(5000);
      index.set(id, step);
      if (!model.has(id)) live.push(id);
      model.set(id, step);
    } else if (op < 18 && live.length > 0) {
      // A live id set again (replay superseding a handle).
      const id = live[rand(live.length)]!;
      index.set(id, step);
      model.set(id, step);
    } else {
      const id = next - rand(20_000) + rand(100);
      assert.equal(index.get(id), model.get(id) ?? -1, `get ${id}`);
    }
    assert.equal(index.size, model.size);
  }
  for (const [id, h] of model) assert.equal(index.get(id), h);
  const seen = new Map<number, number>();
  index.forEach((id, h) => {
    assert.ok(!seen.has(id), `forEach gave ${id} twice`);
    seen.set(id, h);
  });
  assert.deepEqual([...seen].sort((a, b) => a[0] - b[0]), [...model].sort((a, b) => a[0] - b[0]));
});
