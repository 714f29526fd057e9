import type { Socket } from 'node:net';

const TOO_MANY = 'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 10\r\nConnection: close\r\nContent-Length: 48\r\n\r\nToo many connections from your address; retry.\n';

/**
 * Counts public connections per client address and in all, so one address (a slowloris, a
 * runaway script) cannot take every connection the relay has. A connection over a limit is
 * answered 429 and closed at once.
 */
export class ConnectionLimits {
  readonly #perIp = new Map<string, number>();
  readonly #max: number;
  readonly #maxPerIp: number;
  #total = 0;

  constructor(max: number, maxPerIp: number) {
    this.#max = max;
    this.#maxPerIp = maxPerIp;
  }

  /** Counts a new connection, or refuses it; counts are returned when the socket closes. */
  admit(socket: Socket): boolean {
    const address = socket.remoteAddress ?? 'unknown';
    const held = this.#perIp.get(address) ?? 0;
    if (held >= this.#maxPerIp || this.#total >= this.#max) {
      socket.on('error', () => undefined);
      socket.end(TOO_MANY);
      socket.destroySoon();
      return false;
    }
    this.#perIp.set(address, held + 1);
    this.#total += 1;
    socket.once('close', () => {
      this.#total -= 1;
      const left = (this.#perIp.get(address) ?? 1) - 1;
      if (left <= 0) this.#perIp.delete(address);
      else this.#perIp.set(address, left);
    });
    return true;
  }
}
