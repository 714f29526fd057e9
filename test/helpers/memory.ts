import { readFileSync, writeFileSync } from 'node:fs';
import { onTestFinished } from 'vitest';

export const MiB = 1024 * 1024;

/** Resident memory of one process, from /proc/<pid>/status (Linux only). */
export interface MemoryReading {
  rssBytes: number;
  /** VmHWM: the highest RSS since the process started, or since `resetPeak`. */
  peakBytes: number;
}

/** How much one process grew while a watch ran. */
export interface MemoryGrowth {
  name: string;
  baselineBytes: number;
  /** The highest of every sample and the kernel's own high-water mark at the end. */
  peakBytes: number;
  growthBytes: number;
  samples: number;
}

export function readMemory(pid: number): MemoryReading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(match[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}

/**
 * Sets the kernel's peak RSS of `pid` back to its current RSS (Linux ≥ 4.0, our own children
 * only), so VmHWM afterwards catches spikes between samples. False where that is not allowed.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface MemoryWatch {
  /** Stops sampling (safe to call twice) and reports each process's growth over its baseline. */
  stop(): MemoryGrowth[];
}

/**
 * Takes each process's RSS now as its baseline, then samples it every `intervalMs` until
 * `stop`. The timer is cleared when the test finishes, whatever happens.
 */
export function watchMemory(
  pids: Record<string, number>,
  intervalMs = 100,
  cleanup: (fn: () => void) => void = onTestFinished,
): MemoryWatch {
  const entries = Object.entries(pids).map(([name, pid]) => {
    const baselineBytes = readMemory(pid).rssBytes;
    const peakResettable = resetPeak(pid);
    return { name, pid, baselineBytes, peakResettable, maxBytes: baselineBytes, samples: 1 };
  });
  const sample = (): void => {
    for (const entry of entries) {
      entry.maxBytes = Math.max(entry.maxBytes, readMemory(entry.pid).rssBytes);
      entry.samples += 1;
    }
  };
  const timer = setInterval(sample, intervalMs);
  let report: MemoryGrowth[] | null = null;
  const stop = (): MemoryGrowth[] => {
    if (report) return report;
    clearInterval(timer);
    sample();
    report = entries.map((entry) => {
      const reading = readMemory(entry.pid);
      const peakBytes = entry.peakResettable ? Math.max(entry.maxBytes, reading.peakBytes) : entry.maxBytes;
      return { name: entry.name, baselineBytes: entry.baselineBytes, peakBytes, growthBytes: peakBytes - entry.baselineBytes, samples: entry.samples };
    });
    return report;
  };
  cleanup(() => {
    stop();
  });
  return { stop };
}

/** One line per process, for the test log: baseline, peak and growth in MiB. */
export function describeGrowth(growth: MemoryGrowth[]): string {
  const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
  return growth.map((g) => `${g.name}: baseline ${mib(g.baselineBytes)} MiB, peak ${mib(g.peakBytes)} MiB, growth ${mib(g.growthBytes)} MiB (${g.samples} samples)`).join('; ');
}
