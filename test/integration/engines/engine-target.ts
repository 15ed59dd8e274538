/**
 * A real miniqueue server process for the engine-parity suite (issue 15), for either engine:
 * `--engine log` on a temporary `--db`, or `--engine jetstream` on a three-node NATS cluster
 * started for it (test/jetstream/cluster.ts) with `--nats-replicas 3`.
 */
import { startChild, tempDir, removeDir, type ChildServer } from '../../helpers/index.js';
import { startCluster, type NatsCluster } from '../../jetstream/cluster.js';

export type EngineName = 'log' | 'jetstream';

export interface EngineTarget {
  engine: EngineName;
  server: ChildServer;
  /** Stops the server (SIGTERM, exit 0 expected) and what it ran on. */
  stop(): Promise<{ code: number | null }>;
}

/** Starts a server with `engine` and the extra `args`. */
export async function startTarget(engine: EngineName, args: string[] = []): Promise<EngineTarget> {
  if (engine === 'log') {
    const dir = tempDir('mq-parity-');
    const server = await startChild(dir, args);
    return {
      engine,
      server,
      async stop() {
        const { code } = await server.kill('SIGTERM');
        removeDir(dir);
        return { code };
      },
    };
  }
  const cluster: NatsCluster = await startCluster(3);
  let server: ChildServer;
  try {
    server = await startChild(null, ['--engine', 'jetstream', '--nats', cluster.urls, '--nats-stream', 'PARITY', '--nats-replicas', '3', ...args], 30_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return {
    engine,
    server,
    async stop() {
      const { code } = await server.kill('SIGTERM');
      await cluster.stop();
      return { code };
    },
  };
}
