import { describe, expect, it } from 'vitest';
import { SampleWindow } from './stats.js';

function windowOf(values: number[], size?: number): SampleWindow {
  const window = new SampleWindow(size);
  for (const value of values) window.add(value);
  return window;
}

describe('SampleWindow', () => {
  it('reads 0 for every percentile while empty', () => {
    const window = new SampleWindow();
    expect(window.percentile(0)).toBe(0);
    expect(window.percentile(50)).toBe(0);
    expect(window.percentile(100)).toBe(0);
  });

  it('reads the only sample for every percentile', () => {
    const window = windowOf([7.5]);
    expect(window.percentile(0)).toBe(7.5);
    expect(window.percentile(50)).toBe(7.5);
    expect(window.percentile(99)).toBe(7.5);
  });

  it('uses the nearest-rank method: p50 of 1..100 is 50, p99 is 99', () => {
    const window = windowOf(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(window.percentile(0)).toBe(1);
    expect(window.percentile(1)).toBe(1);
    expect(window.percentile(50)).toBe(50);
    expect(window.percentile(99)).toBe(99);
    expect(window.percentile(100)).toBe(100);
  });

  it('sorts samples added in any order', () => {
    const window = windowOf([9, 1, 5, 3, 7]);
    expect(window.percentile(0)).toBe(1);
    expect(window.percentile(50)).toBe(5);
    expect(window.percentile(100)).toBe(9);
  });

  it('rounds a fractional rank up', () => {
    const window = windowOf([10, 20, 30]);
    expect(window.percentile(34)).toBe(20);
    expect(window.percentile(33)).toBe(10);
    expect(window.percentile(67)).toBe(30);
  });

  it('clamps percentiles outside 0-100 to the smallest and largest sample', () => {
    const window = windowOf([2, 4, 6]);
    expect(window.percentile(-10)).toBe(2);
    expect(window.percentile(250)).toBe(6);
  });

  it('keeps only the most recent samples once full', () => {
    const window = windowOf([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 4);
    expect(window.percentile(0)).toBe(7);
    expect(window.percentile(100)).toBe(10);
    expect(window.percentile(50)).toBe(8);
  });

  it('forgets an early outlier after a full window of newer samples', () => {
    const window = windowOf([1_000_000, ...Array.from({ length: 2_048 }, () => 1)]);
    expect(window.percentile(100)).toBe(1);
  });

  it('does not disturb the order of samples it holds when asked for a percentile', () => {
    const window = windowOf([3, 1, 2], 3);
    expect(window.percentile(100)).toBe(3);
    window.add(0);
    // The oldest sample (3) was replaced, not the largest.
    expect(window.percentile(100)).toBe(2);
  });
});
