#!/usr/bin/env node
// RESP publish throughput: redis-benchmark sends `PUBLISH t <payload>` to the broker's RESP port.
// SERVER=redis starts redis-server instead (AOF on, appendfsync APPENDFSYNC, no RDB) and sends
// `LPUSH q <payload>` with the same flags: the baseline.
// Knobs: CONNECTIONS (-c, 12), PIPELINE (-P, 1), PAYLOAD_BYTES (10), FSYNC (always|never),
// APPENDFSYNC (always|everysec), DURATION_S (10; -n is sized from a calibration run),
// MAX_RUN_MB (2048: -n is capped so one run stores at most this many payload bytes).
import { payloadOf, runRedisBenchmark, sizeLabel } from '../lib/tools.mjs';
import { commonKnobs, numEnv, runScenario, strEnv, withServer } from '../lib/scenario.mjs';
import { startBroker, startRedis } from '../lib/servers.mjs';

const server = strEnv('SERVER', 'miniqueue', ['miniqueue', 'redis']);
const fsync = strEnv('FSYNC', 'always', ['always', 'never', 'interval']);
const appendfsync = strEnv('APPENDFSYNC', 'always', ['always', 'everysec', 'no']);
const clients = numEnv('CONNECTIONS', 12);
const pipeline = numEnv('PIPELINE', 1);
const payloadBytes = numEnv('PAYLOAD_BYTES', 10);
const maxRunMB = numEnv('MAX_RUN_MB', 2048);
const { durationS } = commonKnobs();
const payload = payloadOf(payloadBytes).toString('latin1');
const shownPayload = payloadBytes === 10 ? payload : `<${sizeLabel(payloadBytes)}>`;
const maxCount = Math.max(10_000, Math.min(5_000_000, Math.floor((maxRunMB * 2 ** 20) / payloadBytes)));

const name = server === 'redis'
  ? `redis LPUSH -c${clients} -P${pipeline} ${sizeLabel(payloadBytes)} appendfsync=${appendfsync}`
  : `resp PUBLISH -c${clients} -P${pipeline} ${sizeLabel(payloadBytes)} fsync=${fsync}`;

await runScenario(name, () =>
  withServer(
    server === 'redis' ? 'redis-server' : 'broker',
    () => (server === 'redis' ? startRedis({ appendfsync }) : startBroker({ fsync })),
    (s) =>
      runRedisBenchmark({
        port: server === 'redis' ? s.port : s.respPort,
        clients,
        pipeline,
        command: server === 'redis' ? ['LPUSH', 'q', payload] : ['PUBLISH', 't', payload],
        shownCommand: server === 'redis' ? ['LPUSH', 'q', shownPayload] : ['PUBLISH', 't', shownPayload],
        durationS,
        maxCount,
        serverPid: s.pid,
      }),
  ),
);
