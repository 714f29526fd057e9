/** Where a public request goes, decided once from its Host header. */
export type Route =
  | { kind: 'apex' }
  | { kind: 'tunnel'; name: string }
  | { kind: 'unknown' };

/** Strips the port from a Host value (`name.example.com:8080`, `[::1]:80`) and lowercases it. */
export function hostnameOf(host: string): string {
  const trimmed = host.trim().toLowerCase();
  if (trimmed.startsWith('[')) {
    const end = trimmed.indexOf(']');
    return end === -1 ? trimmed : trimmed.slice(0, end + 1);
  }
  const colon = trimmed.lastIndexOf(':');
  return colon === -1 ? trimmed : trimmed.slice(0, colon);
}

/**
 * Routes by the Host header: the apex domain is the relay itself; `<label>.<domain>` is the
 * tunnel named `label`; anything else (other domains, deeper names, IP literals) is unknown.
 * Pure, so routing and any later authorization decide on the very same parse.
 */
export function routeHost(host: string | undefined, domain: string): Route {
  if (!host) return { kind: 'unknown' };
  const hostname = hostnameOf(host).replace(/\.$/, '');
  const apex = domain.toLowerCase();
  if (hostname === apex) return { kind: 'apex' };
  const suffix = `.${apex}`;
  if (!hostname.endsWith(suffix)) return { kind: 'unknown' };
  const label = hostname.slice(0, -suffix.length);
  if (label.length === 0 || label.includes('.')) return { kind: 'unknown' };
  return { kind: 'tunnel', name: label };
}
