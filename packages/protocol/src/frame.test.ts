import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import {
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_FRAME_PAYLOAD,
  MAX_STREAM_ID,
  decodeWindowIncrement,
  encodeFrame,
  encodeFrameHeader,
  encodeWindowIncrement,
  isFrameType,
} from './frame.js';

function tunnelErrorFrom(action: () => unknown): TunnelError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(TunnelError);
    return error as TunnelError;
  }
  throw new Error('expected a TunnelError, but nothing was thrown');
}

describe('encodeFrame', () => {
  it('writes type, flags, stream id and length big-endian, then the payload', () => {
    const frame = encodeFrame(FrameType.DATA, 0x01020304, new Uint8Array([0xaa, 0xbb]), 0x01);
    expect([...frame]).toEqual([3, 1, 1, 2, 3, 4, 0, 0, 0, 2, 0xaa, 0xbb]);
  });

  it('encodes a frame without a payload as a bare header', () => {
    expect(encodeFrame(FrameType.END, 9)).toHaveLength(FRAME_HEADER_BYTES);
  });

  it('accepts the largest payload and the largest stream id', () => {
    const frame = encodeFrame(FrameType.DATA, MAX_STREAM_ID, new Uint8Array(MAX_FRAME_PAYLOAD));
    expect(frame).toHaveLength(FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD);
  });

  it('refuses a payload over MAX_FRAME_PAYLOAD with FRAME_TOO_LARGE', () => {
    const error = tunnelErrorFrom(() => encodeFrame(FrameType.DATA, 1, new Uint8Array(MAX_FRAME_PAYLOAD + 1)));
    expect(error.code).toBe('FRAME_TOO_LARGE');
  });

  it.each([0, -1, 1.5, MAX_STREAM_ID + 1, Number.NaN])('refuses stream id %s with FRAME_INVALID', (streamId) => {
    expect(tunnelErrorFrom(() => encodeFrame(FrameType.END, streamId)).code).toBe('FRAME_INVALID');
  });
});

describe('encodeFrameHeader', () => {
  it('matches the header that encodeFrame writes', () => {
    const payload = new Uint8Array([1, 2, 3]);
    const whole = encodeFrame(FrameType.OPEN, 77, payload, 1);
    expect(encodeFrameHeader(FrameType.OPEN, 77, payload.length, 1)).toEqual(whole.subarray(0, FRAME_HEADER_BYTES));
  });

  it('applies the same limits as encodeFrame', () => {
    expect(tunnelErrorFrom(() => encodeFrameHeader(FrameType.DATA, 1, MAX_FRAME_PAYLOAD + 1)).code).toBe('FRAME_TOO_LARGE');
    expect(tunnelErrorFrom(() => encodeFrameHeader(FrameType.DATA, 0, 1)).code).toBe('FRAME_INVALID');
  });
});

describe('window increments', () => {
  it.each([1, 65_536, 0x7fff_ffff])('round-trips %i', (bytes) => {
    expect(decodeWindowIncrement(encodeWindowIncrement(bytes))).toBe(bytes);
  });

  it.each([0, -1, 2.5, 0x8000_0000])('refuses to encode %s', (bytes) => {
    expect(tunnelErrorFrom(() => encodeWindowIncrement(bytes)).code).toBe('FRAME_INVALID');
  });

  it.each([
    ['three bytes', [0, 0, 1]],
    ['five bytes', [0, 0, 0, 1, 0]],
    ['a zero increment', [0, 0, 0, 0]],
    ['an increment over 2^31-1', [0x80, 0, 0, 0]],
  ])('refuses to decode %s', (_what, bytes) => {
    expect(tunnelErrorFrom(() => decodeWindowIncrement(new Uint8Array(bytes))).code).toBe('FRAME_INVALID');
  });

  it('decodes a payload that is a view at an offset into a larger buffer', () => {
    const message = new Uint8Array([9, 9, 0, 0, 1, 0, 9]);
    expect(decodeWindowIncrement(message.subarray(2, 6))).toBe(256);
  });
});

describe('isFrameType', () => {
  it('knows exactly the six frame types', () => {
    const known = Array.from({ length: 256 }, (_, value) => value).filter(isFrameType);
    expect(known).toEqual(Object.values(FrameType).sort((a, b) => a - b));
  });
});
