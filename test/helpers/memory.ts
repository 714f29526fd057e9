import { readFileSync, writeFileSync } from 'node:fs';
import { onTestFinished } from 'vitest';

export const MiB = 1024 * 1024;

/** Resident memory of one process, from /proc/<pid>/status (Linux only). */
export interface MemoryReading {
  rssBytes: number;
  /** VmHWM: the highest RSS since the process started, or since `resetPeak`. */
  peakBytes: number;
}

/** One process's resident memory over the time a watch ran. */
export interface MemoryPeak {
  name: string;
  /** RSS when the watch started. */
  startBytes: number;
  /** The highest of every sample and of the kernel's own high-water mark (VmHWM). */
  peakBytes: number;
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
  /** Stops sampling (safe to call twice) and reports each process's peak. */
  stop(): MemoryPeak[];
}

/**
 * Samples the RSS of each process every `intervalMs` until `stop`, after resetting its VmHWM so
 * that spikes between samples count too. The timer is cleared when the test finishes, whatever
 * happens.
 */
export function watchMemory(
  pids: Record<string, number>,
  intervalMs = 100,
  cleanup: (fn: () => void) => void = onTestFinished,
): MemoryWatch {
  const entries = Object.entries(pids).map(([name, pid]) => {
    const peakResettable = resetPeak(pid);
    const startBytes = readMemory(pid).rssBytes;
    return { name, pid, startBytes, peakResettable, maxBytes: startBytes, samples: 1 };
  });
  const sample = (): void => {
    for (const entry of entries) {
      entry.maxBytes = Math.max(entry.maxBytes, readMemory(entry.pid).rssBytes);
      entry.samples += 1;
    }
  };
  const timer = setInterval(sample, intervalMs);
  let report: MemoryPeak[] | null = null;
  const stop = (): MemoryPeak[] => {
    if (report) return report;
    clearInterval(timer);
    sample();
    report = entries.map((entry) => {
      const kernelPeak = entry.peakResettable ? readMemory(entry.pid).peakBytes : 0;
      return { name: entry.name, startBytes: entry.startBytes, peakBytes: Math.max(entry.maxBytes, kernelPeak), samples: entry.samples };
    });
    return report;
  };
  cleanup(() => {
    stop();
  });
  return { stop };
}

/** How far each process's peak during `during` rose above its peak during `baseline`. */
export function growthOver(baseline: MemoryPeak[], during: MemoryPeak[]): Array<{ name: string; growthBytes: number }> {
  return during.map((peak) => {
    const base = baseline.find((entry) => entry.name === peak.name);
    if (!base) throw new Error(`no baseline for ${peak.name}`);
    return { name: peak.name, growthBytes: peak.peakBytes - base.peakBytes };
  });
}

/** One line for the test log: per process, the warm-up's start and peak, then the transfer's. */
export function describeMemory(baseline: MemoryPeak[], during: MemoryPeak[]): string {
  const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
  return during
    .map((peak) => {
      const base = baseline.find((entry) => entry.name === peak.name);
      const warm = base ? `warm-up RSS ${mib(base.startBytes)} → peak ${mib(base.peakBytes)}; ` : '';
      return `${peak.name}: ${warm}RSS at start ${mib(peak.startBytes)}, peak ${mib(peak.peakBytes)} (${peak.samples} samples)`;
    })
    .join('; ');
}
