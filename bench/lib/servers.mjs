// Starting the servers under test: the miniqueue broker, redis-server and the bare HTTP/2
// baseline. Each starter picks its own free loopback ports (the broker runs with
// `--level silent`, so it cannot tell us), waits until the ports accept connections, and
// returns `{ ..., stop() }`. `stop()` reports how the process ended, so a broker that crashes
// or hangs on shutdown shows up in the results instead of being hidden by a SIGKILL.
import fs from 'node:fs';
import net from 'node:net';
import { freePorts, fromRoot, makeTempDir, removeTempDir, runCommand, startChild, stopChild, tail, waitForPort } from './procs.mjs';

export const CERT_PATH = fromRoot('certs', 'localhost.pem');
export const KEY_PATH = fromRoot('certs', 'localhost-key.pem');

/** Makes sure the development certificate exists (the broker and the bare baseline share it). */
export async function ensureCerts() {
  if (fs.existsSync(CERT_PATH) && fs.existsSync(KEY_PATH)) return;
  const r = await runCommand(process.execPath, [fromRoot('scripts', 'gen-certs.mjs')], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`scripts/gen-certs.mjs failed: ${tail(r.stderr || r.stdout)}`);
}

async function withPortRetry(start) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await start();
    } catch (err) {
      lastErr = err;
      if (!/in use|EADDRINUSE/i.test(String(err.message))) throw err;
    }
  }
  throw lastErr;
}

/**
 * Starts `node dist/bundle/miniqueue.js` (the server as shipped; MQ_BENCH_MAIN names another build) on a fresh --db with `--level silent`.
 * @param opts.fsync - `always` | `never` | `interval`.
 * @param opts.tls - HTTP/2 over TLS (the default) or h2c.
 * @returns `{ h2Port, respPort, db, pid, stop }`; `stop()` sends SIGTERM, removes the db and
 *   returns `{ code, signal, forced, stderr }`.
 */
export async function startBroker({ fsync = 'always', tls = true, extraArgs = brokerArgsFromEnv() } = {}) {
  await ensureCerts();
  // bench/run.mjs points MQ_BENCH_MAIN at its private copy of dist/ (see lib/snapshot.mjs).
  const main = process.env.MQ_BENCH_MAIN || fromRoot('dist', 'bundle', 'miniqueue.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: build first (npm run build)`);
  return withPortRetry(async () => {
    const [h2Port, respPort] = await freePorts(2);
    const db = makeTempDir('mq-bench-db-');
    const args = [main, '--port', String(h2Port), '--host', '127.0.0.1', '--redis-port', String(respPort), '--db', db, '--level', 'silent', '--fsync', fsync];
    if (!tls) args.push('--no-tls');
    args.push(...extraArgs);
    const child = startChild(process.execPath, args);
    try {
      await waitForPort(h2Port, { child });
      await waitForPort(respPort, { child });
    } catch (err) {
      await stopChild(child, { signal: 'SIGKILL' });
      removeTempDir(db);
      throw err;
    }
    return {
      h2Port,
      respPort,
      db,
      pid: child.pid,
      child,
      command: `node dist/bundle/miniqueue.js --level silent --fsync ${fsync}${tls ? '' : ' --no-tls'}`,
      async stop() {
        const crashed = child.exitCode !== null || child.signalCode !== null;
        const r = await stopChild(child, { signal: 'SIGTERM', graceMs: 12_000 });
        removeTempDir(db);
        return { ...r, crashed, stderr: child.err() };
      },
    };
  });
}

/** Sends PING until redis answers +PONG (it may still be loading the AOF). */
async function waitForPong(port, child, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reply = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      sock.setEncoding('latin1');
      sock.once('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        got += d;
        if (got.includes('\r\n')) {
          sock.destroy();
          resolve(got);
        }
      });
      sock.once('error', () => resolve(''));
    });
    if (reply.startsWith('+PONG')) return;
    if (child.exitCode !== null) throw new Error(`redis-server exited (code ${child.exitCode}): ${tail(child.out() + child.err())}`);
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts redis-server on a free loopback port with AOF on (`appendfsync` = always | everysec),
 * RDB snapshots off, in a temporary dir.
 * @returns `{ port, stop }`.
 */
