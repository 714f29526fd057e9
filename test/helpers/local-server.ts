import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { onTestFinished } from 'vitest';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server on 127.0.0.1, standing in for the user's app. Closed when the test ends. */
export interface LocalServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Starts a local service with `handler` on a free port. */
export async function startLocalServer(
  handler: Handler,
  cleanup: (fn: () => Promise<void>) => void = onTestFinished,
): Promise<LocalServer> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
    return closed;
  };
  cleanup(close);
  return { server, port: (server.address() as AddressInfo).port, close };
}

/** Deterministic pseudo-random bytes (xorshift32), so a body's hash is known on both ends. */
export function patternBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let state = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out.writeUInt32LE(state, i);
  }
  for (; i < size; i += 1) out[i] = i & 0xff;
  return out;
}

/** The sha256 of a buffer, hex. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
