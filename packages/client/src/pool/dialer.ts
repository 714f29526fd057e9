import { isIP, connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

/** TLS settings toward an HTTPS local service; part of the pool key. */
export interface LocalTls {
  /** SNI name and the name the certificate must match; defaults to the host when it is a name. */
  servername?: string;
  /** PEM CA to verify against; without one, verification is off (self-signed dev servers). */
  ca?: string;
  rejectUnauthorized: boolean;
}

/** Where and how to dial the local service. */
export interface DialTarget {
  host: string;
  port: number;
  tls: LocalTls | null;
  connectTimeoutMs: number;
}

/** A connect error with an errno-style code, like Node's own. */
function connectError(message: string, code: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(message);
  error.code = code;
  return error;
}

/**
 * Opens one TCP (or TLS) connection to the local service, resolving once it is usable: after
 * `connect`, or after the TLS handshake. Fails with the socket's error or ETIMEDOUT.
 */
export function dial(target: DialTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const tls = target.tls;
    const servername = tls?.servername ?? (isIP(target.host) ? undefined : target.host);
    const socket = tls
      ? connectTls({
          host: target.host,
          port: target.port,
          ...(servername === undefined ? {} : { servername }),
          ...(tls.ca === undefined ? {} : { ca: tls.ca }),
          rejectUnauthorized: tls.rejectUnauthorized,
          ALPNProtocols: ['http/1.1'],
        })
      : connectTcp({ host: target.host, port: target.port, autoSelectFamily: true });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy(connectError(`connect to ${target.host}:${target.port} timed out after ${target.connectTimeoutMs} ms`, 'ETIMEDOUT'));
    }, target.connectTimeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once('error', onError);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
