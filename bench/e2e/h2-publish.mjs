#!/usr/bin/env node
// HTTP/2 publish throughput: h2load POSTs PAYLOAD_BYTES bodies to /publish/bench over TLS.
// SERVER=miniqueue (default) starts the broker on a fresh --db with --fsync FSYNC;
// SERVER=bare starts bench/baselines/bare-h2.mjs instead (the ceiling).
// Knobs: CONNECTIONS (h2load -c, 12), PIPELINE (h2load -m, streams per connection, 1),
// PAYLOAD_BYTES (10), FSYNC (always|never), DURATION_S (10), WARMUP_S (1).
import { runH2load, sizeLabel } from '../lib/tools.mjs';
import { commonKnobs, numEnv, runScenario, strEnv, withServer } from '../lib/scenario.mjs';
import { startBareH2, startBroker } from '../lib/servers.mjs';

const server = strEnv('SERVER', 'miniqueue', ['miniqueue', 'bare']);
const fsync = strEnv('FSYNC', 'always', ['always', 'never', 'interval']);
const clients = numEnv('CONNECTIONS', 12);
const streams = numEnv('PIPELINE', 1);
const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
const { durationS, warmupS } = commonKnobs();
const name = server === 'bare'
  ? `bare h2 POST -c${clients} -m${streams} ${sizeLabel(payloadBytes)}`
  : `h2 publish -c${clients} -m${streams} ${sizeLabel(payloadBytes)} fsync=${fsync}`;

await runScenario(name, () =>
  withServer(
    server === 'bare' ? 'bare-h2' : 'broker',
    () => (server === 'bare' ? startBareH2() : startBroker({ fsync })),
    (s) => runH2load({ url: `https://127.0.0.1:${s.h2Port}/publish/bench`, clients, streams, payloadBytes, durationS, warmupS, serverPid: s.pid }),
  ),
);
