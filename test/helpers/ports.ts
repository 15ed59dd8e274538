/** Free loopback ports for servers a test starts itself (nats-server, prometheus). */
import { once } from 'node:events';
import { createServer } from 'node:net';

/** A port free on 127.0.0.1 now (the kernel's choice; another process may take it before us). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}
