import { describe, expect, it } from 'vitest';
import { closesConnection, idleTimeoutFor, keepAliveHintMs } from './keep-alive.js';

describe('keepAliveHintMs', () => {
  it('reads timeout=N seconds as milliseconds', () => {
    expect(keepAliveHintMs(['Keep-Alive', 'timeout=5'])).toBe(5_000);
  });

  it('finds the timeout among other parameters, in any order and spacing', () => {
    expect(keepAliveHintMs(['keep-alive', 'timeout=5, max=1000'])).toBe(5_000);
    expect(keepAliveHintMs(['keep-alive', 'max=1000, timeout=2'])).toBe(2_000);
    expect(keepAliveHintMs(['keep-alive', 'max=1000,timeout=3'])).toBe(3_000);
    expect(keepAliveHintMs(['keep-alive', 'timeout = 7'])).toBe(7_000);
  });

  it('matches the header name and the parameter regardless of case', () => {
    expect(keepAliveHintMs(['KEEP-ALIVE', 'Timeout=4'])).toBe(4_000);
  });

  it('looks past other headers to find Keep-Alive', () => {
    const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=1', 'Date', 'now'];
    expect(keepAliveHintMs(raw)).toBe(1_000);
  });

  it('returns null when there is no Keep-Alive header', () => {
    expect(keepAliveHintMs([])).toBeNull();
    expect(keepAliveHintMs(['Connection', 'keep-alive', 'Content-Length', '2'])).toBeNull();
  });

  it('returns null when Keep-Alive has no timeout parameter', () => {
    expect(keepAliveHintMs(['Keep-Alive', 'max=100'])).toBeNull();
    expect(keepAliveHintMs(['Keep-Alive', 'timeout=soon'])).toBeNull();
  });

  it('does not take a parameter that merely ends in "timeout"', () => {
    expect(keepAliveHintMs(['Keep-Alive', 'max=1,idletimeout=9'])).toBeNull();
  });

  it('ignores a timeout in a header other than Keep-Alive', () => {
    expect(keepAliveHintMs(['X-Keep-Alive-Debug', 'timeout=9'])).toBeNull();
  });

  it('reads timeout=0 as zero, not as absent', () => {
    expect(keepAliveHintMs(['Keep-Alive', 'timeout=0'])).toBe(0);
  });

  it('ignores a trailing name without a value', () => {
    expect(keepAliveHintMs(['Keep-Alive'])).toBeNull();
  });
});

describe('closesConnection', () => {
  it('is true for Connection: close, in any case and among other tokens', () => {
    expect(closesConnection(['Connection', 'close'])).toBe(true);
    expect(closesConnection(['connection', 'Close'])).toBe(true);
    expect(closesConnection(['Connection', 'upgrade, close'])).toBe(true);
  });

  it('is false for Connection: keep-alive', () => {
    expect(closesConnection(['Connection', 'keep-alive'])).toBe(false);
    expect(closesConnection(['Connection', 'Keep-Alive'], false)).toBe(false);
  });

  it('defaults to persistent connections for HTTP/1.1 and to closing for HTTP/1.0', () => {
    expect(closesConnection(['Content-Length', '0'])).toBe(false);
    expect(closesConnection(['Content-Length', '0'], true)).toBe(false);
    expect(closesConnection(['Content-Length', '0'], false)).toBe(true);
  });

  it('is not fooled by "close" in another header', () => {
    expect(closesConnection(['X-Connection', 'close', 'Content-Length', '0'])).toBe(false);
  });
});

describe('idleTimeoutFor', () => {
  it('uses the configured default when the server gives no hint', () => {
    expect(idleTimeoutFor(null, 4_000)).toBe(4_000);
  });

  it('keeps a one-second margin before long server timeouts', () => {
    expect(idleTimeoutFor(5_000, 60_000)).toBe(4_000);
    expect(idleTimeoutFor(60_000, 4_000)).toBe(59_000);
  });

  it('keeps a quarter of short server timeouts as the margin', () => {
    expect(idleTimeoutFor(1_000, 60_000)).toBe(750);
    expect(idleTimeoutFor(2_000, 60_000)).toBe(1_500);
    expect(idleTimeoutFor(4_000, 60_000)).toBe(3_000);
  });

  it('never keeps a socket idle for a server that keeps none', () => {
    expect(idleTimeoutFor(0, 4_000)).toBe(0);
  });

  it('always closes before the server would, for every whole-second hint', () => {
    for (let seconds = 1; seconds <= 120; seconds++) {
      const hintMs = seconds * 1_000;
      const idleMs = idleTimeoutFor(hintMs, 600_000);
      expect(idleMs).toBeLessThan(hintMs);
      expect(hintMs - idleMs).toBeLessThanOrEqual(1_000);
      expect(idleMs).toBeGreaterThanOrEqual(hintMs * 0.75);
    }
  });
});
