import { connect } from 'node:net';

/** What came back for raw request bytes: the status line, and whether the relay closed the connection. */
export interface RawOutcome {
  statusLine: string;
  closed: boolean;
}

/**
 * Sends bytes exactly as given (no HTTP client to tidy them up) and reads the answer for at most
 * `waitMs`, reporting whether the server closed the connection in that time.
 */
export function sendRaw(port: number, bytes: string, waitMs = 1000): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let received = '';
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ statusLine: received.split('\r\n')[0] ?? '', closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

/** A raw client connection a test drives step by step: write bytes, wait for text, see it close. */
export interface RawConnection {
  write(bytes: string | Buffer): void;
  /** Resolves with everything received once it contains `text`; rejects after `timeoutMs`. */
  waitFor(text: string, timeoutMs?: number): Promise<string>;
  /** Everything received so far, as latin1. */
  received(): string;

  /** Resolves when the server has closed the connection. */
  readonly closed: Promise<void>;
  destroy(): void;
}

/** Opens a raw TCP connection to `port` on 127.0.0.1. */
export async function openRaw(port: number): Promise<RawConnection> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let received = '';
  const watchers = new Set<() => void>();
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
    for (const watcher of watchers) watcher();
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    write: (bytes) => socket.write(bytes),
    waitFor: (text, timeoutMs = 5000) => new Promise((resolve, reject) => {
      const check = (): void => {
        if (!received.includes(text)) return;
        clearTimeout(timer);
        watchers.delete(check);
        resolve(received);
      };
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms; received ${JSON.stringify(received.slice(0, 300))}`));
      }, timeoutMs);
      watchers.add(check);
      check();
    }),
    received: () => received,
    closed,
    destroy: () => socket.destroy(),
  };
}
