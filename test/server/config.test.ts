import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, HelpRequested, checkDataDir, parseConfig, type Config } from '../../src/server/config.js';
import { tempDirFor } from '../helpers/index.js';

/** No MINIQUEUE_* variables leak in from the environment the tests run in. */
const NO_ENV: NodeJS.ProcessEnv = {};

function parse(...argv: string[]): Config {
  return parseConfig(argv, NO_ENV);
}

/** Two existing (content-irrelevant) files standing in for a certificate and key. */
function tempCertFiles(t: TestContext): { cert: string; key: string } {
  const dir = tempDirFor(t, 'mq-config-');
  const cert = path.join(dir, 'c.pem');
  const key = path.join(dir, 'k.pem');
  fs.writeFileSync(cert, 'cert');
  fs.writeFileSync(key, 'key');
  return { cert, key };
}

function assertConfigError(fn: () => unknown, option: string): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.option, option);
  assert.equal(caught.code, 'MQ_ERR_CONFIG');
  assert.ok(!/[\r\n]/.test(caught.message), 'the message is one line');
  assert.ok(caught.message.includes(option), 'the message names the option');
  return caught;
}

describe('parseConfig defaults', () => {
  it('gives the SPEC §1 defaults and a frozen object', () => {
    const config = parse();
    assert.deepEqual(
      { ...config },
      {
        port: 8080,
        host: '0.0.0.0',
        redisPort: 6379,
        redisHost: '127.0.0.1',
        db: path.resolve('data'),
        certPath: path.resolve('certs/localhost.pem'),
        keyPath: path.resolve('certs/localhost-key.pem'),
        certExplicit: false,
        tls: true,
        level: 'info',
        human: false,
        periodMs: 1000,
        fsync: 'always',
        fsyncIntervalMs: 1000,
        segmentBytes: 64 * 1024 * 1024,
        maxMessageBytes: 1024 * 1024,
        repair: false,
        compaction: true,
        authToken: null,
        maxConnections: 10000,
        ackTimeoutMs: 0,
        maxDeliveries: 0,
        maxCommandBytes: 2 * 1024 * 1024,
        maxInputBytes: 256 * 1024 * 1024,
        engine: 'log',
        natsServers: ['nats://127.0.0.1:4222'],
        natsStream: 'MINIQUEUE',
        natsReplicas: 1,
        natsLeaseMs: 30_000,
        natsUser: null,
        natsPassword: null,
        natsToken: null,
      },
    );
    assert.ok(Object.isFrozen(config));
  });
});

describe('parseConfig single-dash forms of the Go original', () => {
  it('-port 8081 and -port=8081', () => {
    assert.equal(parse('-port', '8081').port, 8081);
    assert.equal(parse('-port=8081').port, 8081);
  });
  it('-db ./x', () => {
    assert.equal(parse('-db', './x').db, path.resolve('x'));
    assert.equal(parse('-db=./y').db, path.resolve('y'));
  });
  it('-human', () => {
    assert.equal(parse('-human').human, true);
    assert.equal(parse('-human=false').human, false);
    assert.equal(parse('-human=1').human, true);
  });
  it('-level info', () => {
    assert.equal(parse('-level', 'debug').level, 'debug');
    assert.equal(parse('-level', 'info').level, 'info');
    assert.equal(parse('-level=warn').level, 'warn');
  });
  it('-period 1s', () => {
    assert.equal(parse('-period', '1s').periodMs, 1000);
    assert.equal(parse('-period', '250ms').periodMs, 250);
    assert.equal(parse('-period=2m').periodMs, 120_000);
  });
  it('-cert a -key b', (t) => {
    const files = tempCertFiles(t);
    const config = parse('-cert', files.cert, '-key', files.key);
    assert.equal(config.certPath, files.cert);
    assert.equal(config.keyPath, files.key);
    assert.equal(config.certExplicit, true);
  });
  it('all of them together', () => {
    const config = parse('-port', '9000', '-human', '-level', 'error', '-period', '5s', '-db', 'q');
    assert.equal(config.port, 9000);
    assert.equal(config.human, true);
    assert.equal(config.level, 'error');
    assert.equal(config.periodMs, 5000);
    assert.equal(config.db, path.resolve('q'));
  });
});

