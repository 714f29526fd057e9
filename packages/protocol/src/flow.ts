import { TunnelError } from './errors.js';
import { INITIAL_WINDOW } from './frame.js';

const MAX_CREDIT = 0x7fff_ffff;

/**
 * What one side may still send on one stream. DATA is sent only out of this credit; WINDOW
 * frames from the peer add to it. Waiters are woken when credit arrives, or rejected when the
 * stream closes, so a sender never hangs on a dead stream.
 */
export class SendCredit {
  #available: number;
  #waiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #closedWith: Error | null = null;

  constructor(initial: number = INITIAL_WINDOW) {
    this.#available = initial;
  }

  /** Bytes that may be sent now. */
  get available(): number {
    return this.#available;
  }

  /** Takes up to `wanted` bytes of credit and returns how many were taken. */
  take(wanted: number): number {
    if (this.#closedWith) throw this.#closedWith;
    const taken = Math.min(wanted, this.#available);
    this.#available -= taken;
    return taken;
  }

  /** Adds credit the peer granted; a grant that overflows the window is a protocol error. */
  grant(bytes: number): void {
    if (this.#available + bytes > MAX_CREDIT) {
      throw new TunnelError('FLOW_CONTROL_VIOLATION', `A WINDOW grant of ${bytes} bytes overflows the credit.`);
    }
    this.#available += bytes;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  /** Resolves once some credit is available; rejects if the stream is closed first. */
  whenAvailable(): Promise<void> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    if (this.#available > 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Ends the credit: current and later waiters are rejected with `reason`. Safe to call twice. */
  close(reason: Error): void {
    if (this.#closedWith) return;
    this.#closedWith = reason;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(reason);
  }
}

/**
 * What the peer may still send us on one stream, and what we owe it. `receive` enforces the
 * window; `consume` is called only once bytes have been handed on to a destination that took
 * them, and returns a WINDOW increment to send (0 while too little is owed to be worth a frame).
 */
export class ReceiveWindow {
  #remaining: number;
  #owed = 0;
  readonly #threshold: number;

  constructor(size: number = INITIAL_WINDOW) {
    this.#remaining = size;
    // A quarter of the window: few WINDOW frames, yet the sender is never starved, because it
    // only stops after sending the whole window, which is more than the threshold.
    this.#threshold = Math.max(1, Math.floor(size / 4));
  }

  /** Accounts for received DATA; throws FLOW_CONTROL_VIOLATION if the peer overran its credit. */
  receive(bytes: number): void {
    if (bytes > this.#remaining) {
      throw new TunnelError(
        'FLOW_CONTROL_VIOLATION',
        `The peer sent ${bytes} bytes with only ${this.#remaining} bytes of credit left.`,
      );
    }
    this.#remaining -= bytes;
  }

  /** Records bytes passed on; returns the increment to grant now, or 0. */
  consume(bytes: number): number {
    this.#owed += bytes;
    if (this.#owed < this.#threshold) return 0;
    const grant = this.#owed;
    this.#owed = 0;
    this.#remaining += grant;
    return grant;
  }
}
