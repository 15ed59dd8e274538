import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/server/logger.js';

/** A stream that keeps everything written to it, and the text of it so far. */
function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('createLogger', () => {
  it('writes one JSON object per line to the given stream, synchronously', () => {
    const out = sink();
    const log = createLogger({ level: 'info', human: false }, out.stream);
    log.info({ protocol: 'http2', port: 8080 }, 'listening');
    log.debug('not at info level');
    const lines = out.text().split('\n').filter((line) => line !== '');
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    assert.equal(entry['msg'], 'listening');
    assert.equal(entry['protocol'], 'http2');
    assert.equal(entry['port'], 8080);
    assert.equal(entry['level'], 30);
    assert.equal(typeof entry['time'], 'number');
  });

  it('honours each level', () => {
    const out = sink();
    const log = createLogger({ level: 'warn', human: false }, out.stream);
    log.info('hidden');
    log.warn('shown');
    log.error('shown too');
    const messages = out.text().split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
    assert.deepEqual(messages, ['shown', 'shown too']);
    assert.equal(log.isLevelEnabled('debug'), false);
    assert.equal(createLogger({ level: 'debug', human: false }, sink().stream).isLevelEnabled('debug'), true);
  });

  it('writes nothing at level silent', () => {
    const out = sink();
    const log = createLogger({ level: 'silent', human: false }, out.stream);
    log.error('nothing');
    log.warn('nothing');
    assert.equal(out.text(), '');
  });

  it('writes pretty lines with human, synchronously', () => {
    const out = sink();
    const log = createLogger({ level: 'info', human: true }, out.stream);
    log.info({ port: 8080 }, 'listening');
    const text = out.text();
    assert.match(text, /INFO/);
    assert.match(text, /listening/);
    assert.match(text, /port: 8080/);
    assert.throws(() => JSON.parse(text.split('\n')[0] ?? ''));
    assert.ok(!text.includes('\u001b['), 'no colour codes into a non-terminal stream');
  });
});
