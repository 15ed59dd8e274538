/**
 * One target abstraction for the suites that run on both engines (issue 15): the HTTP/2, RESP,
 * Redis-client and Node-client suites register their cases once per engine of {@link ENGINES} and
 * start their server through {@link EngineTargets.start}: `--engine log` on a temporary `--db`, or
 * `--engine jetstream` as a gateway on the three-node NATS cluster of the test file
 * (test/jetstream/cluster.ts, started at the file's first jetstream target and shared by all of
 * them, `--nats-replicas 3`), each gateway on a stream of its own. Both run in this process, so a
 * case can read the engine's stats and hook the HTTP/2 server.
 *
 * A case that cannot hold on one engine is skipped there with {@link unlessEngine}, whose reason
 * names the README difference ("Differences from the log engine a client can notice") or the
 * log-engine feature it depends on.
 */
import { after } from 'node:test';
import type { QueueEngine } from '../../src/engine/queue-engine.js';
import type { Http2Listener } from '../../src/protocols/http2/server.js';
import type { RespListener } from '../../src/protocols/resp/server.js';
import { parseConfig } from '../../src/server/config.js';
import { startGateway } from '../../src/server/gateway.js';
import { startCluster, type NatsCluster } from '../jetstream/cluster.js';
import { silentLogger } from './loggers.js';
import { startInProcess } from './servers.js';
import { removeDir, tempDir } from './temp-dirs.js';

export type EngineName = 'log' | 'jetstream';

/** Every engine a parametrised suite runs on, in order. */
export const ENGINES: readonly EngineName[] = ['log', 'jetstream'];

const README = 'README "Differences from the log engine a client can notice"';

/** Why a case is skipped on an engine, by key: each names what the README says or the log-only feature. */
export const ENGINE_DIFFERENCES: Record<EngineName, Record<string, string>> = {
  log: {},
  jetstream: {
    inFlightAfterNack: `${README}: \`inFlight\` is JetStream's "ack pending", which also counts messages just NAKed and not yet pulled again`,
    settleAhead: `${README}: on a subscribe stream the next message comes from the cluster after a settle was answered, so a settle sent ahead of its delivery finds nothing in flight`,
    statsSnapshot: `${README}: \`TOPICS\`, \`STATS\`, \`/topics\` come from a snapshot of the cluster refreshed every second`,
    maxMessageBytes: `${README}: \`--max-message-bytes\` is lowered to the NATS server's \`max_payload\` (1 MiB by default) minus 512 bytes for headers`,
  },
};

/** Whether `engine` has the README difference `difference` (for one assertion of a case that otherwise holds). */
export function differs(engine: EngineName, difference: string): boolean {
  return ENGINE_DIFFERENCES[engine][difference] !== undefined;
}

/** The test options of a case that does not hold on `engine`: `{ skip }` naming why, else `{}`. */
export function unlessEngine(engine: EngineName, difference: string): { skip?: string } {
  const why = ENGINE_DIFFERENCES[engine][difference];
  return why === undefined ? {} : { skip: why };
}

/** A real miniqueue server in this process, for one engine. */
export interface EngineTarget {
  engine: EngineName;
  /** The engine behind the listeners (topicStats, topicCounters). */
  queue: QueueEngine;
  http: Http2Listener;
  httpPort: number;
  /** The RESP port (the targets always listen on one). */
  respPort: number;
  /** Graceful stop of the listeners and the engine; the log target's `--db` is removed. */
  close(): Promise<void>;
}

/**
 * The servers of one test file. Registers an `after` hook (call it at the top level of the file)
 * that closes every target still open and stops the file's NATS cluster.
 */
export class EngineTargets {
  #cluster: Promise<NatsCluster> | null = null;
  #open = new Set<EngineTarget>();
  #streamSeq = 0;

  constructor() {
    after(() => this.closeAll());
  }

  /** Starts a server with `engine` and the extra command-line `args` (h2c, ephemeral ports, 127.0.0.1). */
  async start(engine: EngineName, args: string[] = []): Promise<EngineTarget> {
    const target = engine === 'log' ? await this.#startLog(args) : await this.#startGateway(args);
    this.#open.add(target);
    const close = target.close;
    target.close = async () => {
      if (!this.#open.delete(target)) return;
      await close();
    };
    return target;
  }

  /** Closes every target still open, then stops the cluster (if one was started). */
  async closeAll(): Promise<void> {
    for (const t of [...this.#open]) await t.close();
    const cluster = this.#cluster;
    this.#cluster = null;
    if (cluster !== null) await (await cluster).stop();
  }

  async #startLog(args: string[]): Promise<EngineTarget> {
    const dir = tempDir('mq-target-');
    const server = await startInProcess(dir, args);
    return targetOf('log', server.broker, server, async () => {
      await server.close();
      removeDir(dir);
    });
  }

  async #startGateway(args: string[]): Promise<EngineTarget> {
    this.#cluster ??= startCluster(3);
    const cluster = await this.#cluster;
    const stream = `PARITY${++this.#streamSeq}`;
    const config = parseConfig(
      ['--engine', 'jetstream', '--nats', cluster.urls, '--nats-stream', stream, '--nats-replicas', '3', '--port', '0', '--redis-port', '0', '--host', '127.0.0.1', '--no-tls', ...args],
      {},
    );
    const gateway = await startGateway(config, silentLogger, null);
    try {
      await gateway.ready;
    } catch (err) {
      await gateway.close();
      throw err;
    }
    return targetOf('jetstream', gateway.engine, gateway, () => gateway.close());
  }
}

function targetOf(engine: EngineName, queue: QueueEngine, server: { http: Http2Listener; resp: RespListener | null }, close: () => Promise<void>): EngineTarget {
  return { engine, queue, http: server.http, httpPort: server.http.port, respPort: server.resp!.port, close };
}
