import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { TunnelError } from '@tunnel/protocol';
import { checkPublicRequest } from './request-guard.js';
import { hostnameOf } from './router.js';

/** Certificate and key file paths for HTTPS, or none for plain HTTP. */
export interface TlsFiles {
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new TunnelError('CONFIG_INVALID', `Cannot read the TLS ${what} ${path}: ${(cause as Error).message}.`, { cause });
  }
}

/**
 * The public server: HTTPS when a certificate and key are given (a wildcard certificate for
 * `*.<domain>` and the apex), else plain HTTP. Both or neither must be given.
 */
export function createPublicServer(tls: TlsFiles, options: ServerOptions, handler: RequestListener): { server: Server; proto: 'http' | 'https' } {
  if (tls.certFile === undefined && tls.keyFile === undefined) return { server: createHttpServer(options, handler), proto: 'http' };
  if (tls.certFile === undefined || tls.keyFile === undefined) {
    throw new TunnelError('CONFIG_INVALID', 'HTTPS needs both --tls-cert and --tls-key.');
  }
  const secure = { ...options, cert: readPem(tls.certFile, 'certificate'), key: readPem(tls.keyFile, 'key') };
  try {
    return { server: createHttpsServer(secure, handler), proto: 'https' };
  } catch (cause) {
    throw new TunnelError('CONFIG_INVALID', `The TLS certificate and key cannot be used: ${(cause as Error).message}.`, { cause });
  }
}

/** A plain-HTTP server that sends every request to the same place over HTTPS (308 keeps the method). */
export function createRedirectServer(httpsPort: number): Server {
  return createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const checked = checkPublicRequest(req);
    if (!checked.ok) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end(`${checked.reason}\n`);
      return;
    }
    const port = httpsPort === 443 ? '' : `:${httpsPort}`;
    const location = `https://${hostnameOf(checked.host)}${port}${checked.target}`;
    res.writeHead(308, { location, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`Moved to ${location}\n`);
  });
}