describe('parseConfig --ack-timeout and --max-deliveries (SPEC §7)', () => {
  it('--ack-timeout takes a Go duration; 0, 0s and off turn it off', () => {
    assert.equal(parse('--ack-timeout', '30s').ackTimeoutMs, 30_000);
    assert.equal(parse('--ack-timeout=250ms').ackTimeoutMs, 250);
    assert.equal(parse('--ack-timeout', '1m30s').ackTimeoutMs, 90_000);
    for (const off of ['0', '0s', 'off', 'OFF', 'none']) assert.equal(parse('--ack-timeout', off).ackTimeoutMs, 0, off);
    assert.equal(parseConfig([], { MINIQUEUE_ACK_TIMEOUT: '5s' }).ackTimeoutMs, 5000);
  });
  it('a bad --ack-timeout names the flag', () => {
    for (const bad of ['soon', '-1s', '10', '']) {
      const err = assertConfigError(() => parse('--ack-timeout', bad), '--ack-timeout');
      assert.match(err.message, /--ack-timeout/);
    }
  });
  it('--max-deliveries is a whole number >= 0 (0 = unlimited)', () => {
    assert.equal(parse('--max-deliveries', '5').maxDeliveries, 5);
    assert.equal(parse('--max-deliveries', '0').maxDeliveries, 0);
    for (const bad of ['-1', 'x', '2.5', '1e3', '1000001']) assertConfigError(() => parse('--max-deliveries', bad), '--max-deliveries');
  });
});

describe('parseConfig long forms', () => {
  it('--port=0 and --port 0 pick a free port', () => {
    assert.equal(parse('--port=0').port, 0);
    assert.equal(parse('--port', '0').port, 0);
    assert.equal(parse('--port', '65535').port, 65535);
  });
  it('the last of a repeated option wins, as with Go flags', () => {
    assert.equal(parse('--port', '1', '--port', '2').port, 2);
  });
  it('--no-tls, --tls=false and --tls false turn TLS off', () => {
    assert.equal(parse('--no-tls').tls, false);
    assert.equal(parse('-no-tls').tls, false);
    assert.equal(parse('--tls=false').tls, false);
    assert.equal(parse('--tls', 'false').tls, false);
    assert.equal(parse('--tls').tls, true);
  });
  it('--redis-port -1 disables RESP, 0 picks a free port', () => {
    assert.equal(parse('--redis-port', '-1').redisPort, -1);
    assert.equal(parse('--redis-port=-1').redisPort, -1);
    assert.equal(parse('--redis-port', '0').redisPort, 0);
    assert.equal(parse('--redis-port', '6380').redisPort, 6380);
  });
  it('hosts', () => {
    assert.equal(parse('--host', '127.0.0.1').host, '127.0.0.1');
    assert.equal(parse('--host', '::').host, '::');
    assert.equal(parse('--host', '[::1]').host, '::1');
    assert.equal(parse('--redis-host', 'localhost').redisHost, 'localhost');
    assert.equal(parse('--redis-host=0.0.0.0').redisHost, '0.0.0.0');
  });
  it('--level words, with disabled = silent and the zerolog names of the original', () => {
    for (const level of ['silent', 'error', 'warn', 'info', 'debug'] as const) {
      assert.equal(parse('--level', level).level, level);
    }
    assert.equal(parse('--level', 'disabled').level, 'silent');
    assert.equal(parse('--level', 'DEBUG').level, 'debug');
    assert.equal(parse('--level', 'trace').level, 'debug');
    assert.equal(parse('--level', 'fatal').level, 'error');
  });
  it('--fsync and --fsync-interval', () => {
    assert.equal(parse('--fsync', 'interval').fsync, 'interval');
    assert.equal(parse('--fsync=never').fsync, 'never');
    assert.equal(parse('--fsync', 'always').fsync, 'always');
    assert.equal(parse('--fsync-interval', '250ms').fsyncIntervalMs, 250);
  });
  it('--segment-bytes and --max-message-bytes', () => {
    assert.equal(parse('--segment-bytes', '4096').segmentBytes, 4096);
    assert.equal(parse('--segment-bytes=128MiB').segmentBytes, 128 * 1024 * 1024);
    assert.equal(parse('--max-message-bytes', '512').maxMessageBytes, 512);
    assert.equal(parse('--max-message-bytes', '4MiB').maxMessageBytes, 4 * 1024 * 1024);
  });
  it('--repair', () => {
    assert.equal(parse('--repair').repair, true);
    assert.equal(parse('-repair').repair, true);
    assert.equal(parse('--repair=false').repair, false);
  });
  it('--period rounds sub-millisecond durations up', () => {
    assert.equal(parse('--period', '500us').periodMs, 1);
  });
  it('--cert and --key must exist only when TLS is on', (t) => {
    const missing = path.join(tempDirFor(t, 'mq-config-'), 'missing.pem');
    const config = parse('--no-tls', '--cert', missing, '--key', missing);
    assert.equal(config.tls, false);
    assert.equal(config.certExplicit, true);
  });
  it('--help and --version throw HelpRequested with the text to print', () => {
    for (const flag of ['--help', '-h', '-help']) {
      assert.throws(
        () => parse(flag),
        (err: unknown) => err instanceof HelpRequested && err.kind === 'help' && err.text.includes('--redis-port'),
      );
    }
    let version: HelpRequested | undefined;
    try {
      parse('--version');
    } catch (err) {
      if (err instanceof HelpRequested) version = err;
    }
    assert.equal(version?.kind, 'version');
    const pkgFile = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../package.json');
    if (fs.existsSync(pkgFile)) {
      assert.equal(version?.text, (JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { version: string }).version);
    }
  });
});

