import { TunnelError } from '@tunnel/protocol';
import { AGENT_PATH } from '@tunnel/server';

/** Turns a relay's base URL (`https://relay.example.com`) into its agent endpoint (`wss://…/_tunnel`). */
export function agentEndpointUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TunnelError('CONFIG_INVALID', `"${server}" is not a URL; pass the relay as --server https://relay.example.com.`);
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (!scheme || !url.hostname) {
    throw new TunnelError('CONFIG_INVALID', `"${server}" must be an http(s) or ws(s) URL with a host, such as https://relay.example.com.`);
  }
  url.protocol = scheme;
  url.pathname = AGENT_PATH;
  url.search = '';
  url.hash = '';
  return url.toString();
}
