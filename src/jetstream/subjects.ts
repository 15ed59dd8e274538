/**
 * Names on the NATS side of the jetstream engine (issue 15): how a topic (SPEC §2: 1-255 bytes of
 * `A-Z a-z 0-9 . _ - :`) becomes a subject and a durable consumer name, without collisions.
 *
 * - A topic is one subject token: `.` separates tokens in NATS, so it is escaped, and so is `_`,
 *   the escape character: `.` → `_2E`, `_` → `_5F` (percent-encoding with `_`). Every other topic
 *   character is legal in a token as it is. The encoding is injective (decoding inverts it), so
 *   two topics never share a subject: `a.b` → `a_2Eb`, `a_2Eb` → `a_5F2Eb`.
 * - Messages of topic T live on subject `<stream>.<token(T)>` of the stream `<stream>`
 *   (`--nats-stream`, default MINIQUEUE), whose subjects are `<stream>.>`.
 * - Topic T's durable pull consumer, shared by every gateway, is `t_<token(T)>`; a token longer
 *   than {@link MAX_READABLE_TOKEN_LENGTH} (the server stores a consumer in a directory named
 *   after it, and file names stop at 255 bytes) gives `h_<sha256 hex of T>` instead. The two
 *   forms cannot meet (a token never contains a bare `_`), and the consumer's filter subject
 *   names its topic exactly.
 * - DACK counts live in the stream `<stream>_DACKS` on `<stream>_DACKS.<token(T)>.<stream seq>`.
 * - Gateways tell each other of deleted topics on the core NATS subject `_MQ.<stream>.deleted`
 *   (not stored).
 */
import { createHash } from 'node:crypto';
import { isValidTopicName } from '../engine/topic-name.js';

/** Consumer names from tokens up to this length are readable (`t_<token>`); longer ones are hashed. */
export const MAX_READABLE_TOKEN_LENGTH = 200;

/** What `--nats-stream` accepts: a JetStream stream name that is also one subject token. */
const STREAM_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Whether `name` can be the `--nats-stream`: letters, digits, `_` and `-`, 1-64 characters, not
 * ending in `_DACKS` (that suffix names the DACK-count stream beside a stream).
 */
export function isValidStreamName(name: string): boolean {
  return STREAM_NAME_PATTERN.test(name) && !name.endsWith(DACK_STREAM_SUFFIX);
}

const DACK_STREAM_SUFFIX = '_DACKS';

/** The subject token of a valid topic name (see the file comment). */
export function topicToken(topic: string): string {
  return topic.replace(/[._]/g, (c) => (c === '.' ? '_2E' : '_5F'));
}

/** The topic of a subject token, or undefined when `token` is not one {@link topicToken} makes. */
export function topicOfToken(token: string): string | undefined {
  let bad = false;
  const topic = token.replace(/_(..)?/g, (_m, code: string | undefined) => {
    if (code === '2E') return '.';
    if (code === '5F') return '_';
    bad = true;
    return '';
  });
  if (bad || !isValidTopicName(topic) || topicToken(topic) !== token) return undefined;
  return topic;
}

/** The NATS names of one topic in one stream. */
export interface TopicSubjects {
  topic: string;
  /** Where its messages are stored: `<stream>.<token>`. */
  subject: string;
  /** Its durable pull consumer. */
  durable: string;
  /** Its DACK counts: `<stream>_DACKS.<token>` followed by `.<stream seq>`. */
  dackPrefix: string;
}

/** The subjects and consumer name of `topic` (a valid topic name) in stream `stream`. */
export function topicSubjects(stream: string, topic: string): TopicSubjects {
  const token = topicToken(topic);
  const durable = token.length <= MAX_READABLE_TOKEN_LENGTH ? `t_${token}` : `h_${createHash('sha256').update(topic).digest('hex')}`;
  return { topic, subject: `${stream}.${token}`, durable, dackPrefix: `${dackStreamName(stream)}.${token}` };
}

/** The topic stored on `subject` of stream `stream`, or undefined when it is not a topic subject. */
export function topicOfSubject(stream: string, subject: string): string | undefined {
  const prefix = `${stream}.`;
  if (!subject.startsWith(prefix)) return undefined;
  return topicOfToken(subject.slice(prefix.length));
}

/** The stream that keeps DACK counts beside stream `stream`. */
export function dackStreamName(stream: string): string {
  return stream + DACK_STREAM_SUFFIX;
}

/** The core NATS subject on which gateways announce deleted topics. */
export function deletedTopicsSubject(stream: string): string {
  return `_MQ.${stream}.deleted`;
}
