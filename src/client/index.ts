/**
 * `miniqueue/client`: a typed Node.js client for miniqueue's HTTP/2 API (SPEC §3), with no
 * dependencies beyond Node's built-ins.
 *
 * ```js
 * import { MiniqueueClient } from 'miniqueue/client';
 *
 * const mq = new MiniqueueClient({ url: 'https://localhost:8080', rejectUnauthorized: false });
 * await mq.publish('jobs', 'hello');
 * for await (const msg of mq.subscribe('jobs')) {
 *   console.log(msg.id, msg.data.toString());
 *   await msg.ack();
 * }
 * ```
 *
 * @packageDocumentation
 */
export { MiniqueueClient, type ClientOptions, type Payload, type TopicStats } from './client.js';
/** The client under the short name the issue and most users expect: `import { Client } from 'miniqueue/client'`. */
export { MiniqueueClient as Client } from './client.js';
export { Subscription, type SubscribeOptions } from './subscription.js';
export { Message, MAX_DACK_SECONDS, type SettleCommand } from './message.js';
export { MiniqueueError, CLIENT_ERRORS, type ClientErrorCode, type MiniqueueErrorCode } from './errors.js';
export { DEFAULT_BACKOFF, backoffDelayMs, type BackoffOptions } from './backoff.js';
