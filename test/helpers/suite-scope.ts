import { afterAll } from 'vitest';

/**
 * Cleanup for things a file starts once in `beforeAll`. Call at the top level of the file
 * (hooks registered from inside another hook are not run); returns the function to pass as
 * the `cleanup` argument of the start helpers. Cleanups run in reverse order.
 */
export function suiteScope(): (fn: () => Promise<void>) => void {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return (fn) => {
    cleanups.push(fn);
  };
}
