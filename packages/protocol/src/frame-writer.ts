import { TunnelError } from './errors.js';
import { FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD, encodeFrameHeader, type FrameType } from './frame.js';

/** The one thing the writer needs from a WebSocket: send a binary message, and how much is queued. */
export interface MessageSink {
  send(message: Uint8Array, done: (error?: Error) => void): void;
  readonly bufferedAmount: number;
}

export interface FrameWriterOptions {
  /** Above this many queued bytes the connection counts as congested and body sources wait. */
  highWaterMark?: number;
}

const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const RECHECK_MS = 10;
const FLUSH_AT_BYTES = 2 * (MAX_FRAME_PAYLOAD + FRAME_HEADER_BYTES);

/**
 * Puts frames on one WebSocket. Frames written in the same tick are batched into one message,
 * so an OPEN and its END, or a burst of WINDOW grants, cost one send. When the socket is
 * congested, `whenWritable` hands out a promise that resolves once it has drained, which is how
 * connection backpressure reaches every body source.
 */
export class FrameWriter {
  readonly #sink: MessageSink;
  readonly #highWaterMark: number;
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #flushScheduled = false;
  #waiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #closedWith: Error | null = null;
  /** Sends of ours whose callback has not fired: each one is a chance to wake the waiters. */
  #inFlight = 0;
  #recheck: ReturnType<typeof setTimeout> | null = null;

  constructor(sink: MessageSink, options: FrameWriterOptions = {}) {
    this.#sink = sink;
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  }

  /** Queues one frame for sending in this tick's batch. */
  write(type: FrameType, streamId: number, payload?: Uint8Array, flags = 0): void {
    if (this.#closedWith) return;
    const length = payload?.length ?? 0;
    this.#parts.push(encodeFrameHeader(type, streamId, length, flags));
    if (payload && length > 0) this.#parts.push(payload);
    this.#partBytes += FRAME_HEADER_BYTES + length;
    if (this.#partBytes >= FLUSH_AT_BYTES) {
      this.flush();
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Whether the socket has more queued than the high-water mark. */
  get isCongested(): boolean {
    return this.#sink.bufferedAmount + this.#partBytes > this.#highWaterMark;
  }

  /** Undefined when a source may write now; otherwise a promise that resolves once drained. */
  whenWritable(): Promise<void> | undefined {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    if (!this.isCongested) return undefined;
    const waiting = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#scheduleRecheck();
    return waiting;
  }

  /** Sends the pending batch now. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#parts.length === 0 || this.#closedWith) return;
    const message = this.#parts.length === 1 ? this.#parts[0]! : concat(this.#parts, this.#partBytes);
    this.#parts = [];
    this.#partBytes = 0;
    this.#inFlight += 1;
    this.#sink.send(message, (error) => {
      this.#inFlight -= 1;
      if (error) this.close(new TunnelError('AGENT_DISCONNECTED', 'The tunnel connection failed while sending.', { cause: error }));
      else this.#wakeIfDrained();
    });
  }

  /** Drops pending frames and rejects waiters; safe to call twice. */
  close(reason: Error): void {
    if (this.#closedWith) return;
    this.#closedWith = reason;
    this.#parts = [];
    this.#partBytes = 0;
    if (this.#recheck) clearTimeout(this.#recheck);
    this.#recheck = null;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(reason);
  }

  /**
   * When the socket is congested by bytes other than ours (control messages, pings), no send
   * callback of ours may come to wake the waiters; then look again shortly until it drains.
   */
  #scheduleRecheck(): void {
    if (this.#inFlight > 0 || this.#recheck !== null) return;
    this.#recheck = setTimeout(() => {
      this.#recheck = null;
      this.#wakeIfDrained();
      if (this.#waiters.length > 0 && !this.#closedWith) this.#scheduleRecheck();
    }, RECHECK_MS);
  }

  #wakeIfDrained(): void {
    if (this.#waiters.length === 0 || this.isCongested) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