export async function startRedis({ appendfsync = 'always' } = {}) {
  return withPortRetry(async () => {
    const [port] = await freePorts(1);
    const dir = makeTempDir('mq-bench-redis-');
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'no',
      '--appendonly', 'yes', '--appendfsync', appendfsync, '--save', '',
      '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', '--logfile', '',
    ];
    const child = startChild('redis-server', args);
    try {
      await waitForPort(port, { child });
      await waitForPong(port, child);
    } catch (err) {
      await stopChild(child, { signal: 'SIGKILL' });
      removeTempDir(dir);
      throw err;
    }
    return {
      port,
      pid: child.pid,
      command: `redis-server --appendonly yes --appendfsync ${appendfsync} --save ''`,
      async stop() {
        const crashed = child.exitCode !== null || child.signalCode !== null;
        // SIGKILL: a clean redis shutdown would rewrite/fsync the AOF, which we don't measure.
        const r = await stopChild(child, { signal: 'SIGKILL' });
        removeTempDir(dir);
        return { ...r, crashed, stderr: child.err() };
      },
    };
  });
}

/** Starts bench/baselines/bare-h2.mjs (TLS, same certificate as the broker). */
export async function startBareH2() {
  await ensureCerts();
  return withPortRetry(async () => {
    const [port] = await freePorts(1);
    const child = startChild(process.execPath, [fromRoot('bench', 'baselines', 'bare-h2.mjs')], {
      env: { ...process.env, PORT: String(port) },
    });
    try {
      await waitForPort(port, { child });
    } catch (err) {
      await stopChild(child, { signal: 'SIGKILL' });
      throw err;
    }
    return {
      h2Port: port,
      pid: child.pid,
      command: 'node bench/baselines/bare-h2.mjs',
      async stop() {
        const crashed = child.exitCode !== null || child.signalCode !== null;
        const r = await stopChild(child, { signal: 'SIGTERM', graceMs: 3000 });
        return { ...r, crashed, stderr: child.err() };
      },
    };
  });
}

/**
 * Starts bench/baselines/bare-consume.mjs: the consume scenarios' wire exchanges over bare
 * node:net (RESP) and node:http2 (TLS, same certificate) with a counter for a queue.
 * @returns `{ h2Port, respPort, stop }`, shaped like {@link startBroker}'s answer.
 */
export async function startBareConsume() {
  await ensureCerts();
  return withPortRetry(async () => {
    const [h2Port, respPort] = await freePorts(2);
    const child = startChild(process.execPath, [fromRoot('bench', 'baselines', 'bare-consume.mjs')], {
      env: { ...process.env, H2_PORT: String(h2Port), RESP_PORT: String(respPort) },
    });
    try {
      await waitForPort(h2Port, { child });
      await waitForPort(respPort, { child });
    } catch (err) {
      await stopChild(child, { signal: 'SIGKILL' });
      throw err;
    }
    return {
      h2Port,
      respPort,
      pid: child.pid,
      child,
      command: 'node bench/baselines/bare-consume.mjs',
      async stop() {
        const crashed = child.exitCode !== null || child.signalCode !== null;
        const r = await stopChild(child, { signal: 'SIGTERM', graceMs: 3000 });
        return { ...r, crashed, stderr: child.err() };
      },
    };
  });
}

/** Extra broker options from the BROKER_ARGS knob (space-separated, e.g. "--ack-timeout 30s"), for A/B runs. */
function brokerArgsFromEnv() {
  return (process.env.BROKER_ARGS ?? '').split(/\s+/).filter(Boolean);
}
