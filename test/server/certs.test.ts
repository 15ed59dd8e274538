import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { ensureDevCert } from '../../src/server/certs.js';
import { ConfigError } from '../../src/server/config.js';
import { createLogger } from '../../src/server/logger.js';
import { tempDirFor } from '../helpers/index.js';

/** A logger whose JSON lines are collected, parsed, in `entries`. */
function captureLogger(): { log: ReturnType<typeof createLogger>; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      for (const line of String(chunk).split('\n')) {
        if (line !== '') entries.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { log: createLogger({ level: 'debug', human: false }, sink), entries };
}

async function assertRejectsWithOption(promise: Promise<unknown>, option: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.option, option);
    return true;
  });
}

describe('ensureDevCert', () => {
  it('generates a localhost certificate when neither file exists, then reuses it', async (t) => {
    const dir = tempDirFor(t, 'mq-certs-');
    // A directory that does not exist yet: it is created (mkdir -p).
    const certPath = path.join(dir, 'nested', 'certs', 'localhost.pem');
    const keyPath = path.join(dir, 'nested', 'certs', 'localhost-key.pem');
    const { log, entries } = captureLogger();

    const first = await ensureDevCert({ certPath, keyPath, certExplicit: false }, log);
    assert.ok(fs.existsSync(certPath));
    assert.ok(fs.existsSync(keyPath));
    assert.equal(fs.statSync(keyPath).mode & 0o777, 0o600);
    assert.deepEqual(fs.readFileSync(certPath), first.cert);
    assert.deepEqual(fs.readFileSync(keyPath), first.key);
    assert.deepEqual(fs.readdirSync(path.dirname(certPath)).sort(), ['localhost-key.pem', 'localhost.pem'], 'no temporary files left');

    const x509 = new crypto.X509Certificate(first.cert.toString('utf8'));
    assert.match(x509.subject, /CN=localhost/);
    assert.match(x509.subjectAltName ?? '', /DNS:localhost/);
    assert.equal(x509.checkHost('localhost'), 'localhost');
    assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x509.checkIP('::1'), '::1');
    assert.ok(x509.checkPrivateKey(crypto.createPrivateKey(first.key)));
    const validDays = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000;
    assert.ok(validDays >= 364 && validDays <= 366, `valid for ${validDays} days`);
    assert.ok(Date.parse(x509.validFrom) <= Date.now());

    const warnings = entries.filter((entry) => entry['level'] === 40);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.['msg'], 'generated a self-signed development certificate');
    assert.equal(warnings[0]?.['cert'], certPath);
    assert.equal(warnings[0]?.['key'], keyPath);

    const second = await ensureDevCert({ certPath, keyPath, certExplicit: false }, log);
    assert.deepEqual(second.cert, first.cert);
    assert.deepEqual(second.key, first.key);
    assert.equal(entries.filter((entry) => entry['level'] === 40).length, 1, 'no second warning');
  });

  it('serves a TLS handshake that a client trusting the certificate accepts for localhost', async (t) => {
    const dir = tempDirFor(t, 'mq-certs-');
    const { log } = captureLogger();
    const pair = await ensureDevCert(
      { certPath: path.join(dir, 'c.pem'), keyPath: path.join(dir, 'k.pem'), certExplicit: false },
      log,
    );
    const server = tls.createServer({ cert: pair.cert, key: pair.key }, (socket) => socket.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    const socket = tls.connect({ host: '127.0.0.1', port: address.port, servername: 'localhost', ca: pair.cert });
    await once(socket, 'secureConnect');
    assert.equal(socket.authorized, true);
    socket.destroy();
  });

  it('reads existing named files without generating anything', async (t) => {
    const dir = tempDirFor(t, 'mq-certs-');
    const { log, entries } = captureLogger();
    const generated = await ensureDevCert(
      { certPath: path.join(dir, 'a.pem'), keyPath: path.join(dir, 'b.pem'), certExplicit: false },
      log,
    );
    const again = await ensureDevCert({ certPath: path.join(dir, 'a.pem'), keyPath: path.join(dir, 'b.pem'), certExplicit: true }, log);
    assert.deepEqual(again.cert, generated.cert);
    assert.equal(entries.length, 1);
  });

  it('never generates when --cert or --key was given', async (t) => {
    const dir = tempDirFor(t, 'mq-certs-');
    const { log } = captureLogger();
    const certPath = path.join(dir, 'c.pem');
    const keyPath = path.join(dir, 'k.pem');
    await assertRejectsWithOption(ensureDevCert({ certPath, keyPath, certExplicit: true }, log), '--cert');
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('refuses to overwrite a lone certificate or key', async (t) => {
    const dir = tempDirFor(t, 'mq-certs-');
    const { log } = captureLogger();
    const certPath = path.join(dir, 'c.pem');
    const keyPath = path.join(dir, 'k.pem');
    fs.writeFileSync(certPath, 'mine');
    await assertRejectsWithOption(ensureDevCert({ certPath, keyPath, certExplicit: false }, log), '--key');
    assert.equal(fs.readFileSync(certPath, 'utf8'), 'mine');
    fs.rmSync(certPath);
    fs.writeFileSync(keyPath, 'mine');
    await assertRejectsWithOption(ensureDevCert({ certPath, keyPath, certExplicit: false }, log), '--cert');
    assert.equal(fs.readFileSync(keyPath, 'utf8'), 'mine');
  });

  it('rejects files that are not PEM, and a key that does not match', async (t) => {
    const dir = tempDirFor(t, 'mq-certs-');
    const { log } = captureLogger();
    const a = await ensureDevCert({ certPath: path.join(dir, 'a.pem'), keyPath: path.join(dir, 'a-key.pem'), certExplicit: false }, log);
    await ensureDevCert({ certPath: path.join(dir, 'b.pem'), keyPath: path.join(dir, 'b-key.pem'), certExplicit: false }, log);
    await assertRejectsWithOption(
      ensureDevCert({ certPath: path.join(dir, 'a.pem'), keyPath: path.join(dir, 'b-key.pem'), certExplicit: true }, log),
      '--key',
    );
    fs.writeFileSync(path.join(dir, 'junk.pem'), 'not a certificate');
    await assertRejectsWithOption(
      ensureDevCert({ certPath: path.join(dir, 'junk.pem'), keyPath: path.join(dir, 'a-key.pem'), certExplicit: true }, log),
      '--cert',
    );
    await assertRejectsWithOption(
      ensureDevCert({ certPath: path.join(dir, 'a.pem'), keyPath: path.join(dir, 'junk.pem'), certExplicit: true }, log),
      '--key',
    );
    assert.ok(a.cert.length > 0);
  });
});
