import type { Writable } from 'node:stream';
import { ReceiveWindow } from './flow.js';
import { FrameType, encodeWindowIncrement } from './frame.js';
import type { FrameWriter } from './frame-writer.js';

/**
 * Where one stream's incoming DATA goes: a Writable (a public response, a socket). Enforces the
 * receive window, and grants WINDOW credit back only once the destination has taken the bytes,
 * at once when `write` returns true, or on `drain`. So a slow destination slows only its own
 * stream, and no more than one window is ever held for it.
 */
export class DataSink {
  readonly #streamId: number;
  readonly #frames: FrameWriter;
  readonly #window: ReceiveWindow;
  #destination: Writable | null = null;
  #owedOnDrain = 0;
  #waitingForDrain = false;
  #closed = false;

  constructor(streamId: number, frames: FrameWriter, window: ReceiveWindow = new ReceiveWindow()) {
    this.#streamId = streamId;
    this.#frames = frames;
    this.#window = window;
  }

  /** Sets where DATA goes from now on. */
  attach(destination: Writable): void {
    this.#destination = destination;
  }

  /** Takes one DATA payload; throws FLOW_CONTROL_VIOLATION if the peer overran its credit. */
  write(payload: Uint8Array): void {
    this.#window.receive(payload.length);
    const destination = this.#destination;
    if (!destination || this.#closed) return;
    if (destination.write(payload)) {
      this.#grant(payload.length);
      return;
    }
    this.#owedOnDrain += payload.length;
    if (this.#waitingForDrain) return;
    this.#waitingForDrain = true;
    destination.once('drain', () => {
      this.#waitingForDrain = false;
      const owed = this.#owedOnDrain;
      this.#owedOnDrain = 0;
      this.#grant(owed);
    });
  }

  /** Stops granting credit; the stream is over. Safe to call twice. */
  close(): void {
    this.#closed = true;
  }

  #grant(bytes: number): void {
    if (this.#closed) return;
    const increment = this.#window.consume(bytes);
    if (increment > 0) this.#frames.write(FrameType.WINDOW, this.#streamId, encodeWindowIncrement(increment));
  }
}
