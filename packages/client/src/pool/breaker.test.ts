import { describe, expect, it } from 'vitest';
import { Breaker, type BreakerOptions, type BreakerState } from './breaker.js';
import { FakeClock } from './fake-clock.test-helper.js';


const COOLDOWN_MS = 1_000;
const MAX_COOLDOWN_MS = 5_000;

function createBreaker(overrides: Partial<BreakerOptions> = {}) {
  const clock = new FakeClock();
  const transitions: [BreakerState, BreakerState][] = [];
  const reasons: string[] = [];
  const breaker = new Breaker({
    failureThreshold: 3,
    cooldownMs: COOLDOWN_MS,
    maxCooldownMs: MAX_COOLDOWN_MS,
    // 0.5 puts the jitter factor at exactly 1, so the cooldown doubles.
    random: () => 0.5,
    onTransition: (from, to, reason) => {
      transitions.push([from, to]);
      reasons.push(reason);
    },
    ...overrides,
  }, clock);
  return { breaker, clock, transitions, reasons };
}

function fail(breaker: Breaker, times: number): void {
  for (let i = 0; i < times; i++) breaker.recordFailure('connect failed (ECONNREFUSED)');
}

describe('Breaker', () => {
  it('starts closed and admits every request as a non-trial', () => {
    const { breaker, transitions } = createBreaker();
    expect(breaker.state).toBe('closed');
    for (let i = 0; i < 5; i++) expect(breaker.admit()).toEqual({ allowed: true, trial: false });
    expect(breaker.transitions).toBe(0);
    expect(transitions).toEqual([]);
  });

  it('stays closed below the failure threshold', () => {
    const { breaker } = createBreaker();
    fail(breaker, 2);
    expect(breaker.state).toBe('closed');
    expect(breaker.admit().allowed).toBe(true);
  });

  it('counts only consecutive failures: a success in between resets the count', () => {
    const { breaker } = createBreaker();
    fail(breaker, 2);
    breaker.recordSuccess();
    fail(breaker, 2);
    expect(breaker.state).toBe('closed');
    fail(breaker, 1);
    expect(breaker.state).toBe('open');
  });

  it('opens at the threshold and fails fast, saying how long until the next trial', () => {
    const { breaker, clock, reasons } = createBreaker();
    fail(breaker, 3);
    expect(breaker.state).toBe('open');
    expect(reasons[0]).toContain('3 consecutive failures');
    expect(reasons[0]).toContain('ECONNREFUSED');
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: COOLDOWN_MS });
    clock.advance(400);
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: 600 });
  });

  it('ignores failures that arrive while open, so they do not extend the cooldown', () => {
    const { breaker, clock } = createBreaker();
    fail(breaker, 3);
    clock.advance(500);
    fail(breaker, 10);
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: 500 });
    expect(breaker.cooldownMs).toBe(COOLDOWN_MS);
  });

  it('stays open until the cooldown has fully passed, then reads as half-open', () => {
    const { breaker, clock } = createBreaker();
    fail(breaker, 3);
    clock.advance(COOLDOWN_MS - 1);
    expect(breaker.state).toBe('open');
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: 1 });
    clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });

  it('lets exactly one trial through when half-open and refuses the rest with no wait', () => {
    const { breaker, clock } = createBreaker();
    fail(breaker, 3);
    clock.advance(COOLDOWN_MS);
    expect(breaker.admit()).toEqual({ allowed: true, trial: true });
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: 0 });
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: 0 });
    expect(breaker.state).toBe('half-open');
  });

  it('closes when the trial succeeds and resets the cooldown to the first one', () => {
    const { breaker, clock } = createBreaker();
    fail(breaker, 3);
    clock.advance(COOLDOWN_MS);
    breaker.admit();
    breaker.recordFailure('connect failed (ECONNREFUSED)');
    expect(breaker.cooldownMs).toBe(2 * COOLDOWN_MS);
    clock.advance(2 * COOLDOWN_MS);
    expect(breaker.admit()).toEqual({ allowed: true, trial: true });
    breaker.recordSuccess();
    expect(breaker.state).toBe('closed');
    expect(breaker.cooldownMs).toBe(COOLDOWN_MS);
    expect(breaker.admit()).toEqual({ allowed: true, trial: false });
    // Closed again with a fresh count: it takes a whole threshold of failures to reopen.
    fail(breaker, 2);
    expect(breaker.state).toBe('closed');
    fail(breaker, 1);
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: COOLDOWN_MS });
  });

  it('reopens when the trial fails, with a doubled cooldown', () => {
    const { breaker, clock, reasons } = createBreaker();
    fail(breaker, 3);
    clock.advance(COOLDOWN_MS);
    breaker.admit();
    breaker.recordFailure('the local service timed out');
    expect(breaker.state).toBe('open');
    expect(reasons.at(-1)).toBe('trial failed: the local service timed out');
    expect(breaker.admit()).toEqual({ allowed: false, retryInMs: 2 * COOLDOWN_MS });
    clock.advance(2 * COOLDOWN_MS - 1);
    expect(breaker.state).toBe('open');
    clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });

  it('grows the cooldown on each failed trial but never past maxCooldownMs', () => {
    const { breaker, clock } = createBreaker();
    fail(breaker, 3);
    const cooldowns: number[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(breaker.cooldownMs);
      expect(breaker.admit()).toEqual({ allowed: true, trial: true });
      breaker.recordFailure('connect failed (ECONNREFUSED)');
      cooldowns.push(breaker.cooldownMs);
    }
    expect(cooldowns).toEqual([2_000, 4_000, MAX_COOLDOWN_MS, MAX_COOLDOWN_MS, MAX_COOLDOWN_MS]);
  });

  it('jitters the growth between 1.8 and 2.2 times, driven by the injected random', () => {
    const growthWith = (random: number): number => {
      const { breaker, clock } = createBreaker({ random: () => random, maxCooldownMs: 1_000_000 });
      fail(breaker, 3);
      clock.advance(COOLDOWN_MS);
      breaker.admit();
      breaker.recordFailure('connect failed');
      return breaker.cooldownMs;
    };
    expect(growthWith(0)).toBe(1_800);
    expect(growthWith(0.25)).toBe(1_900);
    expect(growthWith(0.5)).toBe(2_000);
    expect(growthWith(0.999_999)).toBe(2_200);
  });

  it('reports each transition once, with its reason, however often the state is read', () => {
    const { breaker, clock, transitions, reasons } = createBreaker();
    fail(breaker, 3);
    fail(breaker, 3);
    clock.advance(COOLDOWN_MS);
    for (let i = 0; i < 3; i++) expect(breaker.state).toBe('half-open');
    breaker.admit();
    breaker.admit();
    breaker.recordFailure('connect failed');
    clock.advance(2 * COOLDOWN_MS);
    breaker.admit();
    breaker.recordSuccess();
    breaker.recordSuccess();
    expect(breaker.state).toBe('closed');
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
    expect(reasons[1]).toBe('cooldown of 1000 ms passed');
    expect(reasons[3]).toBe('cooldown of 2000 ms passed');
    expect(reasons[4]).toBe('the local service answered again');
    expect(breaker.transitions).toBe(5);
  });

  it('closes from open when a request admitted earlier succeeds, since the service answered', () => {
    const { breaker, transitions } = createBreaker();
    fail(breaker, 3);
    breaker.recordSuccess();
    expect(breaker.state).toBe('closed');
    expect(transitions).toEqual([['closed', 'open'], ['open', 'closed']]);
    expect(breaker.admit()).toEqual({ allowed: true, trial: false });
  });
});
