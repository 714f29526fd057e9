import type { Clock } from './clock.js';

/** A clock that moves only when the test says so; its timers run as time passes them. */
export class FakeClock implements Clock {
  #nowMs = 0;
  #timers: { atMs: number; fn: () => void }[] = [];

  now(): number {
    return this.#nowMs;
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const timer = { atMs: this.#nowMs + ms, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** Moves time forward, running each timer that falls due, earliest first. */
  advance(ms: number): void {
    const targetMs = this.#nowMs + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.atMs <= targetMs).sort((a, b) => a.atMs - b.atMs)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#nowMs = due.atMs;
      due.fn();
    }
    this.#nowMs = targetMs;
  }
}
