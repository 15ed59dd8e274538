/**
 * Gateway processes (`miniqueue --engine jetstream`) for the tests of NATS setups (authentication,
 * TLS, replicas): started with extra environment variables, a RESP round trip through one, and
 * the refusal a gateway reports while it cannot connect (its warn line, `/healthz`, a command's
 * answer). Every process and connection is closed by {@link GatewayProcesses.closeAll}.
 */
import assert from 'node:assert/strict';
import { asReserved, errorLine, h2connect, h2request, logLines, RespConnections, startChild, waitFor, type ChildServer, type RespConn } from '../helpers/index.js';

/** What a gateway that cannot connect says, in its three places. */
export interface Refusal {
  /** The warn line's `msg`. */
  warn: string;
  /** The `error` of the `/healthz` body (status 503). */
  health: string;
  /** The RESP error line answered to a PUBLISH. */
  reply: string;
}

export class GatewayProcesses {
  readonly #gateways: ChildServer[] = [];
  #respPort = 0;
  readonly #resp = new RespConnections(() => this.#respPort);

  /**
   * Starts a gateway on `urls` (`--nats-stream` `stream`, `--nats-replicas` `replicas`) with `env`
   * added to its environment; `until: 'listening'` does not wait for it to connect to NATS.
   */
  async start(urls: string, opts: { stream: string; replicas: 1 | 3; env?: Record<string, string>; until?: 'ready' | 'listening' }): Promise<ChildServer> {
    const args = ['--engine', 'jetstream', '--nats', urls, '--nats-stream', opts.stream, '--nats-replicas', String(opts.replicas)];
    const gw = await startChild(null, args, 30_000, { env: opts.env ?? {}, until: opts.until ?? 'ready' });
    this.#gateways.push(gw);
    return gw;
  }

  /** A RESP connection to `gw`. */
  connect(gw: ChildServer): Promise<RespConn> {
    this.#respPort = gw.respPort;
    return this.#resp.connect();
  }

  /** PUBLISH then RESERVE and ACK through `gw`'s RESP port: the round trip works. */
  async roundTrip(gw: ChildServer, topic: string, payload = 'through the gateway'): Promise<void> {
    const c = await this.connect(gw);
    assert.equal(await c.send('PUBLISH', topic, payload), 'OK');
    const t0 = Date.now();
    const reply = await c.send('RESERVE', topic, '5000');
    assert.notEqual(reply, null, `RESERVE ${topic} 5000 answered nil after ${Date.now() - t0} ms; gateway log:\n${gw.lines.join('\n')}`);
    const r = asReserved(reply);
    assert.equal(r.payload.toString(), payload);
    assert.equal(await c.send('ACK', topic, r.id), 'OK');
  }

  /**
   * Waits for `gw`'s warn line starting with `prefix`, then reads `/healthz` (asserting 503) and
   * the answer to a PUBLISH (asserting an error): what the gateway says while it cannot connect.
   */
  async refusal(gw: ChildServer, prefix: string): Promise<Refusal> {
    let warn: string | undefined;
    await waitFor(
      () => (warn = logLines<{ level: number; msg: string }>(gw).find((l) => l.level === 40 && l.msg.startsWith(prefix))?.msg) !== undefined,
      10_000,
      20,
      () => `a warn line starting ${JSON.stringify(prefix)}; log:\n${gw.lines.join('\n')}`,
    );
    const session = h2connect(gw.httpPort);
    try {
      const health = await h2request(session, 'GET', '/healthz');
      assert.equal(health.status, 503);
      const c = await this.connect(gw);
      const reply = errorLine(await c.send('PUBLISH', 'refused', 'x'));
      const { error } = JSON.parse(health.body.toString()) as { error: string };
      return { warn: warn!, health: error, reply };
    } finally {
      session.close();
    }
  }

  async closeAll(): Promise<void> {
    this.#resp.closeAll();
    await Promise.all(this.#gateways.splice(0).map((g) => g.kill('SIGKILL')));
  }
}
