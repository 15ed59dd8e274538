/**
 * Topic names → JetStream subjects and durable consumer names (src/jetstream/subjects.ts): every
 * SPEC §2 name maps to one subject token, injectively, and back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidTopicName } from '../../src/engine/topic-name.js';
import {
  isValidStreamName,
  MAX_READABLE_TOKEN_LENGTH,
  topicOfSubject,
  topicOfToken,
  topicSubjects,
  topicToken,
} from '../../src/jetstream/subjects.js';
import { prng } from '../helpers/index.js';

const ALPHABET = 'ABCxyz0189._-:';

test('dots and underscores are escaped; the escape is injective', () => {
  assert.equal(topicToken('jobs'), 'jobs');
  assert.equal(topicToken('jobs.dead'), 'jobs_2Edead');
  assert.equal(topicToken('a_2Eb'), 'a_5F2Eb');
  assert.notEqual(topicToken('a.b'), topicToken('a_2Eb'));
  assert.equal(topicToken('a:b-c'), 'a:b-c');
  for (const bad of ['a_', 'a_2', 'a_ZZ', 'a.b', 'a b', '', 'a_2e']) assert.equal(topicOfToken(bad), undefined, bad);
});

test('random topic names: the token is one NATS token and decodes back; no two names share one', () => {
  const rand = prng(15);
  const seen = new Map<string, string>();
  for (let i = 0; i < 5000; i++) {
    const len = 1 + Math.floor(rand() * 12);
    let name = '';
    for (let j = 0; j < len; j++) name += ALPHABET[Math.floor(rand() * ALPHABET.length)];
    assert.ok(isValidTopicName(name));
    const token = topicToken(name);
    assert.match(token, /^[^.*> \t\r\n]+$/);
    assert.equal(topicOfToken(token), name);
    const other = seen.get(token);
    assert.ok(other === undefined || other === name, `${name} and ${other} share ${token}`);
    seen.set(token, name);
    const s = topicSubjects('MINIQUEUE', name);
    assert.equal(s.subject, `MINIQUEUE.${token}`);
    assert.equal(topicOfSubject('MINIQUEUE', s.subject), name);
    assert.equal(s.durable, `t_${token}`);
  }
});

test('long names get a hashed consumer name that fits a file name; subjects stay exact', () => {
  const long = 'a.'.repeat(127) + 'b';
  assert.equal(long.length, 255);
  const s = topicSubjects('MINIQUEUE', long);
  assert.ok(topicToken(long).length > MAX_READABLE_TOKEN_LENGTH);
  assert.match(s.durable, /^h_[0-9a-f]{64}$/);
  assert.notEqual(s.durable, topicSubjects('MINIQUEUE', long.slice(0, -1) + 'c').durable);
  assert.equal(topicOfSubject('MINIQUEUE', s.subject), long);
  assert.equal(topicOfSubject('OTHER', s.subject), undefined);
});

test('--nats-stream names', () => {
  for (const ok of ['MINIQUEUE', 'mq-test_1']) assert.ok(isValidStreamName(ok), ok);
  for (const bad of ['', 'a.b', 'a b', 'a*', 'a>', 'X_DACKS', 'x'.repeat(65)]) assert.ok(!isValidStreamName(bad), bad);
});
