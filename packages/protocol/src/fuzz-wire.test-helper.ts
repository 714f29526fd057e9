import type { ErrorCode } from './errors.js';
import { FrameType, MAX_FRAME_PAYLOAD, MAX_MESSAGE_BYTES } from './frame.js';

/*
 * Shared by the relay's and the agent's fuzz tests. The wire as docs/architecture.md states it: encode anything (valid or not),
 * mutate it, and decode it with a reference decoder written from the spec rather than imported,
 * so a model built on it does not share the real decoder's mistakes.
 */

/** Most credit a stream may hold (2^31 - 1). */
export const MAX_CREDIT = 0x7fff_ffff;

export interface WireFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

export type Decoded = { frames: WireFrame[] } | { codes: ErrorCode[] };

/** Splits a message into frames, or names every rule the first bad frame breaks. */
export function decodeReference(bytes: Uint8Array): Decoded {
  if (bytes.length === 0) return { codes: ['FRAME_TRUNCATED'] };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: WireFrame[] = [];
  for (let offset = 0; offset < bytes.length;) {
    if (bytes.length - offset < 10) return { codes: ['FRAME_TRUNCATED'] };
    const type = view.getUint8(offset);
    const streamId = view.getUint32(offset + 2);
    const length = view.getUint32(offset + 6);
    const codes: ErrorCode[] = [];
    if (type < FrameType.OPEN || type > FrameType.WINDOW) codes.push('FRAME_UNKNOWN_TYPE');
    if (streamId === 0) codes.push('FRAME_INVALID');
    if (length > MAX_FRAME_PAYLOAD) codes.push('FRAME_TOO_LARGE');
    if (length > bytes.length - offset - 10) codes.push('FRAME_TRUNCATED');
    if (codes.length > 0) return { codes };
    frames.push({ type, flags: view.getUint8(offset + 1), streamId, payload: bytes.subarray(offset + 10, offset + 10 + length) });
    offset += 10 + length;
  }
  return { frames };
}

