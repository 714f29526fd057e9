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
