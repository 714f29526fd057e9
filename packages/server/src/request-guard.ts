import type { IncomingMessage } from 'node:http';

/** A public request that passed the checks: the one Host and origin-form target to use. */
export interface CheckedRequest {
  ok: true;
  host: string;
  target: string;
}

/** A request to refuse with 400 and a closed connection, and why. */
export interface RefusedRequest {
  ok: false;
  reason: string;
}

/** A hostname or bracketed IPv6 literal, with an optional port; nothing else. */
const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** The values of every header named `name` (lowercase), from the raw list. */
function rawValues(req: IncomingMessage, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === name) values.push(req.rawHeaders[i + 1]!);
  }
  return values;
}

/**
 * Checks what Node's parser lets through but a proxy must not: several Host headers, a Host
 * that is not a hostname, an absolute-form target naming another host, and Transfer-Encoding
 * on HTTP/1.0 or other than plain `chunked` (request smuggling: two parsers reading one
 * request two ways). Routing uses the Host returned here, so it and any authorization decide
 * on the same parse.
 */
export function checkPublicRequest(req: IncomingMessage): CheckedRequest | RefusedRequest {
  const hosts = rawValues(req, 'host');
  if (hosts.length !== 1) return { ok: false, reason: hosts.length === 0 ? 'The request has no Host header.' : 'The request has more than one Host header.' };
  const host = hosts[0]!.trim();
  if (!HOST.test(host)) return { ok: false, reason: 'The Host header is not a valid host name.' };

  const encodings = rawValues(req, 'transfer-encoding');
  if (encodings.length > 0) {
    if (req.httpVersion === '1.0') return { ok: false, reason: 'Transfer-Encoding is not allowed in HTTP/1.0.' };
    if (encodings.length > 1 || encodings[0]!.trim().toLowerCase() !== 'chunked') {
      return { ok: false, reason: 'Transfer-Encoding must be exactly "chunked".' };
    }
  }

  const target = req.url ?? '';
  if (target.startsWith('/')) return { ok: true, host, target };
  if (target === '*' && req.method === 'OPTIONS') return { ok: true, host, target };
  let absolute: URL;
  try {
    absolute = new URL(target);
  } catch {
    return { ok: false, reason: 'The request target is not a path or an absolute URL.' };
  }
  if ((absolute.protocol !== 'http:' && absolute.protocol !== 'https:') || absolute.host.toLowerCase() !== host.toLowerCase()) {
    return { ok: false, reason: 'An absolute request target must name the same host as the Host header.' };
  }
  return { ok: true, host, target: `${absolute.pathname}${absolute.search}` };
}
