import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LastTopicName } from '../../../src/protocols/resp/last-topic-name.js';

test('LastTopicName gives the string of each argument, whether it repeats the last name or not', () => {
  const names = new LastTopicName();
  const chunk = Buffer.from('orders|orders|ordert|o|' + 'x'.repeat(100) + '|' + 'x'.repeat(100) + '|orders');
  const args: Buffer[] = [];
  let p = 0;
  for (;;) {
    const bar = chunk.indexOf(0x7c, p);
    args.push(chunk.subarray(p, bar < 0 ? chunk.length : bar));
    if (bar < 0) break;
    p = bar + 1;
  }
  assert.deepEqual(
    args.map((a) => names.of(a)),
    ['orders', 'orders', 'ordert', 'o', 'x'.repeat(100), 'x'.repeat(100), 'orders'],
  );
  // A kept name is a copy: the socket chunk it came from may be reused for other bytes.
  const reused = Buffer.from('alpha');
  assert.equal(names.of(reused), 'alpha');
  reused.write('beta!');
  assert.equal(names.of(reused), 'beta!');
  assert.equal(names.of(Buffer.from([0xe9, 0x74, 0xe9])), '\u00e9t\u00e9', 'latin1, as before');
});
