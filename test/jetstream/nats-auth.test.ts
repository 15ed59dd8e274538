/**
 * `--engine jetstream` on NATS servers that require client authentication (issue 15): a
 * three-node cluster requiring a user and password serves gateways given them in the `--nats` URL
 * or in MINIQUEUE_NATS_USER / MINIQUEUE_NATS_PASSWORD; a single node requiring a token serves one
 * given MINIQUEUE_NATS_TOKEN. Wrong or missing credentials: the warn line, `/healthz` and every
 * command name NATS and the refused credentials (the user and where each part came from), and no
 * password or token is ever printed: not in the log, not in an answer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ChildServer } from '../helpers/index.js';
import { startCluster, type NatsCluster } from './cluster.js';
import { GatewayProcesses, type Refusal } from './gateway-processes.js';

const USER = 'mq-gateway';
const PASSWORD = 'Pa55-w0rd-nobody-prints';
const WRONG_PASSWORD = 'wr0ng-Pa55-nobody-prints';
const TOKEN = 't0ken-nobody-prints';
const WRONG_TOKEN = 'wr0ng-t0ken-nobody-prints';
const SECRETS = [PASSWORD, WRONG_PASSWORD, TOKEN, WRONG_TOKEN];

const gateways = new GatewayProcesses();
after(() => gateways.closeAll());

/** Everything `gw` printed so far, and what it answered while refused, hold none of the secrets. */
function assertNoSecret(gw: ChildServer, refusal?: Refusal): void {
  const printed = [...gw.lines, gw.stderr(), ...(refusal === undefined ? [] : [refusal.warn, refusal.health, refusal.reply])].join('\n');
  for (const secret of SECRETS) assert.ok(!printed.includes(secret), `a secret was printed: ${printed}`);
}

/** The refusal of `gw`, checked to name NATS, Authorization Violation and `credentials` everywhere. */
async function assertRefused(gw: ChildServer, credentials: RegExp): Promise<Refusal> {
  const refusal = await gateways.refusal(gw, 'jetstream: NATS refused the connection');
  for (const text of [refusal.warn, refusal.health, refusal.reply]) {
    assert.match(text, /NATS/);
    assert.match(text, /the credentials were refused \(.*\): Authorization Violation/);
    assert.match(text, credentials);
  }
  assertNoSecret(gw, refusal);
  return refusal;
}

describe('a three-node cluster requiring a user and password', () => {
  let cluster: NatsCluster;
  /** The cluster's URLs with `user:password@` in each. */
  const withCredentials = (password: string): string => cluster.urls.replace(/nats:\/\//g, `nats://${USER}:${encodeURIComponent(password)}@`);

  before(async () => {
    cluster = await startCluster(3, 20_000, { nodeArgs: ['--user', USER, '--pass', PASSWORD], connect: { user: USER, pass: PASSWORD } });
  });
  after(() => cluster?.stop());

  test('credentials in the --nats URL: the gateway serves, and the password is not printed', async () => {
    const gw = await gateways.start(withCredentials(PASSWORD), { stream: 'AUTH', replicas: 3 });
    await gateways.roundTrip(gw, 'auth.url');
    assertNoSecret(gw);
  });

  test('credentials in MINIQUEUE_NATS_USER and MINIQUEUE_NATS_PASSWORD: the gateway serves', async () => {
    const gw = await gateways.start(cluster.urls, { stream: 'AUTH', replicas: 3, env: { MINIQUEUE_NATS_USER: USER, MINIQUEUE_NATS_PASSWORD: PASSWORD } });
    await gateways.roundTrip(gw, 'auth.env');
    assertNoSecret(gw);
  });

  test('a wrong password in the URL: the log, /healthz and commands name NATS and the refused user, never the password', async () => {
    const gw = await gateways.start(withCredentials(WRONG_PASSWORD), { stream: 'AUTH', replicas: 3, until: 'listening' });
    await assertRefused(gw, /user "mq-gateway" from the --nats URL, a password from the --nats URL/);
  });

  test('a wrong MINIQUEUE_NATS_PASSWORD: the same, naming the variables', async () => {
    const env = { MINIQUEUE_NATS_USER: USER, MINIQUEUE_NATS_PASSWORD: WRONG_PASSWORD };
    const gw = await gateways.start(cluster.urls, { stream: 'AUTH', replicas: 3, env, until: 'listening' });
    await assertRefused(gw, /user "mq-gateway" from MINIQUEUE_NATS_USER, a password from MINIQUEUE_NATS_PASSWORD/);
  });

  test('no credentials: the error says where to put them', async () => {
    const gw = await gateways.start(cluster.urls, { stream: 'AUTH', replicas: 3, until: 'listening' });
    await assertRefused(gw, /none given: put them in the --nats URL/);
  });
});

describe('a node requiring a token', () => {
  let node: NatsCluster;

  before(async () => {
    node = await startCluster(1, 20_000, { nodeArgs: ['--auth', TOKEN], connect: { token: TOKEN } });
  });
  after(() => node?.stop());

  test('MINIQUEUE_NATS_TOKEN: the gateway serves; a wrong token is refused, naming the variable and not the token', async () => {
    const gw = await gateways.start(node.urls, { stream: 'AUTH', replicas: 1, env: { MINIQUEUE_NATS_TOKEN: TOKEN } });
    await gateways.roundTrip(gw, 'auth.token');
    assertNoSecret(gw);
    const wrong = await gateways.start(node.urls, { stream: 'AUTH', replicas: 1, env: { MINIQUEUE_NATS_TOKEN: WRONG_TOKEN }, until: 'listening' });
    await assertRefused(wrong, /a token from MINIQUEUE_NATS_TOKEN/);
  });
});
