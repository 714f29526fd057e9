import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures (connect errors, timeouts) that open the circuit. */
  failureThreshold: number;
  /** First cooldown before a trial; it doubles, with jitter, while trials keep failing. */
  cooldownMs: number;
  /** Longest cooldown. */
  maxCooldownMs: number;
  /** Called once per transition, with the reason, e.g. to log it. */
  onTransition?: (from: BreakerState, to: BreakerState, reason: string) => void;
  random?: () => number;
}

/** What the breaker says about one request. */
export type Admission = { allowed: true; trial: boolean } | { allowed: false; retryInMs: number };

/**
 * A circuit breaker for one local target. Closed: everything passes and failures are counted.
 * Open: nothing passes, so a dead service costs no connect attempts, until the cooldown ends.
 * Half-open: one trial passes; its success closes the circuit, its failure reopens it with a
 * longer cooldown. Pure state machine: time comes from the injected clock.
 */
export class Breaker {
  readonly #options: BreakerOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #cooldownMs: number;
  #trialInFlight = false;
  #transitions = 0;

  constructor(options: BreakerOptions, clock: Clock = systemClock) {
    this.#options = options;
    this.#clock = clock;
    this.#random = options.random ?? Math.random;
    this.#cooldownMs = options.cooldownMs;
  }

  /** The state now (an open circuit whose cooldown has passed reads as half-open). */
  get state(): BreakerState {
    this.#advance();
    return this.#state;
  }

  /** How many times the state has changed. */
  get transitions(): number {
    return this.#transitions;
  }

  /** The cooldown that applies to the current or next opening. */
  get cooldownMs(): number {
    return this.#cooldownMs;
  }

  /** Asks whether a request may go to the local service now. */
  admit(): Admission {
    this.#advance();
    if (this.#state === 'closed') return { allowed: true, trial: false };
    if (this.#state === 'half-open' && !this.#trialInFlight) {
      this.#trialInFlight = true;
      return { allowed: true, trial: true };
    }
    const retryInMs = this.#state === 'open' ? Math.max(0, this.#openedAt + this.#cooldownMs - this.#clock.now()) : 0;
    return { allowed: false, retryInMs };
  }

  /** Records a success: the service answered. */
  recordSuccess(): void {
    this.#failures = 0;
    if (this.#state === 'closed') return;
    this.#trialInFlight = false;
    this.#cooldownMs = this.#options.cooldownMs;
    this.#move('closed', 'the local service answered again');
  }

  /** Records a failure to connect or a timeout; `reason` says which, for the log. */
  recordFailure(reason: string): void {
    this.#advance();
    if (this.#state === 'half-open') {
      this.#trialInFlight = false;
      // Grow the cooldown while trials keep failing: doubling, with up to 20% jitter, capped.
      const grown = this.#cooldownMs * 2 * (0.9 + this.#random() * 0.2);
      this.#cooldownMs = Math.min(this.#options.maxCooldownMs, Math.round(grown));
      this.#open(`trial failed: ${reason}`);
      return;
    }
    if (this.#state === 'open') return;
    this.#failures += 1;
    if (this.#failures >= this.#options.failureThreshold) {
      this.#open(`${this.#failures} consecutive failures, last: ${reason}`);
    }
  }

  #open(reason: string): void {
    this.#openedAt = this.#clock.now();
    this.#move('open', reason);
  }

  #advance(): void {
    if (this.#state === 'open' && this.#clock.now() - this.#openedAt >= this.#cooldownMs) {
      this.#move('half-open', `cooldown of ${this.#cooldownMs} ms passed`);
    }
  }

  #move(to: BreakerState, reason: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#transitions += 1;
    this.#options.onTransition?.(from, to, reason);
  }
}
