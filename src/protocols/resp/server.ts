/**
 * The RESP listener (SPEC §4): a node:net server, one {@link RespConnection} per socket.
 * Connections over `--max-connections` (counted with the HTTP/2 listener's connections) get
 * `-ERR max number of clients reached` and are closed, as Redis does at `maxclients`.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { QueueEngine } from '../../engine/queue-engine.js';
import { BrokerError } from '../../errors.js';
import { isLoopbackAddress, type Admission } from '../admission.js';
import { RESP_MAX_OUTPUT_BYTES, RespConnection } from './connection.js';
import { encodeError } from './encoder.js';
import { InputBudget } from './input-budget.js';

export interface RespListenerOptions {
  /** The queues: the adapter uses nothing else of an engine (engine/queue-engine.ts). */
  engine: QueueEngine;
  host: string;
  port: number;
  maxMessageBytes: number;
  logger: Logger;
  version: string;
  /** Connection budget, token check and refusal counters shared with the HTTP/2 listener. */
  admission: Admission;
  /** Most payload bytes of one command's arguments (`--max-command-bytes`). */
  maxCommandBytes: number;
  /** Most input bytes held across all RESP connections (`--max-input-bytes`). */
  maxInputBytes: number;
}

/** `-ERR max number of clients reached`, Redis's words at `maxclients`. */
const MAX_CLIENTS_REPLY = encodeError(new BrokerError('MQ_ERR_MAX_CONNECTIONS').toRespLine());
/** How long a refused client may take to read the error before its socket is destroyed, in ms. */
const REFUSED_SOCKET_GRACE_MS = 1000;

export interface RespListener {
  server: net.Server;
  /** Input held across connections, against `--max-input-bytes`. */
  inputBudget: InputBudget;
  port: number;
  address: string;
  /** Stops accepting and closes every connection (their in-flight messages are NACKed). */
  close(): Promise<void>;
}

/** Starts the RESP listener; rejects with the listen error (EADDRINUSE, EACCES). */
export async function startRespListener(opts: RespListenerOptions): Promise<RespListener> {
  const { admission } = opts;
  const connections = new Set<RespConnection>();
  const refused = new Set<net.Socket>();
  // One delivery of the largest message must always fit, whatever --max-message-bytes is.
  const maxOutputBytes = Math.max(RESP_MAX_OUTPUT_BYTES, 2 * opts.maxMessageBytes);
  const inputBudget = new InputBudget(opts.maxInputBytes);
  let nextId = 1;
  const server = net.createServer((socket) => {
    if (!admission.admit('resp')) {
      // Write the error, discard whatever the client sends, close; a client that never reads
      // is cut off after the grace period.
      refused.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => refused.delete(socket));
      socket.end(MAX_CLIENTS_REPLY);
      socket.resume();
      setTimeout(() => socket.destroy(), REFUSED_SOCKET_GRACE_MS).unref();
      return;
    }
    const conn = new RespConnection(socket, {
      engine: opts.engine,
      logger: opts.logger,
      maxMessageBytes: opts.maxMessageBytes,
      maxArrayLength: 1024,
      id: nextId++,
      version: opts.version,
      admission,
      maxOutputBytes,
      maxCommandBytes: opts.maxCommandBytes,
      inputBudget,
    });
    connections.add(conn);
    socket.on('close', () => {
      connections.delete(conn);
      admission.release('resp');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.logger.error({ err }, 'resp listener error'));
  const address = server.address() as AddressInfo;
  // The "listening" line is logged by the caller once the whole start has succeeded (issue 13).
  if (!admission.authRequired && !isLoopbackAddress(address.address)) {
    opts.logger.warn(
      { protocol: 'resp', address: address.address, port: address.port },
      'the RESP listener accepts connections from other machines and no --auth-token is set: anyone who can reach this port can publish, consume and delete topics',
    );
  }
  return {
    server,
    inputBudget,
    port: address.port,
    address: address.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const conn of connections) conn.destroy();
        for (const socket of refused) socket.destroy();
      }),
  };
}
