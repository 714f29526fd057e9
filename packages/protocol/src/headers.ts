import type { HeaderList } from './messages.js';

/**
 * Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1).
 * `Trailer` is not among them: it announces end-to-end trailer fields (RFC 9110 §6.6.2).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/** The header names listed in `Connection`, which are hop-by-hop for this message too. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase();
      if (name) tokens.add(name);
    }
  }
  return tokens;
}

/**
 * Copies a flat raw header array (`[name, value, name, value, …]`, as Node and undici give it)
 * into ordered pairs, leaving out hop-by-hop headers, those named in `Connection`, and `drop`.
 */
export function endToEndHeaders(rawHeaders: readonly string[], drop: ReadonlySet<string> = new Set()): HeaderList {
  const listed = connectionTokens(rawHeaders);
  const out: HeaderList = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || drop.has(lower)) continue;
    out.push([name, rawHeaders[i + 1]!]);
  }
  return out;
}
