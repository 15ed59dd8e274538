/**
 * The RESP listener (SPEC §4): a node:net server, one {@link RespConnection} per socket.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Broker } from '../../broker/broker.js';
import { RespConnection } from './connection.js';

export interface RespListenerOptions {
  broker: Broker;
  host: string;
  port: number;
  maxMessageBytes: number;
  logger: Logger;
  version: string;
}

export interface RespListener {
  server: net.Server;
  port: number;
  address: string;
  /** Stops accepting and closes every connection (their in-flight messages are NACKed). */
  close(): Promise<void>;
}

/** Starts the RESP listener; rejects with the listen error (EADDRINUSE, EACCES). */
export async function startRespListener(opts: RespListenerOptions): Promise<RespListener> {
  const connections = new Set<RespConnection>();
  let nextId = 1;
  const server = net.createServer((socket) => {
    const conn = new RespConnection(socket, {
      broker: opts.broker,
      logger: opts.logger,
      maxMessageBytes: opts.maxMessageBytes,
      maxArrayLength: 1024,
      maxReserved: 65536,
      id: nextId++,
      version: opts.version,
    });
    connections.add(conn);
    socket.on('close', () => connections.delete(conn));
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
  opts.logger.info({ protocol: 'resp', address: address.address, port: address.port }, 'listening');
  return {
    server,
    port: address.port,
    address: address.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const conn of connections) conn.destroy();
      }),
  };
}
