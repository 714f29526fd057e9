import { z } from 'zod';
import { TunnelError, isErrorCode, type ErrorCode } from './errors.js';

/** An RFC 9110 token: what a method or a header name may contain. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Header values and status messages: tab, visible ASCII and obs-text (RFC 9110 §5.5), which is
 * exactly what Node will write. Anything else would make the relay's writeHead throw.
 */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A DNS label as a tunnel name: lowercase letters, digits and inner hyphens, 1 to 63 characters. */
export const SUBDOMAIN_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const Subdomain = z.string().regex(SUBDOMAIN_PATTERN, 'must be a DNS label: a-z, 0-9 and inner hyphens, 1-63 characters');

/** Headers as ordered [name, value] pairs, so order and repeats (Set-Cookie) survive the trip. */
export const HeaderList = z
  .array(z.tuple([z.string().regex(TOKEN, 'invalid header name'), z.string().max(64 * 1024).regex(FIELD_VALUE, 'invalid header value')]))
  .max(1000);
export type HeaderList = z.infer<typeof HeaderList>;

/** OPEN payload: the public request as the agent must replay it to the local service. */
export const RequestHead = z.object({
  method: z.string().min(1).max(32).regex(TOKEN, 'invalid method'),
  target: z.string().min(1).max(16 * 1024).regex(/^[/*][^\s]*$/, 'the request target must be origin-form'),
  headers: HeaderList,
  /** Whether a body follows as DATA frames; without one the agent sends no body at all. */
  hasBody: z.boolean(),
  /**
   * The `Upgrade` header's value when the client asks to switch protocols (WebSocket). If the
   * local service answers 101, the stream then carries raw bytes both ways.
   */
  upgrade: z.string().min(1).max(256).regex(FIELD_VALUE).optional(),
  /**
   * The public client sent `Expect: 100-continue` and holds its body back until the local
   * service answers 100 Continue, which comes back as an informational HEAD.
   */
  expectContinue: z.boolean().optional(),
});
export type RequestHead = z.infer<typeof RequestHead>;

/** HEAD payload: the local service's answer, passed on to the public client. */
export const ResponseHead = z.object({
  status: z.number().int().min(100).max(599),
  statusMessage: z.string().max(256).regex(FIELD_VALUE).optional(),
  headers: HeaderList,
});
export type ResponseHead = z.infer<typeof ResponseHead>;

/** END payload, optional: trailer fields that follow the body (an empty END has none). */
export const EndPayload = z.object({
  trailers: HeaderList,
});
export type EndPayload = z.infer<typeof EndPayload>;

/**
 * An error code on the wire. A code this version does not know (sent by a newer peer) is read as
 * INTERNAL rather than failing the whole message, so adding a code stays compatible.
 */
const WireErrorCode = z
  .string()
  .regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'must be an error code')
  .transform((code): ErrorCode => (isErrorCode(code) ? code : 'INTERNAL'));

/** RESET payload: why a stream was aborted. */
export const ResetReason = z.object({
  code: WireErrorCode,
  message: z.string().max(1024).optional(),
});
export type ResetReason = z.infer<typeof ResetReason>;

/** Sent by the agent first, once per connection. */
export const Hello = z.object({
  type: z.literal('hello'),
  /** Kept as a number, not a literal, so a mismatch gets a VERSION_MISMATCH reply instead of a schema error. */
  protocol: z.number().int().min(0),
  clientVersion: z.string().max(64),
  token: z.string().max(1024).optional(),
  subdomain: Subdomain.optional(),
  /** The secret from an earlier `ready`: reclaims that name during the relay's grace period. */
  resume: z.string().min(16).max(256).optional(),
  /** Who may use the public URL; the relay checks it before anything reaches the agent. */
  access: z
    .object({
      /** `user:password` for HTTP Basic authentication. */
      basicAuth: z.string().min(3).max(512).regex(/^[^:\r\n]+:[^\r\n]*$/, 'must be user:password').optional(),
      /** Addresses allowed in, as CIDR blocks (`203.0.113.0/24`, `2001:db8::/32`) or single addresses. */
      allowIps: z.array(z.string().max(64)).max(256).optional(),
    })
    .optional(),
});
export type Hello = z.infer<typeof Hello>;

/** Sent by the relay when the agent's hello is accepted. */
export const Ready = z.object({
  type: z.literal('ready'),
  name: Subdomain,
  url: z.string().url(),
  /** A secret that lets this agent reclaim the name if it reconnects within the grace period. */
  resume: z.string().min(16).max(256).optional(),
});
export type Ready = z.infer<typeof Ready>;

/** Sent by either side before it closes the connection because of an error. */
export const ErrorMessage = z.object({
  type: z.literal('error'),
  code: WireErrorCode,
  message: z.string().max(4096),
});
export type ErrorMessage = z.infer<typeof ErrorMessage>;

/** Sent by the relay when it will stop: no new streams come, open ones may finish until the deadline. */
export const GoAway = z.object({
  type: z.literal('goaway'),
  reason: z.string().max(1024),
  deadlineMs: z.number().int().min(0),
});
export type GoAway = z.infer<typeof GoAway>;

/** Every control message, sent as a text WebSocket message. */
export const ControlMessage = z.discriminatedUnion('type', [Hello, Ready, ErrorMessage, GoAway]);
export type ControlMessage = z.infer<typeof ControlMessage>;

/** Describes zod issues as one line: `path: problem; path: problem`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}

/** Parses JSON text with a schema; any failure becomes a TunnelError with `code`. */
function parseJson<T>(schema: z.ZodType<T>, text: string, what: string, code: 'MESSAGE_INVALID' | 'FRAME_INVALID'): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new TunnelError(code, `The ${what} is not valid JSON.`, { cause });
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new TunnelError(code, `The ${what} is invalid: ${describeIssues(result.error)}.`);
  }
  return result.data;
}

/** Parses a text WebSocket message into a control message, or throws MESSAGE_INVALID. */
export function parseControlMessage(text: string): ControlMessage {
  if (text.length > 64 * 1024) {
    throw new TunnelError('MESSAGE_INVALID', 'A control message is larger than 64 KiB.');
  }
  return parseJson(ControlMessage, text, 'control message', 'MESSAGE_INVALID');
}

/** Serializes a control message (validated first, so we never send what we would reject). */
export function encodeControlMessage(message: ControlMessage): string {
  const result = ControlMessage.safeParse(message);
  if (!result.success) {
    throw new TunnelError('MESSAGE_INVALID', `Refusing to send an invalid ${message.type} message: ${describeIssues(result.error)}.`);
  }
  return JSON.stringify(result.data);
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Decodes a JSON frame payload with a schema, or throws FRAME_INVALID. */
export function decodeJsonPayload<T>(schema: z.ZodType<T>, payload: Uint8Array, what: string): T {
  let text: string;
  try {
    text = decoder.decode(payload);
  } catch (cause) {
    throw new TunnelError('FRAME_INVALID', `The ${what} is not valid UTF-8.`, { cause });
  }
  return parseJson(schema, text, what, 'FRAME_INVALID');
}

/** Encodes a value as a JSON frame payload. */
export function encodeJsonPayload(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}
