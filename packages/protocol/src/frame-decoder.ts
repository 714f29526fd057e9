import { TunnelError } from './errors.js';
import { FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD, MAX_MESSAGE_BYTES, isFrameType, type Frame } from './frame.js';

/**
 * Splits one received WebSocket message into frames. Pure: takes bytes, returns frames whose
 * payloads are views into `message`, or throws a TunnelError naming what is wrong. Lengths are
 * checked before anything is sliced, so a hostile length never causes an allocation.
 */
export function decodeFrames(message: Uint8Array): Frame[] {
  if (message.length > MAX_MESSAGE_BYTES) {
    throw new TunnelError('FRAME_TOO_LARGE', `A ${message.length}-byte message exceeds the ${MAX_MESSAGE_BYTES}-byte limit.`);
  }
  if (message.length === 0) {
    throw new TunnelError('FRAME_TRUNCATED', 'An empty binary message carries no frame.');
  }
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const frames: Frame[] = [];
  let offset = 0;
  while (offset < message.length) {
    if (message.length - offset < FRAME_HEADER_BYTES) {
      throw new TunnelError('FRAME_TRUNCATED', `A frame header needs ${FRAME_HEADER_BYTES} bytes; only ${message.length - offset} remain.`);
    }
    const type = view.getUint8(offset);
    const flags = view.getUint8(offset + 1);
    const streamId = view.getUint32(offset + 2);
    const length = view.getUint32(offset + 6);
    if (!isFrameType(type)) {
      throw new TunnelError('FRAME_UNKNOWN_TYPE', `Frame type ${type} is unknown to this protocol version.`);
    }
    if (streamId === 0) {
      throw new TunnelError('FRAME_INVALID', 'Stream id 0 is not a stream.');
    }
    if (length > MAX_FRAME_PAYLOAD) {
      throw new TunnelError('FRAME_TOO_LARGE', `A ${length}-byte payload exceeds the ${MAX_FRAME_PAYLOAD}-byte frame limit.`);
    }
    const start = offset + FRAME_HEADER_BYTES;
    if (start + length > message.length) {
      throw new TunnelError('FRAME_TRUNCATED', `A frame declares ${length} payload bytes; only ${message.length - start} arrived.`);
    }
    frames.push({ type, flags, streamId, payload: message.subarray(start, start + length) });
    offset = start + length;
  }
  return frames;
}