describe('parseConfig environment variables', () => {
  it('MINIQUEUE_<NAME> sets an option; the command line wins', () => {
    const env = { MINIQUEUE_REDIS_PORT: '6390', MINIQUEUE_HUMAN: 'true', MINIQUEUE_PORT: '9001', MINIQUEUE_LEVEL: '' };
    const fromEnv = parseConfig([], env);
    assert.equal(fromEnv.redisPort, 6390);
    assert.equal(fromEnv.human, true);
    assert.equal(fromEnv.port, 9001);
    assert.equal(fromEnv.level, 'info', 'an empty variable is unset');
    assert.equal(parseConfig(['--port', '9002'], env).port, 9002);
  });
  it('a bad environment value names the option', () => {
    assertConfigError(() => parseConfig([], { MINIQUEUE_PERIOD: 'soon' }), '--period');
    assertConfigError(() => parseConfig([], { MINIQUEUE_TLS: 'maybe' }), '--tls');
  });
});

describe('parseConfig rejects bad flags with a ConfigError naming the flag', () => {
  const cases: ReadonlyArray<readonly [string[], string]> = [
    [['--bogus'], '--bogus'],
    [['--bogus', '1'], '--bogus'],
    [['--bogus-thing=1'], '--bogus-thing'],
    [['-bogus'], '-bogus'],
    [['-x'], '-x'],
    [['--prot', '80'], '--prot'],
    [['--data-dir', 'x'], '--data-dir'],
    [['extra'], 'extra'],
    [['--port', '80', '81'], '81'],
    [['--', '--port'], '--port'],
    [['--port', 'abc'], '--port'],
    [['-port', 'abc'], '--port'],
    [['--port', '70000'], '--port'],
    [['--port', '65536'], '--port'],
    [['--port', '-1'], '--port'],
    [['--port', '8080.5'], '--port'],
    [['--port', '0x10'], '--port'],
    [['--port'], '--port'],
    [['--port', '--human'], '--port'],
    [['--port='], '--port'],
    [['--no-port'], '--port'],
    [['--redis-port', '-2'], '--redis-port'],
    [['--redis-port', 'off'], '--redis-port'],
    [['--host', 'not a host'], '--host'],
    [['--redis-host', ''], '--redis-host'],
    [['--db', ''], '--db'],
    [['--period', 'abc'], '--period'],
    [['-period', 'abc'], '--period'],
    [['--period', '-1s'], '--period'],
    [['--period', '0'], '--period'],
    [['--period', '1'], '--period'],
    [['--period', '1000h'], '--period'],
    [['--fsync-interval', '1x'], '--fsync-interval'],
    [['--fsync-interval', '0s'], '--fsync-interval'],
    [['--level', 'verbose'], '--level'],
    [['-level', 'loud'], '--level'],
    [['--fsync', 'sometimes'], '--fsync'],
    [['--fsync', 'everysec'], '--fsync'],
    [['--segment-bytes', '-1'], '--segment-bytes'],
    [['--segment-bytes', '1'], '--segment-bytes'],
    [['--segment-bytes', 'abc'], '--segment-bytes'],
    [['--segment-bytes', '5GiB'], '--segment-bytes'],
    [['--max-message-bytes', '-5'], '--max-message-bytes'],
    [['--max-message-bytes', '0'], '--max-message-bytes'],
    [['--max-message-bytes', '1GiB'], '--max-message-bytes'],
    [['--human=yes'], '--human'],
    [['-human=maybe'], '--human'],
    [['--tls=nope'], '--tls'],
    [['--repair=2'], '--repair'],
    [['--no-tls=1'], '--no-tls'],
    [['--tls', 'abc'], 'abc'],
  ];
  for (const [argv, option] of cases) {
    it(`${argv.join(' ')} -> ${option}`, () => {
      assertConfigError(() => parse(...argv), option);
    });
  }

  it('a named --cert that does not exist', (t) => {
    const missing = path.join(tempDirFor(t, 'mq-config-'), 'nope.pem');
    const err = assertConfigError(() => parse('--cert', missing, '--key', missing), '--cert');
    assert.ok(err.message.includes(missing), 'the message names the path');
  });
  it('a named --key that does not exist', (t) => {
    const files = tempCertFiles(t);
    const missing = path.join(path.dirname(files.key), 'nope-key.pem');
    const err = assertConfigError(() => parse('--cert', files.cert, '--key', missing), '--key');
    assert.ok(err.message.includes(missing), 'the message names the path');
  });
  it('a --cert that is a directory', (t) => {
    const files = tempCertFiles(t);
    assertConfigError(() => parse('--cert', path.dirname(files.cert), '--key', files.key), '--cert');
  });
});

