import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import { decodeFrames } from './frame-decoder.js';
import { FLAG_UPGRADE, FRAME_HEADER_BYTES, FrameType, MAX_FRAME_PAYLOAD, MAX_MESSAGE_BYTES, MAX_STREAM_ID, encodeFrame } from './frame.js';
import { seededRandom } from './seeded-random.test-helper.js';

function tunnelErrorFrom(action: () => unknown): TunnelError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(TunnelError);
    return error as TunnelError;
  }
  throw new Error('expected a TunnelError, but nothing was thrown');
}

/** A raw header with any values, including ones encodeFrame refuses to write. */
function rawHeader(type: number, streamId: number, length: number, flags = 0): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint8(0, type);
  view.setUint8(1, flags);
  view.setUint32(2, streamId);
  view.setUint32(6, length);
  return header;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

describe('decodeFrames', () => {
  it.each(Object.entries(FrameType))('round-trips a %s frame', (_name, type) => {
    const payload = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + type) & 0xff);
    const [frame, ...rest] = decodeFrames(encodeFrame(type, 0xdead_beef, payload, FLAG_UPGRADE));
    expect(rest).toEqual([]);
    expect(frame).toEqual({ type, flags: FLAG_UPGRADE, streamId: 0xdead_beef, payload });
  });

  it('round-trips an empty payload, a full-size payload and the largest stream id', () => {
    const full = new Uint8Array(MAX_FRAME_PAYLOAD).fill(0x5a);
    const frames = decodeFrames(concat(encodeFrame(FrameType.END, 1), encodeFrame(FrameType.DATA, MAX_STREAM_ID, full)));
    expect(frames.map((frame) => [frame.type, frame.streamId, frame.payload.length])).toEqual([
      [FrameType.END, 1, 0],
      [FrameType.DATA, MAX_STREAM_ID, MAX_FRAME_PAYLOAD],
    ]);
    expect(frames[1]!.payload.every((value) => value === 0x5a)).toBe(true);
  });

  it('decodes several frames of one message in order', () => {
    const message = concat(
      encodeFrame(FrameType.OPEN, 1, new TextEncoder().encode('{"a":1}')),
      encodeFrame(FrameType.DATA, 1, new Uint8Array([1, 2, 3])),
      encodeFrame(FrameType.WINDOW, 2, new Uint8Array([0, 0, 1, 0])),
      encodeFrame(FrameType.END, 1),
    );
    const frames = decodeFrames(message);
    expect(frames.map((frame) => [frame.type, frame.streamId])).toEqual([
      [FrameType.OPEN, 1],
      [FrameType.DATA, 1],
      [FrameType.WINDOW, 2],
      [FrameType.END, 1],
    ]);
    expect([...frames[1]!.payload]).toEqual([1, 2, 3]);
  });

  it('returns payloads as views into the message rather than copies', () => {
    const message = encodeFrame(FrameType.DATA, 4, new Uint8Array([7, 8]));
    const [frame] = decodeFrames(message);
    expect(frame!.payload.buffer).toBe(message.buffer);
    expect(frame!.payload.byteOffset).toBe(FRAME_HEADER_BYTES);
  });

  it('decodes a message that starts at an offset inside a larger buffer', () => {
    const padded = concat(new Uint8Array([0xff, 0xff, 0xff]), encodeFrame(FrameType.DATA, 5, new Uint8Array([42])));
    const [frame] = decodeFrames(padded.subarray(3));
    expect(frame).toEqual({ type: FrameType.DATA, flags: 0, streamId: 5, payload: new Uint8Array([42]) });
  });
});

describe('decodeFrames rejects broken input with a TunnelError', () => {
  it.each([
    ['an empty message', new Uint8Array(0), 'FRAME_TRUNCATED'],
    ['a truncated header', encodeFrame(FrameType.END, 1).subarray(0, FRAME_HEADER_BYTES - 1), 'FRAME_TRUNCATED'],
    ['a truncated payload', concat(rawHeader(FrameType.DATA, 1, 10), new Uint8Array(4)), 'FRAME_TRUNCATED'],
    ['a whole frame followed by a partial header', concat(encodeFrame(FrameType.END, 1), new Uint8Array(3)), 'FRAME_TRUNCATED'],
    ['a payload length over MAX_FRAME_PAYLOAD', rawHeader(FrameType.DATA, 1, MAX_FRAME_PAYLOAD + 1), 'FRAME_TOO_LARGE'],
    ['a payload length of 2^32-1', rawHeader(FrameType.DATA, 1, 0xffff_ffff), 'FRAME_TOO_LARGE'],
    ['a message over MAX_MESSAGE_BYTES', new Uint8Array(MAX_MESSAGE_BYTES + 1), 'FRAME_TOO_LARGE'],
    ['frame type 0', rawHeader(0, 1, 0), 'FRAME_UNKNOWN_TYPE'],
    ['frame type 7', rawHeader(7, 1, 0), 'FRAME_UNKNOWN_TYPE'],
    ['frame type 255', rawHeader(255, 1, 0), 'FRAME_UNKNOWN_TYPE'],
    ['stream id 0', rawHeader(FrameType.DATA, 0, 0), 'FRAME_INVALID'],
  ])('%s gives %s', (_what, message, code) => {
    expect(tunnelErrorFrom(() => decodeFrames(message)).code).toBe(code);
  });

  it('rejects an oversized length from the header alone, before looking for the payload', () => {
    // Only the 10 header bytes exist: a decoder that sliced or allocated first would say TRUNCATED.
    const error = tunnelErrorFrom(() => decodeFrames(rawHeader(FrameType.DATA, 1, MAX_FRAME_PAYLOAD + 1)));
    expect(error.code).toBe('FRAME_TOO_LARGE');
    expect(error.message).toContain(String(MAX_FRAME_PAYLOAD + 1));
  });

  it('rejects a bad frame after good ones instead of returning a partial list', () => {
    const message = concat(encodeFrame(FrameType.END, 1), rawHeader(9, 1, 0));
    expect(tunnelErrorFrom(() => decodeFrames(message)).code).toBe('FRAME_UNKNOWN_TYPE');
  });

  it('returns frames or throws a TunnelError for 2,000 random messages', () => {
    const random = seededRandom(0x7e57_0001);
    const byte = () => Math.floor(random() * 256);
    for (let round = 0; round < 2_000; round++) {
      let message: Uint8Array;
      if (random() < 0.5) {
        message = Uint8Array.from({ length: Math.floor(random() * 64) }, byte);
      } else {
        // Start from valid frames and corrupt a few bytes, so the fuzz also reaches the later checks.
        const frames = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
          encodeFrame((1 + Math.floor(random() * 6)) as FrameType, 1 + Math.floor(random() * 1000), Uint8Array.from({ length: Math.floor(random() * 40) }, byte)),
        );
        message = concat(...frames);
        for (let flips = Math.floor(random() * 3); flips > 0; flips--) message[Math.floor(random() * message.length)] = byte();
        if (random() < 0.3) message = message.subarray(0, Math.floor(random() * message.length));
      }
      try {
        const frames = decodeFrames(message);
        const decodedBytes = frames.reduce((sum, frame) => sum + FRAME_HEADER_BYTES + frame.payload.length, 0);
        expect(decodedBytes, `round ${round}: frames must cover the message exactly`).toBe(message.length);
      } catch (error) {
        expect(error, `round ${round} threw something other than a TunnelError`).toBeInstanceOf(TunnelError);
      }
    }
  });
});
