import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import { isKeepAliveRace, isTimeout, mayRetry } from './retry-policy.js';

function errorWithCode(code: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(code);
  error.code = code;
  return error;
}

const RESET = errorWithCode('ECONNRESET');
const POOL_SOCKET_CLOSED = errorWithCode('POOL_SOCKET_CLOSED');

describe('isKeepAliveRace', () => {
  it('recognises the ways a reused socket dies under a request', () => {
    expect(isKeepAliveRace(new errors.SocketError('other side closed'))).toBe(true);
    for (const code of ['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'POOL_SOCKET_CLOSED']) {
      expect(isKeepAliveRace(errorWithCode(code))).toBe(true);
    }
  });

  it('does not take connect failures or timeouts for the race', () => {
    for (const code of ['ECONNREFUSED', 'ETIMEDOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_ABORTED']) {
      expect(isKeepAliveRace(errorWithCode(code))).toBe(false);
    }
    expect(isKeepAliveRace(new errors.HeadersTimeoutError())).toBe(false);
  });

  it('is false for errors without a code and for values that are not errors', () => {
    expect(isKeepAliveRace(new Error('boom'))).toBe(false);
    expect(isKeepAliveRace(undefined)).toBe(false);
    expect(isKeepAliveRace(null)).toBe(false);
    expect(isKeepAliveRace('ECONNRESET')).toBe(false);
  });
});

describe('isTimeout', () => {
  it('recognises header timeouts and connect timeouts', () => {
    expect(isTimeout(new errors.HeadersTimeoutError())).toBe(true);
    expect(isTimeout(errorWithCode('ETIMEDOUT'))).toBe(true);
  });

  it('is false for resets, refusals and errors without a code', () => {
    expect(isTimeout(RESET)).toBe(false);
    expect(isTimeout(errorWithCode('ECONNREFUSED'))).toBe(false);
    expect(isTimeout(new Error('slow'))).toBe(false);
    expect(isTimeout(undefined)).toBe(false);
  });
});

describe('mayRetry', () => {
  it('retries idempotent methods without a body after a reset', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) {
      expect(mayRetry(method, false, RESET)).toBe(true);
    }
  });

  it('matches the method regardless of case', () => {
    expect(mayRetry('get', false, RESET)).toBe(true);
    expect(mayRetry('Delete', false, RESET)).toBe(true);
  });

  it('never retries a non-idempotent method once it may have reached the server', () => {
    for (const method of ['POST', 'PATCH', 'CONNECT']) {
      expect(mayRetry(method, false, RESET)).toBe(false);
      expect(mayRetry(method, true, RESET)).toBe(false);
    }
  });

  it('never retries a request whose body went out, even an idempotent one', () => {
    expect(mayRetry('PUT', true, RESET)).toBe(false);
    expect(mayRetry('GET', true, RESET)).toBe(false);
  });

  it('retries any bodiless request when the socket was found closed before the write', () => {
    expect(mayRetry('POST', false, POOL_SOCKET_CLOSED)).toBe(true);
    expect(mayRetry('PATCH', false, POOL_SOCKET_CLOSED)).toBe(true);
  });

  it('does not replay a body even when the socket was found closed before the write', () => {
    expect(mayRetry('POST', true, POOL_SOCKET_CLOSED)).toBe(false);
    expect(mayRetry('PUT', true, POOL_SOCKET_CLOSED)).toBe(false);
  });
});
