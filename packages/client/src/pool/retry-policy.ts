/** Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Errors that mean a reused socket was closed by the server under our feet (the keep-alive race). */
const RACE_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'POOL_SOCKET_CLOSED']);

/** Errors that mean the local service is slow or gone, which the breaker counts. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT']);

function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Whether an error is the server closing a reused socket as we wrote to it. */
export function isKeepAliveRace(error: unknown): boolean {
  return RACE_CODES.has(codeOf(error) ?? '');
}

/** Whether an error is a timeout toward the local service. */
export function isTimeout(error: unknown): boolean {
  return TIMEOUT_CODES.has(codeOf(error) ?? '');
}

/**
 * Whether a request that failed before any response byte may be sent again on a fresh socket:
 * when nothing reached the server (the socket was found closed before the write), or when the
 * method is idempotent and the request had no body to replay. A POST whose body went out is
 * never sent twice.
 */
export function mayRetry(method: string, hasBody: boolean, error: unknown): boolean {
  if (codeOf(error) === 'POOL_SOCKET_CLOSED') return !hasBody;
  return IDEMPOTENT.has(method.toUpperCase()) && !hasBody;
}
