import { createHash } from 'node:crypto';
import { request, type Agent, type IncomingHttpHeaders } from 'node:http';

/** What a test sees of a response. */
export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  sha256: string;
}

export interface ClientRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer;
  timeoutMs?: number;
  /** A keep-alive agent to reuse connections; by default each request has its own. */
  agent?: Agent;
}

/**
 * Sends one request to a public tunnel URL the way a browser would reach it: to 127.0.0.1 on
 * the URL's port, with the URL's host in the Host header (so `*.localhost` needs no DNS).
 */
export function fetchVia(url: URL, options: ClientRequest = {}): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: Number(url.port || 80),
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { host: url.host, ...options.headers },
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const hash = createHash('sha256');
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
          if (size <= 4 * 1024 * 1024) chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
        res.on('end', () => {
          if (!res.complete) return reject(new Error('response incomplete'));
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks), sha256: hash.digest('hex') });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}
