import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

const OPTIONS = { minDelayMs: 250, maxDelayMs: 30_000 };

describe('backoffDelay', () => {
  it('waits between half and all of the minimum delay before the first retry', () => {
    expect(backoffDelay(0, OPTIONS, () => 0)).toBe(125);
    expect(backoffDelay(0, OPTIONS, () => 0.5)).toBe(188);
    expect(backoffDelay(0, OPTIONS, () => 1)).toBe(250);
  });

  it('doubles the ceiling with each attempt', () => {
    const ceilings = [0, 1, 2, 3, 4].map((attempt) => backoffDelay(attempt, OPTIONS, () => 1));
    expect(ceilings).toEqual([250, 500, 1_000, 2_000, 4_000]);
  });

  it('never waits longer than maxDelayMs, nor less than half of it once capped', () => {
    expect(backoffDelay(7, OPTIONS, () => 1)).toBe(30_000);
    expect(backoffDelay(20, OPTIONS, () => 1)).toBe(30_000);
    expect(backoffDelay(20, OPTIONS, () => 0)).toBe(15_000);
  });

  it('stays finite for very large attempt numbers', () => {
    expect(backoffDelay(10_000, OPTIONS, () => 1)).toBe(30_000);
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, OPTIONS, () => 1)).toBe(30_000);
    expect(backoffDelay(1_000, { minDelayMs: 1, maxDelayMs: Number.POSITIVE_INFINITY }, () => 1)).toBe(2 ** 30);
  });

  it('returns whole milliseconds', () => {
    for (const random of [0.1, 0.33, 0.77, 0.999]) {
      expect(Number.isInteger(backoffDelay(3, { minDelayMs: 333, maxDelayMs: 100_000 }, () => random))).toBe(true);
    }
  });

  it('spreads delays over the upper half of the ceiling with the default random', () => {
    const delays = Array.from({ length: 200 }, () => backoffDelay(2, OPTIONS));
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(500);
      expect(delay).toBeLessThanOrEqual(1_000);
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
  });
});
