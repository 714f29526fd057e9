import { Readable } from 'node:stream';

/**
 * A request body arriving as DATA frames, read by undici as it writes to the local service.
 * Credit is returned (through `onConsumed`) only for bytes undici has taken out of this stream,
 * so the relay never has more than one window in flight for a slow local reader.
 */
export class InboundBody extends Readable {
  readonly #onConsumed: (bytes: number) => void;
  #pushed = 0;
  #reported = 0;
  /** Trailer fields that came with the end, as flat name/value pairs. */
  trailers: string[] | null = null;

  constructor(onConsumed: (bytes: number) => void) {
    super({ highWaterMark: 64 * 1024 });
    this.#onConsumed = onConsumed;
  }

  /** Adds bytes received from the relay. */
  add(chunk: Uint8Array): void {
    this.#pushed += chunk.length;
    // The return value is ignored on purpose: flow control, not this buffer, bounds what arrives.
    this.push(chunk);
  }

  /** Marks the end of the body, with the trailer fields that followed it, if any. */
  finish(trailers: string[] | null = null): void {
    this.trailers = trailers;
    this.push(null);
  }

  override _read(): void {
    const consumed = this.#pushed - this.readableLength;
    if (consumed > this.#reported) {
      const delta = consumed - this.#reported;
      this.#reported = consumed;
      this.#onConsumed(delta);
    }
  }
}
