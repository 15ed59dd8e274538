import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseByteSize, parseDurationMs } from '../../src/server/duration.js';

describe('parseDurationMs', () => {
  const valid: ReadonlyArray<readonly [string, number]> = [
    ['0', 0],
    ['+0', 0],
    ['0s', 0],
    ['0ms', 0],
    ['250ms', 250],
    ['1s', 1000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1m30s500ms', 90_500],
    ['1.5s', 1500],
    ['.5s', 500],
    ['1.s', 1000],
    ['+1s', 1000],
    ['1000000ns', 1],
    ['1500us', 2], // rounded up to whole milliseconds
    ['500us', 1],
    ['500\u00b5s', 1], // µ (micro sign)
    ['500\u03bcs', 1], // μ (Greek mu)
    ['1ns', 1],
    ['2.000001ms', 3], // 2 ms + 1 ns
    ['2.0000001ms', 2], // 2 ms + 0.1 ns: below a nanosecond is dropped before rounding up
    ['1.0000000001s', 1000], // finer than a nanosecond is dropped, as in Go
    ['2562047h', 2562047 * 3_600_000],
  ];
  for (const [text, ms] of valid) {
    it(`parses ${JSON.stringify(text)} as ${ms} ms`, () => {
      assert.equal(parseDurationMs(text), ms);
    });
  }

  const invalid = ['', '-1s', '-0', '1', '10', '1m30', 'abc', 's', '.s', '1x', '1S', '1 s', ' 1s', '1s ', '1e3s', '+', '1..5s', '2562048h', '1d'];
  for (const text of invalid) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseDurationMs(text), RangeError);
    });
  }
});

describe('parseByteSize', () => {
  const valid: ReadonlyArray<readonly [string, number]> = [
    ['0', 0],
    ['4096', 4096],
    ['100B', 100],
    ['1k', 1024],
    ['1K', 1024],
    ['1KB', 1024],
    ['1KiB', 1024],
    ['64kib', 65536],
    ['1M', 1048576],
    ['64MiB', 64 * 1048576],
    ['64 MiB', 64 * 1048576],
    ['1MB', 1048576],
    ['1G', 1024 ** 3],
    ['4GiB', 4 * 1024 ** 3],
    ['1TiB', 1024 ** 4],
    ['1.5MiB', 1572864],
    ['0.1KiB', 102], // rounded down to whole bytes
  ];
  for (const [text, bytes] of valid) {
    it(`parses ${JSON.stringify(text)} as ${bytes} bytes`, () => {
      assert.equal(parseByteSize(text), bytes);
    });
  }

  const invalid = ['', '-1', '-1KiB', 'abc', 'KiB', '1.5', '1PiB', '1 ', ' 1', '1  MiB', '0x10', '1e3', '99999999999999999'];
  for (const text of invalid) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseByteSize(text), RangeError);
    });
  }
});
