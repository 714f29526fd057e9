import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';

/** Something that can be probed: LocalPool. */
export interface Probeable {
  probe(path: string): Promise<boolean>;
}

/**
 * Probes `path` every `intervalMs`, one probe at a time (a slow service never piles them up),
 * and logs only when the result changes. Returns a function that stops it.
 */
export function startHealthProbe(target: Probeable, path: string, intervalMs: number, log: Logger, clock: Clock = systemClock): () => void {
  let healthy: boolean | null = null;
  let stopped = false;
  let cancel = clock.setTimeout(tick, intervalMs);
  function tick(): void {
    // probe() resolves false on any failure and never rejects; a rejection would be a bug, and
    // is reported as an unhealthy result rather than lost.
    void target.probe(path).catch(() => false).then((ok) => {
      if (stopped) return;
      if (ok !== healthy) {
        if (ok) log.info({ path }, 'local health probe passes');
        else log.warn({ path }, 'local health probe fails');
        healthy = ok;
      }
      cancel = clock.setTimeout(tick, intervalMs);
    });
  }
  return () => {
    stopped = true;
    cancel();
  };
}
