/**
 * The record checksum: the hybrid crc32() agrees with the `crc-32` package (the format's
 * reference) for every length around the switch to the native implementation, and beyond.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import CRC32 from 'crc-32';
import crypto from 'node:crypto';
import { NATIVE_CRC_MIN_BYTES, crc32, crc32Range } from '../../src/log/crc32.js';
import { prng } from '../helpers/index.js';

test('crc32 agrees with the crc-32 package on random bytes of every length 0..600 and on large inputs', () => {
  const rand = prng(32);
  const sizes = [...Array.from({ length: 601 }, (_, i) => i), NATIVE_CRC_MIN_BYTES - 1, NATIVE_CRC_MIN_BYTES, 4096, 65_537, 1 << 20];
  for (const size of sizes) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = Math.floor(rand() * 256);
    // A view at an odd offset of a larger buffer, as records are checked in place.
    const framed = Buffer.concat([Buffer.from([1, 2, 3]), bytes, Buffer.from([4])]).subarray(3, 3 + size);
    const expected = CRC32.buf(bytes) >>> 0;
    assert.equal(crc32(bytes), expected, `length ${size}`);
    assert.equal(crc32(framed), expected, `length ${size}, unaligned view`);
  }
});

test('crc32 returns unsigned values (the high bit set is not negative)', () => {
  let high = 0;
  for (let i = 0; i < 64; i++) {
    const value = crc32(Buffer.alloc(i % 2 === 0 ? 10 : 300, i));
    assert.ok(value >= 0 && value <= 0xffffffff);
    if (value > 0x7fffffff) high++;
  }
  assert.ok(high > 0);
});

test('crc32Range agrees with the crc-32 package on random buffers and ranges, short and long', () => {
  for (let n = 0; n < 3000; n++) {
    const buf = crypto.randomBytes(Math.floor(Math.random() * 600));
    const start = Math.floor(Math.random() * (buf.length + 1));
    const end = start + Math.floor(Math.random() * (buf.length - start + 1));
    assert.equal(crc32Range(buf, start, end), CRC32.buf(buf.subarray(start, end)) >>> 0, `length ${buf.length}, range [${start}, ${end})`);
  }
  assert.equal(crc32Range(Buffer.from('123456789'), 0, 9), 0xcbf43926);
  assert.equal(crc32Range(Buffer.alloc(4), 2, 2), 0);
});
