/**
 * `--engine jetstream` over TLS (issue 15): a NATS node serving clients with a self-signed
 * certificate, reached with a `tls://` URL. Trusted through NODE_EXTRA_CA_CERTS the gateway
 * serves; untrusted, it says which certificate check failed and how to trust it; and a `tls://`
 * URL never falls back to a cleartext connection with a node that has no TLS.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { devCert, removeDir, tempDir } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { GatewayProcesses } from './gateway-processes.js';

const gateways = new GatewayProcesses();
let dir: string;
let certFile: string;
let tlsNode: NatsCluster;
let plainNode: NatsCluster;

before(async () => {
  dir = tempDir('mq-nats-tls-');
  await devCert(dir); // CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1
  certFile = path.join(dir, 'certs', 'cert.pem');
  const keyFile = path.join(dir, 'certs', 'key.pem');
  [tlsNode, plainNode] = await Promise.all([
    startCluster(1, 20_000, { nodeArgs: ['--tls', '--tlscert', certFile, '--tlskey', keyFile], connect: { tls: { caFile: certFile } }, scheme: 'tls' }),
    startCluster(1),
  ]);
});

after(async () => {
  await gateways.closeAll();
  await tlsNode?.stop();
  await plainNode?.stop();
  removeDir(dir);
});

test('a tls:// URL with the certificate trusted through NODE_EXTRA_CA_CERTS: the gateway serves', async () => {
  assert.match(tlsNode.urls, /^tls:\/\/127\.0\.0\.1:\d+$/);
  const gw = await gateways.start(tlsNode.urls, { stream: 'TLS', replicas: 1, env: { NODE_EXTRA_CA_CERTS: certFile } });
  await gateways.roundTrip(gw, 'tls.trusted');
});

test('an untrusted certificate: the warn line, /healthz and commands name NATS, the failed check and NODE_EXTRA_CA_CERTS', async () => {
  const gw = await gateways.start(tlsNode.urls, { stream: 'TLS', replicas: 1, until: 'listening' });
  const refusal = await gateways.refusal(gw, 'jetstream: NATS unreachable (tls://127.0.0.1:');
  for (const text of [refusal.warn, refusal.health, refusal.reply]) {
    assert.match(text, /NATS/);
    assert.match(text, /self-signed certificate/);
    assert.match(text, /NODE_EXTRA_CA_CERTS/);
  }
});

test('a tls:// URL naming a node without TLS is refused, not used in clear', async () => {
  const url = plainNode.urls.replace('nats://', 'tls://');
  const gw = await gateways.start(url, { stream: 'TLS', replicas: 1, until: 'listening' });
  const refusal = await gateways.refusal(gw, `jetstream: NATS unreachable (${url})`);
  for (const text of [refusal.warn, refusal.health, refusal.reply]) assert.match(text, /server does not support 'tls'/);
  assert.ok(!gw.lines.some((l) => l.includes('miniqueue ready')), 'the gateway never became ready');
});
