/**
 * Closing HTTP/2 sessions that may not stay: over `--max-connections` (refused at accept, told
 * with a GOAWAY once the handshake is done), or without an authorized request in time under
 * `--auth-token`.
 */
import http2, { type Http2Session } from 'node:http2';
import { BrokerError } from '../../errors.js';
import type { Admission } from '../admission.js';

/** Debug data of the GOAWAY that refuses a session over `--max-connections` (Redis's words). */
const MAX_CONNECTIONS_GOAWAY = Buffer.from(new BrokerError('MQ_ERR_MAX_CONNECTIONS').message);
/** How long a refused session may take to read its GOAWAY before it is destroyed, in ms. */
const REFUSED_SESSION_GRACE_MS = 1000;

/**
 * Refuses a session whose TCP connection was over `--max-connections` when it was accepted (the
 * decision is made at accept, the refusal sent once the handshake is done): a GOAWAY with
 * ENHANCE_YOUR_CALM (0xb) and the debug data "max number of clients reached", before any stream
 * is accepted (last stream id 0), then the connection is closed. A client sees the GOAWAY and its requests fail with that code;
 * nothing was processed, so retrying later is safe.
 */
export function refuseSession(session: Http2Session): void {
  try {
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, MAX_CONNECTIONS_GOAWAY);
    session.close();
  } catch {
    // Already closing or destroyed: nothing left to refuse.
  }
  // A client that never reads would keep a gracefully closing session open: cut it off.
  setTimeout(() => {
    if (!session.destroyed) session.destroy();
  }, REFUSED_SESSION_GRACE_MS).unref();
}

/** Debug data of the GOAWAY that closes a session without an authorized request in time. */
const AUTH_DEADLINE_GOAWAY = Buffer.from('no request with the right bearer token in time');

/**
 * With `--auth-token`: closes `session` (GOAWAY NO_ERROR with a readable reason) unless it has made
 * a request with the right token within `admission.authDeadlineMs` of its start, so that idle
 * unauthenticated connections cannot hold `--max-connections` slots. Counted as `unauthorized`.
 */
export function closeUnlessAuthorized(session: Http2Session, admission: Admission): void {
  const timer = setTimeout(() => {
    if (session.destroyed || session.closed || admission.isAuthorized(session)) return;
    admission.refuse('http2', 'unauthorized');
    try {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, 0, AUTH_DEADLINE_GOAWAY);
      session.close();
    } catch {
      return; // already closing
    }
    setTimeout(() => {
      if (!session.destroyed) session.destroy();
    }, REFUSED_SESSION_GRACE_MS).unref();
  }, admission.authDeadlineMs);
  timer.unref();
  session.once('close', () => clearTimeout(timer));
}
