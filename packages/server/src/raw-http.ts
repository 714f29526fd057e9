import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS, type ErrorCode, type HeaderList } from '@tunnel/protocol';

/** Serializes a response head for a socket Node's HTTP server no longer writes for us. */
export function rawResponseHead(status: number, statusMessage: string | undefined, headers: HeaderList): string {
  let head = `HTTP/1.1 ${status} ${statusMessage ?? STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

/** Answers an upgrade request on its raw socket with an error (JSON), then closes it. */
export function writeRawError(socket: Duplex, code: ErrorCode, detail: string = ERRORS[code].message): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message: detail } });
  socket.end(
    rawResponseHead(ERRORS[code].status, undefined, [
      ['Content-Type', 'application/json; charset=utf-8'],
      ['Content-Length', String(Buffer.byteLength(body))],
      ['X-Tunnel-Error', code],
      ['Connection', 'close'],
    ]) + body,
  );
}
