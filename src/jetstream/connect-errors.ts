/**
 * The credentials a `--nats` connection offers and its first failure said plainly (nats-link.ts
 * connects): credentials taken out of the URLs, which of them were refused (never a secret), and
 * how to trust a TLS certificate.
 */

/** Whether NATS refused the connection's credentials (nats.js AuthorizationError, "Authorization Violation"). */
export function isAuthorizationError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'AuthorizationError' || err.name === 'UserAuthenticationExpiredError' || /authorization violation|authentication/i.test(err.message);
}

/** Node's codes for a TLS certificate the client does not trust. */
const UNTRUSTED_CERT_CODES = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_UNTRUSTED|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * A failed first connection, said plainly: `what` for the log line ("NATS refused the
 * connection" when the credentials were refused, else "NATS unreachable") and the error, whose
 * message names the refused credentials (their source, never a secret) or how to trust a TLS
 * certificate (NODE_EXTRA_CA_CERTS), keeping the original as its cause.
 */
export function explainConnectError(err: unknown, fromUrls: { user?: string; password?: string }, opts: { user?: string; password?: string; token?: string }): { what: string; error: unknown } {
  const message = err instanceof Error ? err.message : String(err);
  if (isAuthorizationError(err)) {
    return { what: 'NATS refused the connection', error: new Error(`the credentials were refused (${describeCredentials(fromUrls, opts)}): ${message}`, { cause: err }) };
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNTRUSTED_CERT_CODES.test(code)) {
    const hint = "the NATS server's TLS certificate is not trusted: start miniqueue with NODE_EXTRA_CA_CERTS=/path/to/ca.pem naming its CA (or itself, if self-signed)";
    return { what: 'NATS unreachable', error: new Error(`${message} (${hint})`, { cause: err }) };
  }
  return { what: 'NATS unreachable', error: err };
}

/**
 * Which credentials a connection offered, for an error message: the user name and where each part
 * came from, never a password or token.
 */
export function describeCredentials(fromUrls: { user?: string; password?: string }, opts: { user?: string; password?: string; token?: string }): string {
  const parts: string[] = [];
  const user = opts.user ?? fromUrls.user;
  if (user !== undefined) parts.push(`user ${JSON.stringify(user)} from ${opts.user === undefined ? 'the --nats URL' : 'MINIQUEUE_NATS_USER'}`);
  if (opts.password !== undefined) parts.push('a password from MINIQUEUE_NATS_PASSWORD');
  else if (fromUrls.password !== undefined) parts.push('a password from the --nats URL');
  if (opts.token !== undefined) parts.push('a token from MINIQUEUE_NATS_TOKEN');
  return parts.length === 0
    ? 'none given: put them in the --nats URL (nats://user:password@host:port), or in MINIQUEUE_NATS_USER and MINIQUEUE_NATS_PASSWORD, or in MINIQUEUE_NATS_TOKEN'
    : parts.join(', ');
}

/** Credentials taken out of the URLs (nats.js wants them as options) and the URLs without them. */
export function splitCredentials(servers: string[]): { servers: string[]; user?: string; password?: string } {
  let user: string | undefined;
  let password: string | undefined;
  const plain = servers.map((s) => {
    const url = new URL(s);
    if (url.username !== '') user = decodeURIComponent(url.username);
    if (url.password !== '') password = decodeURIComponent(url.password);
    url.username = '';
    url.password = '';
    return `${url.protocol}//${url.host}`;
  });
  return { servers: plain, ...(user === undefined ? {} : { user }), ...(password === undefined ? {} : { password }) };
}
