import { TunnelError } from '@tunnel/protocol';

const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const RACE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'POOL_SOCKET_CLOSED']);
const TIMEOUT = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** The first errno-style code in an error, its cause, or an AggregateError's members. */
function codeOf(error: unknown, depth = 0): string | undefined {
  if (!(error instanceof Error) || depth > 4) return undefined;
  const own = (error as NodeJS.ErrnoException).code;
  if (own && own !== 'UND_ERR_SOCKET' && own !== 'UND_ERR_CONNECT') return own;
  if (error instanceof AggregateError) {
    for (const member of error.errors) {
      const code = codeOf(member, depth + 1);
      if (code) return code;
    }
  }
  return codeOf(error.cause, depth + 1) ?? own;
}

/**
 * Translates a failure talking to the local service into the error the public client sees:
 * refused or unresolvable → LOCAL_UNREACHABLE, slow → LOCAL_TIMEOUT, anything else LOCAL_ERROR.
 */
export function describeLocalFailure(error: unknown, label: string, method = 'the'): TunnelError {
  const code = codeOf(error);
  if (code && RACE.has(code)) {
    return new TunnelError(
      'LOCAL_ERROR',
      `The local service at ${label} closed the connection before answering; the ${method} request was not sent again because repeating it might not be safe.`,
      { cause: error },
    );
  }
  if (code && UNREACHABLE.has(code)) {
    return new TunnelError('LOCAL_UNREACHABLE', `The local service at ${label} refused the connection (${code}). Is it running?`, { cause: error });
  }
  if (code && TIMEOUT.has(code)) {
    return new TunnelError('LOCAL_TIMEOUT', `The local service at ${label} did not answer in time.`, { cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new TunnelError('LOCAL_ERROR', `The local service at ${label} failed: ${detail}`, { cause: error });
}
