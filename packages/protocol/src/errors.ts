/**
 * Every error a user or operator can meet, in one place: a stable code, the HTTP status the relay
 * answers with when the error reaches a public client, and a sentence that says what to do.
 * A code never changes once released; docs/errors.md lists each one (a test checks that).
 */
export const ERRORS = {
  FRAME_TRUNCATED: { status: 502, message: 'A frame ended before its declared length; the peer sent a broken message.' },
  FRAME_TOO_LARGE: { status: 502, message: 'A frame is larger than the protocol allows; the peer is broken or hostile.' },
  FRAME_UNKNOWN_TYPE: { status: 502, message: 'A frame has a type this version does not know; upgrade the older side.' },
  FRAME_OUT_OF_ORDER: { status: 502, message: 'A frame arrived that the stream state does not allow (for example DATA before OPEN or after END).' },
  FRAME_INVALID: { status: 502, message: 'A frame payload is malformed.' },
  STREAM_UNKNOWN: { status: 502, message: 'A frame names a stream that was never opened.' },
  FLOW_CONTROL_VIOLATION: { status: 502, message: 'The peer sent more data than its flow-control window allows.' },
  MESSAGE_INVALID: { status: 502, message: 'A control message failed validation; the peer is broken or speaks another protocol.' },
  VERSION_MISMATCH: { status: 502, message: 'The agent and the relay speak different protocol versions; upgrade the older side.' },
  HELLO_TIMEOUT: { status: 502, message: 'The agent did not say hello in time.' },
  SUBDOMAIN_INVALID: { status: 400, message: 'The requested subdomain is not a valid DNS label (a-z, 0-9 and inner hyphens, 1-63 characters).' },
  SUBDOMAIN_TAKEN: { status: 409, message: 'The requested subdomain is in use by another tunnel; choose another with --subdomain.' },
  SUBDOMAIN_RESERVED: { status: 403, message: 'The requested subdomain is reserved by the relay; choose another with --subdomain.' },
  AUTH_FAILED: { status: 401, message: 'The relay refused the token; check --token or TUNNEL_TOKEN.' },
  AUTH_REQUIRED: { status: 401, message: 'This tunnel asks for a user name and password.' },
  ACCESS_DENIED: { status: 403, message: 'Your address may not use this tunnel.' },
  TUNNEL_NOT_FOUND: { status: 404, message: 'No tunnel is online at this address. Check the URL, or start the agent again.' },
  AGENT_RECONNECTING: { status: 502, message: 'The tunnel agent lost its connection and is reconnecting; try again in a few seconds.' },
  TUNNEL_LIMIT: { status: 429, message: 'This token already has as many tunnels open as it may; close one or raise maxTunnels.' },
  AGENT_DISCONNECTED: { status: 502, message: 'The tunnel agent disconnected before answering. The agent may be restarting; try again shortly.' },
  LOCAL_UNREACHABLE: { status: 502, message: 'The local service refused the connection. Check that it is running on the port the agent forwards to.' },
  LOCAL_TIMEOUT: { status: 504, message: 'The local service did not answer in time.' },
  LOCAL_ERROR: { status: 502, message: 'The local service broke off its response.' },
  STREAM_CANCELLED: { status: 499, message: 'The public client went away before the response was complete.' },
  RELAY_SHUTTING_DOWN: { status: 503, message: 'The relay is shutting down; the agent will reconnect to another or the same relay.' },
  RELAY_UNREACHABLE: { status: 502, message: 'The agent cannot reach the relay; check --server and the network.' },
  TOO_MANY_STREAMS: { status: 503, message: 'The tunnel has too many requests in flight; retry shortly.' },
  REQUEST_INVALID: { status: 400, message: 'The request is malformed.' },
  CONFIG_INVALID: { status: 500, message: 'A setting is invalid; the message names the setting and its source.' },
  INTERNAL: { status: 500, message: 'An unexpected error happened; please report it with the logs.' },
} as const satisfies Record<string, { status: number; message: string }>;

/** The stable error codes of the tunnel. */
export type ErrorCode = keyof typeof ERRORS;

/** The list of codes, for validation and documentation checks. */
export const ERROR_CODES = Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]];

/** An error with a stable code and a message a person can act on. */
export class TunnelError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = ERRORS[code].message, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TunnelError';
    this.code = code;
  }

  /** The HTTP status that answers a public client meeting this error. */
  get status(): number {
    return ERRORS[this.code].status;
  }
}

/** Narrows an unknown thrown value to a TunnelError. */
export function isTunnelError(value: unknown): value is TunnelError {
  return value instanceof TunnelError;
}

/** Whether a string is one of the known codes (for values read off the wire). */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERRORS, value);
}
