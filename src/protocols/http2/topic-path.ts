/**
 * The topic part of a route path (`/publish/<topic>`, `/subscribe/<topic>`), shared by the HTTP/2
 * fast path (server.ts) and the HTTP/1.1 routes (http1.ts) so both read a path the same way.
 */

/**
 * Decodes the topic from `path` after its first `prefixLength` characters, up to a `?`;
 * undefined when it is not decodable (a bad `%` escape). The result is not validated.
 */
export function topicFromPath(path: string, prefixLength: number): string | undefined {
  const raw = rawTopicOf(path, prefixLength);
  if (raw.indexOf('%') < 0) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** The topic part of `path` after its first `prefixLength` characters, up to a `?`, as sent (not decoded). */
export function rawTopicOf(path: string, prefixLength: number): string {
  const q = path.indexOf('?');
  return path.slice(prefixLength, q < 0 ? path.length : q);
}