/** The part of a zod schema the model needs. */
export interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON payload checked against its schema, or null when the receiver must reject it. */
export function parsePayload<T>(schema: Schema<T>, payload: Uint8Array): T | null {
  try {
    const result = schema.safeParse(JSON.parse(utf8.decode(payload)));
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

/** A WINDOW increment, or null when the payload breaks the rules (size 4, 1..2^31-1). */
export function windowIncrement(payload: Uint8Array): number | null {
  if (payload.length !== 4) return null;
  const value = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  return value === 0 || value > MAX_CREDIT ? null : value;
}

/** Whether `increment` more credit overflows what a stream may hold. */
export function overflows(credit: number, increment: number): boolean {
  return credit + increment > MAX_CREDIT;
}

// Payloads are described rather than stored, so a printed counterexample stays short.
export type PayloadSpec =
  | { bytes: readonly number[] }
  | { fill: number; size: number }
  | { json: unknown }
  /** `json` with one header padded so the payload is exactly `size` bytes. */
  | { padded: Record<string, unknown>; size: number }
  | { u32: number };

export interface FrameSpec {
  type: number;
  flags: number;
  streamId: number;
  payload: PayloadSpec;
}

export type Mutation =
  | { flip: number; bit: number }
  | { keep: number }
  /** Sets the length field of frame `frame` (modulo the frame count). */
  | { frame: number; length: number }
  | { frame: number; type: number }
  | { append: readonly number[] };

export type MessageSpec =
  | { frames: FrameSpec[]; mutation?: Mutation }
  | { raw: readonly number[] }
  | { text: string }
  | { hugeText: number }
  | { badUtf8: readonly number[] }
  | { oversized: true };

/** A message ready to send: text, binary, or a text message whose bytes are not UTF-8. */
export type Built = { text: string } | { binary: Uint8Array } | { badText: Uint8Array };

const encoder = new TextEncoder();

function paddedJson(base: Record<string, unknown>, size: number): Uint8Array {
  const headers = (base.headers as unknown[] | undefined) ?? [];
  const withPad = (pad: string): string => JSON.stringify({ ...base, headers: [...headers, ['x-pad', pad]] });
  return encoder.encode(withPad('p'.repeat(Math.max(0, size - withPad('').length))));
}

export function payloadBytes(spec: PayloadSpec): Uint8Array {
  if ('bytes' in spec) return Uint8Array.from(spec.bytes);
  if ('fill' in spec) return new Uint8Array(spec.size).fill(spec.fill);
  if ('json' in spec) return encoder.encode(JSON.stringify(spec.json) ?? 'null');
  if ('padded' in spec) return paddedJson(spec.padded, spec.size);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, spec.u32);
  return out;
}

/** Encodes frames as the spec lays them out, whatever their fields hold; returns each header's offset. */
export function encodeFrames(frames: FrameSpec[]): { bytes: Uint8Array; offsets: number[] } {
  const payloads = frames.map((frame) => payloadBytes(frame.payload));
  const bytes = new Uint8Array(payloads.reduce((sum, payload) => sum + 10 + payload.length, 0));
  const view = new DataView(bytes.buffer);
  const offsets: number[] = [];
  let offset = 0;
  frames.forEach((frame, index) => {
    const payload = payloads[index]!;
    offsets.push(offset);
    view.setUint8(offset, frame.type);
    view.setUint8(offset + 1, frame.flags);
    view.setUint32(offset + 2, frame.streamId);
    view.setUint32(offset + 6, payload.length);
    bytes.set(payload, offset + 10);
    offset += 10 + payload.length;
  });
  return { bytes, offsets };
}

export function mutate(bytes: Uint8Array, offsets: number[], change: Mutation): Uint8Array {
  if ('flip' in change) {
    const out = bytes.slice();
    const at = change.flip % out.length;
    out[at] = out[at]! ^ (1 << change.bit);
    return out;
  }
  if ('keep' in change) return bytes.slice(0, change.keep % bytes.length);
  if ('append' in change) {
    const out = new Uint8Array(bytes.length + change.append.length);
    out.set(bytes);
    out.set(change.append, bytes.length);
    return out;
  }
  const out = bytes.slice();
  const at = offsets[change.frame % offsets.length]!;
  if ('length' in change) new DataView(out.buffer).setUint32(at + 6, change.length);
  else out[at] = change.type;
  return out;
}

export function build(spec: MessageSpec): Built {
  if ('frames' in spec) {
    const { bytes, offsets } = encodeFrames(spec.frames);
    return { binary: spec.mutation ? mutate(bytes, offsets, spec.mutation) : bytes };
  }
  if ('raw' in spec) return { binary: Uint8Array.from(spec.raw) };
  if ('text' in spec) return { text: spec.text };
  if ('hugeText' in spec) return { text: `"${'x'.repeat(spec.hugeText)}"` };
  if ('badUtf8' in spec) return { badText: Uint8Array.from(spec.badUtf8) };
  return { binary: new Uint8Array(MAX_MESSAGE_BYTES + 1) };
}

/** What sendBuilt needs of a WebSocket (ws's send), so this file depends on no socket library. */
export interface MessageSender {
  send(data: string | Uint8Array, options: { binary: boolean }): void;
}

/** Sends a built message: text, binary, or bytes claimed as text (not UTF-8). */
export function sendBuilt(ws: MessageSender, message: Built): void {
  if ('text' in message) ws.send(message.text, { binary: false });
  else if ('binary' in message) ws.send(message.binary, { binary: true });
  else ws.send(message.badText, { binary: false });
}

/** What ws itself does before the tunnel code sees a message: the close code, or null. */
export function transportClose(message: Built): number | null {
  if ('badText' in message) return 1007;
  if ('binary' in message && message.binary.length > MAX_MESSAGE_BYTES) return 1009;
  return null;
}

/** How a fuzz run's cases ended, most common first: "close 1002 X ×12, open ×3". */
export function describeEndings(endings: ReadonlyMap<string, number>): string {
  return [...endings].sort((a, b) => b[1] - a[1]).map(([ending, count]) => `${ending} ×${count}`).join(', ');
}
