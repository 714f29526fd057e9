import { Writable } from 'node:stream';
import { TunnelError } from './errors.js';
import { FrameType, MAX_FRAME_PAYLOAD } from './frame.js';
import type { SendCredit } from './flow.js';
import type { FrameWriter } from './frame-writer.js';
import { encodeJsonPayload, type HeaderList } from './messages.js';

/** Shared, so closing a finished writer builds no error object (and captures no stack). */
const WRITER_CLOSED = new TunnelError('STREAM_CANCELLED', 'The stream was closed.');

/**
 * A Writable that turns a body into DATA frames for one stream, and END when it finishes.
 * It never sends beyond the stream's credit and waits while the connection is congested, so
 * `pipeline(source, bodyWriter)` carries backpressure from the tunnel back to the source.
 * Chunks are cut to MAX_FRAME_PAYLOAD so one big body cannot hold up the other streams.
 */
export class BodyWriter extends Writable {
  readonly #streamId: number;
  readonly #credit: SendCredit;
  readonly #frames: FrameWriter;
  #bytesSent = 0;
  #trailers: HeaderList | null = null;

  constructor(streamId: number, credit: SendCredit, frames: FrameWriter) {
    super({ highWaterMark: MAX_FRAME_PAYLOAD });
    this.#streamId = streamId;
    this.#credit = credit;
    this.#frames = frames;
  }

  /** Body bytes sent so far. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // Fast path: with credit and an uncongested connection the chunk goes out now and the write
    // completes synchronously, so HEAD, DATA and END of a small response share one message.
    const offset = this.#sendNow(chunk, 0);
    if (offset === chunk.length) {
      callback();
      return;
    }
    this.#send(chunk, offset).then(() => callback(), callback);
  }

  /** Trailer fields to send with END, once the body is written. */
  setTrailers(trailers: HeaderList): void {
    this.#trailers = trailers.length > 0 ? trailers : null;
  }

  override _final(callback: (error?: Error | null) => void): void {
    const payload = this.#trailers ? encodeJsonPayload({ trailers: this.#trailers }) : undefined;
    this.#frames.write(FrameType.END, this.#streamId, payload);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#credit.close(error ?? WRITER_CLOSED);
    callback(error);
  }

  /** Sends what credit allows without waiting; returns how far into `chunk` it got. */
  #sendNow(chunk: Uint8Array, start: number): number {
    let offset = start;
    while (offset < chunk.length && this.#credit.available > 0 && !this.#frames.isCongested) {
      const size = this.#credit.take(Math.min(MAX_FRAME_PAYLOAD, chunk.length - offset));
      this.#frames.write(FrameType.DATA, this.#streamId, chunk.subarray(offset, offset + size));
      offset += size;
      this.#bytesSent += size;
    }
    return offset;
  }

  async #send(chunk: Uint8Array, start: number): Promise<void> {
    let offset = start;
    while (offset < chunk.length) {
      if (this.#credit.available === 0) await this.#credit.whenAvailable();
      const congested = this.#frames.whenWritable();
      if (congested) await congested;
      const size = this.#credit.take(Math.min(MAX_FRAME_PAYLOAD, chunk.length - offset));
      if (size === 0) continue;
      this.#frames.write(FrameType.DATA, this.#streamId, chunk.subarray(offset, offset + size));
      offset += size;
      this.#bytesSent += size;
    }
  }
}
