#!/usr/bin/env node
// The smallest round trip: publish one line, subscribe, receive it, ack it.
//
//   node examples/echo.mjs --insecure "hello world"
//
// Without --topic a fresh topic is used and deleted at the end.
import { clientFrom, freshTopic, parseOptions } from './_shared.mjs';

const usage = 'node examples/echo.mjs [--url URL] [--ca FILE | --insecure] [--topic NAME] [text...]';
const { values, positionals } = parseOptions({}, usage);
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const text = positionals.length > 0 ? positionals.join(' ') : 'hello from miniqueue';
const topic = values.topic ?? freshTopic('echo');
const mq = clientFrom(values);

try {
  await mq.publish(topic, text);
  console.log(`published ${JSON.stringify(text)} to ${topic}`);
  for await (const msg of mq.subscribe(topic)) {
    console.log(`received #${msg.id} ${JSON.stringify(msg.data.toString('utf8'))}`);
    await msg.ack();
    break; // ends the subscription stream
  }
  if (values.topic === undefined) await mq.deleteTopic(topic);
} catch (err) {
  console.error(`echo failed: ${err.code ?? ''} ${err.message}`);
  process.exitCode = 1;
} finally {
  await mq.close();
}