describe('checkDataDir', () => {
  it('accepts an existing writable directory', (t) => {
    checkDataDir(tempDirFor(t, 'mq-config-'));
  });
  it('accepts a missing directory under a writable one, without creating it', (t) => {
    const db = path.join(tempDirFor(t, 'mq-config-'), 'a', 'b');
    checkDataDir(db);
    assert.equal(fs.existsSync(db), false);
    assert.equal(fs.existsSync(path.dirname(db)), false);
  });
  it('rejects a file', (t) => {
    const file = path.join(tempDirFor(t, 'mq-config-'), 'file');
    fs.writeFileSync(file, '');
    assertConfigError(() => checkDataDir(file), '--db');
    assertConfigError(() => checkDataDir(path.join(file, 'below')), '--db');
    assert.equal(fs.readFileSync(file, 'utf8'), '');
  });
  it('rejects a directory this user cannot write', (t) => {
    if (process.getuid?.() === 0) {
      // Root may write anywhere, except on a read-only file system: use a read-only tmpfs.
      const dir = tempDirFor(t, 'mq-config-');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', dir]);
      try {
        assertConfigError(() => checkDataDir(dir), '--db');
        assertConfigError(() => checkDataDir(path.join(dir, 'sub')), '--db');
      } finally {
        execFileSync('umount', [dir]);
      }
      return;
    }
    const dir = tempDirFor(t, 'mq-config-');
    fs.chmodSync(dir, 0o500);
    try {
      assertConfigError(() => checkDataDir(dir), '--db');
      assertConfigError(() => checkDataDir(path.join(dir, 'sub')), '--db');
    } finally {
      fs.chmodSync(dir, 0o700);
    }
  });
});
