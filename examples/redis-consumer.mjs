#!/usr/bin/env node
// A consumer over the Redis protocol with ioredis: RESERVE a message, process it, ACK it, until
// the topic stays empty for one RESERVE timeout (or forever with --follow). It first publishes
// --count messages with PUBLISH so there is something to consume.
//
//   node examples/redis-consumer.mjs                          # RESP on redis://127.0.0.1:6379
//   node examples/redis-consumer.mjs --count 0 --topic jobs --follow
//
// Messages published over HTTP/2 (curl, the miniqueue client) land in the same queues.
import { parseArgs } from 'node:util';
import Redis from 'ioredis';

const usage =
  'node examples/redis-consumer.mjs [--redis-url redis://127.0.0.1:6379] [--topic NAME] [--count 5] [--timeout-ms 1000] [--follow]';
let values;
try {
  ({ values } = parseArgs({
    options: {
      'redis-url': { type: 'string', default: process.env.MINIQUEUE_REDIS_URL || 'redis://127.0.0.1:6379' },
      topic: { type: 'string' },
      count: { type: 'string', default: '5' },
      'timeout-ms': { type: 'string', default: '1000' },
      follow: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\nusage: ${usage}`);
  process.exit(2);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const count = Number(values.count);
const timeoutMs = Number(values['timeout-ms']);
if (!Number.isInteger(count) || count < 0 || !Number.isInteger(timeoutMs) || timeoutMs < 0) {
  console.error(`--count and --timeout-ms must be whole numbers >= 0\nusage: ${usage}`);
  process.exit(2);
}
const topic = values.topic ?? `examples.redis.${Date.now()}.${process.pid}`;

// Fail fast instead of ioredis' default of reconnecting forever.
const redis = new Redis(values['redis-url'], { maxRetriesPerRequest: 1, retryStrategy: () => null });
redis.on('error', () => {}); // each failed command rejects with the error as well

try {
  for (let i = 0; i < count; i++) await redis.call('PUBLISH', topic, `job ${i}`);
  if (count > 0) console.log(`published ${count} messages to ${topic} with PUBLISH`);
  let consumed = 0;
  for (;;) {
    // [id, payload, dackCount], or null when nothing arrived within the timeout.
    const reply = await redis.callBuffer('RESERVE', topic, String(timeoutMs));
    if (reply === null) {
      if (values.follow) continue;
      break;
    }
    const [id, payload, dackCount] = reply;
    console.log(`RESERVE -> id ${id.toString()} ${JSON.stringify(payload.toString('utf8'))} dackCount ${dackCount}`);
    await redis.call('ACK', topic, id);
    consumed++;
  }
  console.log(`consumed ${consumed} messages; the topic stayed empty for ${timeoutMs} ms`);
  if (values.topic === undefined) await redis.call('DEL', topic);
} catch (err) {
  console.error(`redis consumer failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  redis.disconnect();
}
