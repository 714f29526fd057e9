import type { IncomingMessage } from 'node:http';
import { endToEndHeaders, type HeaderList } from '@tunnel/protocol';

/**
 * Headers the relay sets itself; a public client's values are dropped, never trusted. Expect
 * travels as the request head's `expectContinue` flag, and the agent states it again.
 */
const RELAY_OWNED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-real-ip', 'expect']);
/** With the tunnel's own password in force, its Authorization header was for the relay, not the app. */
const RELAY_OWNED_WITH_AUTH = new Set([...RELAY_OWNED, 'authorization']);

/** The request headers the agent replays: end-to-end ones in order, then the relay's X-Forwarded-*. */
export function forwardedRequestHeaders(req: IncomingMessage, proto: 'http' | 'https', consumedAuthorization = false): HeaderList {
  const headers = endToEndHeaders(req.rawHeaders, consumedAuthorization ? RELAY_OWNED_WITH_AUTH : RELAY_OWNED);
  const clientAddress = req.socket.remoteAddress ?? '';
  headers.push(['X-Forwarded-For', clientAddress.replace(/^::ffff:/, '')]);
  headers.push(['X-Forwarded-Proto', proto]);
  headers.push(['X-Forwarded-Host', req.headers.host ?? '']);
  return headers;
}

/**
 * Fields never passed on as request trailers: the relay's own, and those RFC 9110 §6.5.1 keeps
 * out of trailers (framing, routing, authentication, content processing), which an app reading
 * trailers might otherwise trust.
 */
const NOT_A_TRAILER = new Set([
  ...RELAY_OWNED_WITH_AUTH,
  'proxy-authorization', 'cookie', 'host', 'content-length', 'content-type', 'content-encoding', 'content-range',
  'transfer-encoding', 'trailer', 'te', 'max-forwards', 'cache-control',
]);

/** The request trailers the agent replays: end-to-end fields fit to follow a body. */
export function forwardedTrailers(rawTrailers: readonly string[]): HeaderList {
  return endToEndHeaders(rawTrailers, NOT_A_TRAILER);
}

/** Whether a request carries a body the agent must stream (RFC 9112 §6.3). */
export function requestHasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

/** Flattens ordered pairs into Node's raw header array form for `writeHead`. */
export function flattenHeaders(headers: HeaderList): string[] {
  const flat: string[] = [];
  for (const [name, value] of headers) flat.push(name, value);
  return flat;
}
