/**
 * `miniqueue/client` over TLS (ALPN h2) against a real in-process server with a generated
 * self-signed certificate: trusted through `ca`, accepted with `rejectUnauthorized: false`, and
 * refused (MQ_ERR_CONNECTION naming the TLS error) otherwise.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { MiniqueueClient, MiniqueueError } from '../../src/client/index.js';
import { ensureDevCert, type CertPair } from '../../src/server/certs.js';
import type { RunningServer } from '../../src/server/server.js';
import { removeDir, startInProcess, tempDir } from '../helpers/index.js';

let dir: string;
let pair: CertPair;
let server: RunningServer;

before(async () => {
  dir = tempDir('mq-client-tls-');
  pair = await ensureDevCert(
    { certPath: path.join(dir, 'certs', 'cert.pem'), keyPath: path.join(dir, 'certs', 'key.pem'), certExplicit: false },
    { warn: () => {} },
  );
  server = await startInProcess(path.join(dir, 'db'), ['--period', '100ms'], pair);
});

after(async () => {
  await server.close();
  removeDir(dir);
});

async function roundTrip(client: MiniqueueClient, topic: string): Promise<void> {
  await client.publish(topic, 'over tls');
  const sub = client.subscribe(topic);
  for await (const msg of sub) {
    assert.equal(msg.data.toString(), 'over tls');
    await msg.dack(0);
    break;
  }
  for await (const msg of client.subscribe(topic)) {
    assert.equal(msg.dackCount, 1);
    await msg.ack();
    break;
  }
  assert.equal((await client.topics()).find((s) => s.topic === topic)?.acked, 1);
  assert.equal(await client.deleteTopic(topic), true);
}

test('trusting the self-signed certificate through ca (localhost and 127.0.0.1 are in its names)', async () => {
  for (const host of ['localhost', '127.0.0.1']) {
    const client = new MiniqueueClient({ url: `https://${host}:${server.http.port}`, ca: pair.cert });
    await roundTrip(client, `tls.ca.${host}`);
    await client.close();
  }
});

test('rejectUnauthorized: false accepts it (development only)', async () => {
  const client = new MiniqueueClient({ url: `https://localhost:${server.http.port}`, rejectUnauthorized: false });
  await roundTrip(client, 'tls.insecure');
  await client.close();
});

test('by default the self-signed certificate is refused with MQ_ERR_CONNECTION', async () => {
  const client = new MiniqueueClient({ url: `https://localhost:${server.http.port}`, reconnect: false });
  const err = await client.publish('tls.refused', 'x').then(
    () => assert.fail('published without trusting the certificate'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MiniqueueError);
  assert.equal(err.code, 'MQ_ERR_CONNECTION');
  assert.equal((err.cause as NodeJS.ErrnoException).code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  const subErr = await client.subscribe('tls.refused').next().then(
    () => assert.fail('subscribed without trusting the certificate'),
    (e: unknown) => e,
  );
  assert.ok(subErr instanceof MiniqueueError);
  assert.equal(subErr.code, 'MQ_ERR_CONNECTION');
  // A name the certificate does not carry is refused even with the right ca.
  const wrongName = new MiniqueueClient({ url: `https://127.0.0.1:${server.http.port}`, ca: pair.cert, servername: 'example.com' });
  const nameErr = await wrongName.topics().then(
    () => assert.fail('accepted a certificate for another name'),
    (e: unknown) => e,
  );
  assert.ok(nameErr instanceof MiniqueueError);
  assert.equal(nameErr.code, 'MQ_ERR_CONNECTION');
  assert.equal((nameErr.cause as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  await client.close();
  await wrongName.close();
  assert.equal(server.broker.topicStats('tls.refused'), undefined);
});
