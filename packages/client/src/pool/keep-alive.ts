/**
 * Reads `Keep-Alive: timeout=N` (seconds) from a response's raw headers; null when absent.
 * Servers send it to say how long they keep an idle connection (Node: 5 s, Apache: 5 s).
 */
export function keepAliveHintMs(rawHeaders: readonly string[]): number | null {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'keep-alive') continue;
    const match = /(?:^|[,\s])timeout\s*=\s*(\d+)/i.exec(rawHeaders[i + 1]!);
    if (match) return Number(match[1]) * 1000;
  }
  return null;
}

/** Whether a response says the server will close the connection after it. */
export function closesConnection(rawHeaders: readonly string[], httpVersion11 = true): boolean {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    const tokens = rawHeaders[i + 1]!.toLowerCase().split(',').map((token) => token.trim());
    if (tokens.includes('close')) return true;
    if (tokens.includes('keep-alive')) return false;
  }
  return !httpVersion11;
}

/**
 * How long we keep an idle socket, given the server's hint: a safety margin before the server's
 * own timeout (a quarter of it, at most one second), so we close first and never write to a
 * socket the server is closing. Without a hint, the configured default.
 */
export function idleTimeoutFor(hintMs: number | null, defaultMs: number): number {
  if (hintMs === null) return defaultMs;
  if (hintMs <= 0) return 0;
  return Math.max(hintMs - 1000, Math.floor(hintMs * 0.75));
}
