// Fills a topic before a consume benchmark: one RESP connection, PUBLISH commands pipelined
// with a bounded window, stopping at `count` messages or after `maxSeconds`, whichever is first.
import net from 'node:net';
import { RespReader, encodeCommand } from './resp-reader.mjs';

const BATCH = 256;

/**
 * Publishes up to `count` copies of `payload` to `topic` on 127.0.0.1:port.
 * @returns `{ published, seconds, rate }`; rejects on the first error reply or socket error.
 */
export function prepublish({ port, topic, payload, count, maxSeconds = 10, window = 4096 }) {
  return new Promise((resolve, reject) => {
    const one = encodeCommand('PUBLISH', topic, payload);
    const batch = Buffer.concat(new Array(BATCH).fill(one));
    const started = performance.now();
    const deadline = started + maxSeconds * 1000;
    let sent = 0;
    let acked = 0;
    let stopSending = false;
    const sock = net.connect(port, '127.0.0.1');
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      sock.destroy();
      if (err) return reject(err);
      const seconds = (performance.now() - started) / 1000;
      resolve({ published: acked, seconds, rate: acked / seconds });
    };
    const pump = () => {
      if (performance.now() > deadline) stopSending = true;
      while (!stopSending && sent < count && sent - acked < window) {
        const n = Math.min(BATCH, count - sent);
        sock.write(n === BATCH ? batch : batch.subarray(0, n * one.length));
        sent += n;
      }
      if (acked === sent && (stopSending || sent >= count)) finish();
    };
    const reader = new RespReader((reply) => {
      if (reply === null || reply.type !== '+') {
        finish(new Error(`PUBLISH during pre-publish got ${JSON.stringify(reply?.value ?? reply)}`));
        return;
      }
      acked++;
      if (acked % BATCH === 0 || acked === sent) pump();
    });
    sock.on('data', (d) => {
      try {
        reader.push(d);
      } catch (err) {
        finish(err);
      }
    });
    sock.on('error', finish);
    sock.on('connect', pump);
  });
}
