import { TunnelError } from './errors.js';

/**
 * Frame types. Each binary WebSocket message carries one or more frames.
 * OPEN: relay → agent, a request head (JSON) starts stream `id`.
 * HEAD: agent → relay, the response head (JSON); interim 1xx heads carry FLAG_INFORMATIONAL.
 * DATA: body bytes, either direction, within the receiver's credit.
 * END: the sender's body is complete (half-close).
 * RESET: abort the stream at once, payload is JSON `{ code, message? }`.
 * WINDOW: grant the peer more credit, payload is a u32 byte count.
 */
export const FrameType = {
  OPEN: 1,
  HEAD: 2,
  DATA: 3,
  END: 4,
  RESET: 5,
  WINDOW: 6,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** OPEN flag: the request asks for a protocol upgrade (WebSocket); after a 101 the stream carries raw bytes. */
export const FLAG_UPGRADE = 0x01;
/**
 * HEAD flag: an interim 1xx answer (100 Continue, 102, 103 Early Hints) that the relay passes on
 * at once; the final head still follows.
 */
export const FLAG_INFORMATIONAL = 0x02;

/** type u8, flags u8, stream id u32, payload length u32 (big-endian). */
export const FRAME_HEADER_BYTES = 10;
/** Largest payload of any frame: bodies are cut to this size so no stream hogs the connection. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;
/** Largest WebSocket message either side accepts: a batch of frames. */
export const MAX_MESSAGE_BYTES = 4 * (MAX_FRAME_PAYLOAD + FRAME_HEADER_BYTES);
/** Initial per-stream credit in each direction. */
export const INITIAL_WINDOW = 256 * 1024;
/** Stream ids are u32; 0 is never a stream. */
export const MAX_STREAM_ID = 0xffff_ffff;

/** One decoded frame; `payload` is a view into the received message, not a copy. */
export interface Frame {
  type: FrameType;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

const KNOWN_TYPES = new Set<number>(Object.values(FrameType));

/** Whether a number is a frame type this version knows. */
export function isFrameType(value: number): value is FrameType {
  return KNOWN_TYPES.has(value);
}

/** Writes a frame header into `target` at `offset`. */
function writeHeader(target: Uint8Array, offset: number, type: FrameType, flags: number, streamId: number, length: number): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, FRAME_HEADER_BYTES);
  view.setUint8(0, type);
  view.setUint8(1, flags);
  view.setUint32(2, streamId);
  view.setUint32(6, length);
}

/** Checks what the encoder is asked to send, so a bug here never puts a bad frame on the wire. */
function assertEncodable(streamId: number, payloadLength: number, flags: number): void {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xff) {
    throw new TunnelError('FRAME_INVALID', `Flags ${flags} do not fit in one byte.`);
  }
  if (!Number.isInteger(streamId) || streamId < 1 || streamId > MAX_STREAM_ID) {
    throw new TunnelError('FRAME_INVALID', `Stream id ${streamId} is outside 1..2^32-1.`);
  }
  if (payloadLength > MAX_FRAME_PAYLOAD) {
    throw new TunnelError('FRAME_TOO_LARGE', `A ${payloadLength}-byte payload exceeds the ${MAX_FRAME_PAYLOAD}-byte frame limit.`);
  }
}

/** Encodes one frame into a fresh buffer (header + payload). */
export function encodeFrame(type: FrameType, streamId: number, payload: Uint8Array = EMPTY, flags = 0): Uint8Array {
  assertEncodable(streamId, payload.length, flags);
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeHeader(out, 0, type, flags, streamId, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Encodes only the header of a frame, so a large payload can be sent after it without a copy
 * (the sender concatenates header and payload views into one message).
 */
export function encodeFrameHeader(type: FrameType, streamId: number, payloadLength: number, flags = 0): Uint8Array {
  assertEncodable(streamId, payloadLength, flags);
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  writeHeader(out, 0, type, flags, streamId, payloadLength);
  return out;
}

/** Encodes a WINDOW payload: the credit increment as u32. */
export function encodeWindowIncrement(bytes: number): Uint8Array {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > 0x7fff_ffff) {
    throw new TunnelError('FRAME_INVALID', `A window increment of ${bytes} is outside 1..2^31-1.`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, bytes);
  return out;
}

/** Decodes a WINDOW payload, rejecting a wrong size or a zero increment. */
export function decodeWindowIncrement(payload: Uint8Array): number {
  if (payload.length !== 4) {
    throw new TunnelError('FRAME_INVALID', `A WINDOW payload must be 4 bytes, got ${payload.length}.`);
  }
  const bytes = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  if (bytes === 0 || bytes > 0x7fff_ffff) {
    throw new TunnelError('FRAME_INVALID', `A window increment of ${bytes} is outside 1..2^31-1.`);
  }
  return bytes;
}

const EMPTY = new Uint8Array(0);
