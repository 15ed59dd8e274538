/**
 * A real three-node NATS JetStream cluster for the jetstream tests (issue 15): Debian's
 * `nats-server` processes on loopback, on free ports, each with its own temporary store
 * directory. {@link startCluster} resolves once every node is ready and JetStream has a meta
 * leader and every peer has joined (an R3 stream can be placed); {@link NatsCluster.stop} SIGKILLs what is left and
 * removes the directories. No mocks: the engine talks to these servers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort } from '../helpers/ports.js';

/** One nats-server process of the cluster. */
export interface NatsNode {
  name: string;
  clientPort: number;
  clusterPort: number;
  storeDir: string;
  process: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** Everything the server wrote to stderr (its log), for failure messages. */
  log(): string;
}

/** How the nodes serve their clients (defaults: no authentication, no TLS). */
export interface ClusterOptions {
  /** Extra nats-server arguments for every node: client authentication (`--user`, `--pass`, `--auth`), TLS (`--tls`, `--tlscert`, `--tlskey`). */
  nodeArgs?: string[];
  /** The nats.js connect options those arguments call for (credentials, `tls`), for the readiness check. */
  connect?: Partial<NodeConnectionOptions>;
  /** The scheme of {@link NatsCluster.urls} (default `nats`). */
  scheme?: 'nats' | 'tls';
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** Client URLs of every node, comma-separated (the engine's `--nats` form). */
  urls: string;
  /** SIGKILLs node `index` and waits until it has exited. */
  kill(index: number): Promise<void>;
  /** SIGKILLs every node still running and removes the store directories. Idempotent. */
  stop(): Promise<void>;
}

function startNode(name: string, clientPort: number, clusterPort: number, routes: string, storeDir: string, nodeArgs: string[]): NatsNode {
  const args = [
    '--server_name', name,
    '-a', '127.0.0.1',
    '-p', String(clientPort),
    '-js',
    '-sd', storeDir,
    // One node alone is not clustered: a one-peer JetStream cluster never elects a meta leader.
    ...(routes === '' ? [] : ['--cluster_name', 'mqtest', '--cluster', `nats://127.0.0.1:${clusterPort}`, '--routes', routes]),
    ...nodeArgs,
  ];
  const child = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    log += chunk;
    if (log.length > 200_000) log = log.slice(-100_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { name, clientPort, clusterPort, storeDir, process: child, exited, log: () => log };
}

/** Resolves when `node` logged "Server is ready"; rejects if it exits first or after `timeoutMs`. */
function nodeReady(node: NatsNode, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${node.name} not ready after ${timeoutMs} ms:\n${node.log()}`));
    }, timeoutMs);
    const onData = (): void => {
      if (node.log().includes('Server is ready')) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`${node.name} exited (${code}) before it was ready:\n${node.log()}`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      node.process.stderr!.off('data', onData);
      node.process.off('exit', onExit);
    };
    node.process.stderr!.on('data', onData);
    node.process.once('exit', onExit);
    onData();
  });
}

/** Resolves once a JetStream meta leader exists and a stream with a replica on every node (at most 3) can be placed (all peers joined). */
async function metaLeaderElected(urls: string, size: number, timeoutMs: number, options: Partial<NodeConnectionOptions>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const nc = await connect({ ...options, servers: urls.split(','), maxReconnectAttempts: -1 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 1000, checkAPI: false });
    let lastErr: unknown;
    while (Date.now() < deadline) {
      try {
        // A replicated stream can be placed once every peer has joined the meta group.
        await jsm.streams.add({ name: 'CLUSTER_READY', subjects: ['_cluster_ready'], num_replicas: Math.min(size, 3) });
        await jsm.streams.delete('CLUSTER_READY');
        return;
      } catch (err) {
        // No meta leader yet: the request times out or answers "JetStream not enabled" for a moment.
        lastErr = err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`no JetStream meta leader after ${timeoutMs} ms: ${String(lastErr)}`);
  } finally {
    await nc.close();
  }
}

/**
 * Starts `size` (default 3) clustered JetStream nodes (1: a single node, not clustered). Retries once with other ports when a
 * node cannot bind (another process took a port between {@link freePort} and the start).
 */
export async function startCluster(size = 3, timeoutMs = 20_000, options: ClusterOptions = {}): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    const clientPorts: number[] = [];
    const clusterPorts: number[] = [];
    for (let i = 0; i < size; i++) {
      clientPorts.push(await freePort());
      clusterPorts.push(await freePort());
    }
    const routes = size === 1 ? '' : clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
    const nodes: NatsNode[] = [];
    for (let i = 0; i < size; i++) {
      const storeDir = mkdtempSync(join(tmpdir(), `mq-nats-n${i + 1}-`));
      nodes.push(startNode(`n${i + 1}`, clientPorts[i]!, clusterPorts[i]!, routes, storeDir, options.nodeArgs ?? []));
    }
    const cluster = makeCluster(nodes, options.scheme ?? 'nats');
    try {
      await Promise.all(nodes.map((n) => nodeReady(n, timeoutMs)));
      await metaLeaderElected(cluster.urls, size, timeoutMs, options.connect ?? {});
      return cluster;
    } catch (err) {
      await cluster.stop();
      const bindFailed = nodes.some((n) => /address already in use/i.test(n.log()));
      if (!bindFailed || attempt >= 3) throw err;
    }
  }
}

function makeCluster(nodes: NatsNode[], scheme: 'nats' | 'tls'): NatsCluster {
  let stopped = false;
  // A test process that ends without stop() (a failed hook, a timeout) takes its nodes with it.
  const killAll = (): void => {
    for (const n of nodes) if (n.process.exitCode === null && n.process.signalCode === null) n.process.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const kill = async (index: number): Promise<void> => {
    const node = nodes[index]!;
    if (node.process.exitCode === null && node.process.signalCode === null) node.process.kill('SIGKILL');
    await node.exited;
  };
  return {
    nodes,
    urls: nodes.map((n) => `${scheme}://127.0.0.1:${n.clientPort}`).join(','),
    kill,
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      process.off('exit', killAll);
      await Promise.all(nodes.map((_, i) => kill(i)));
      for (const n of nodes) rmSync(n.storeDir, { recursive: true, force: true });
    },
  };
}
