#!/usr/bin/env node
// Retry with exponential backoff using DACK: a job that fails is DACKed for 2^dackCount
// seconds (1, 2, 4, ... capped at --cap-seconds); the server keeps it aside that long, then
// hands it out again with dackCount + 1. After --max-retries failures it is acked anyway
// (given up; a real system would record it somewhere first).
//
//   node examples/backoff.mjs --insecure                      # fails 3 times: waits 1 s, 2 s, 4 s, then succeeds
//   node examples/backoff.mjs --insecure --fail-times 10      # gives up after --max-retries 5
//
// The server returns DACKed messages on its --period tick (1 s by default), so each wait can
// be up to one period longer than asked.
import { clientFrom, freshTopic, intOption, parseOptions } from './_shared.mjs';

const usage =
  'node examples/backoff.mjs [--url URL] [--ca FILE | --insecure] [--topic NAME] [--fail-times 3] [--max-retries 5] [--cap-seconds 30]';
const { values } = parseOptions(
  {
    'fail-times': { type: 'string', default: '3' },
    'max-retries': { type: 'string', default: '5' },
    'cap-seconds': { type: 'string', default: '30' },
  },
  usage,
);
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const failTimes = intOption(values, 'fail-times', 0);
const maxRetries = intOption(values, 'max-retries', 0);
const capSeconds = intOption(values, 'cap-seconds', 0);
const topic = values.topic ?? freshTopic('backoff');
const mq = clientFrom(values);

/** Stands in for real work: fails the first --fail-times attempts. */
function processJob(msg) {
  if (msg.dackCount < failTimes) throw new Error(`simulated failure #${msg.dackCount + 1}`);
}

try {
  const started = Date.now();
  const since = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  await mq.publish(topic, 'resize image 42');
  console.log(`${since()} published a job to ${topic}`);
  for await (const msg of mq.subscribe(topic)) {
    const attempt = msg.dackCount + 1;
    try {
      processJob(msg);
      console.log(`${since()} attempt ${attempt}: done, ACK`);
      await msg.ack();
      break;
    } catch (err) {
      if (msg.dackCount >= maxRetries) {
        console.log(`${since()} attempt ${attempt}: ${err.message}; giving up after ${attempt} attempts, ACK`);
        await msg.ack();
        break;
      }
      const delaySeconds = Math.min(2 ** msg.dackCount, capSeconds);
      console.log(`${since()} attempt ${attempt}: ${err.message}; DACK ${delaySeconds}`);
      await msg.dack(delaySeconds);
    }
  }
  if (values.topic === undefined) await mq.deleteTopic(topic);
} catch (err) {
  console.error(`backoff failed: ${err.code ?? ''} ${err.message}`);
  process.exitCode = 1;
} finally {
  await mq.close();
}
