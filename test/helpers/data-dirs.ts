/** Data directories with known contents, written by a real server (the inspect and check tests read them). */
import { RespConn, asReserved } from './resp-client.js';
import { startChild } from './servers.js';

/**
 * Fills `db` with a real server (4 KiB segments, no compaction, so every record stays): 200
 * publishes to `jobs` (payload `job-<i>` padded to 40 bytes), 3 to `mail`, one to `tmp` which is
 * then deleted; on one connection 3 `jobs` messages are reserved, the first ACKed and the second
 * DACKed for 600 s, the third left in flight. Stops the server with SIGTERM unless `keepRunning`.
 * Returns the server (stopped or not) and the connection holding the reservation.
 */
export async function fillWithServer(db: string, keepRunning = false): Promise<{ stop: () => Promise<void>; resp: RespConn; respPort: number }> {
  const server = await startChild(db, ['--segment-bytes', '4096', '--no-compaction']);
  const resp = await RespConn.connect(server.respPort);
  const publishes: string[][] = [];
  for (let i = 0; i < 200; i++) publishes.push(['PUBLISH', 'jobs', `job-${i}`.padEnd(40, '.')]);
  for (let i = 0; i < 3; i++) publishes.push(['PUBLISH', 'mail', `mail-${i}`]);
  publishes.push(['PUBLISH', 'tmp', 'gone soon']);
  const replies = await resp.pipeline(publishes);
  if (!replies.every((r) => String(r) === 'OK')) throw new Error('a publish failed');
  await resp.send('DEL', 'tmp');
  const a = asReserved(await resp.send('RESERVE', 'jobs'));
  const b = asReserved(await resp.send('RESERVE', 'jobs'));
  asReserved(await resp.send('RESERVE', 'jobs'));
  if (String(await resp.send('ACK', 'jobs', a.id)) !== 'OK') throw new Error('ACK failed');
  if (String(await resp.send('DACK', 'jobs', b.id, '600')) !== 'OK') throw new Error('DACK failed');
  const stop = async (): Promise<void> => {
    resp.close();
    const { code } = await server.kill('SIGTERM');
    if (code !== 0) throw new Error(`server exited with ${code}`);
  };
  if (!keepRunning) await stop();
  return { stop, resp, respPort: server.respPort };
}
