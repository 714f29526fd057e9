/** A bounded window of recent samples, for percentiles without unbounded memory. */
export class SampleWindow {
  readonly #samples: Float64Array;
  #count = 0;
  #next = 0;

  constructor(size = 2048) {
    this.#samples = new Float64Array(size);
  }

  /** Adds one sample, replacing the oldest when full. */
  add(value: number): void {
    this.#samples[this.#next] = value;
    this.#next = (this.#next + 1) % this.#samples.length;
    this.#count = Math.min(this.#count + 1, this.#samples.length);
  }

  /** The p-th percentile (0-100) of the samples held, or 0 when empty. */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const sorted = Array.from(this.#samples.subarray(0, this.#count)).sort((a, b) => a - b);
    const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[index]!;
  }
}

/** The figures a pool keeps, as read by logs, tests and the benchmark. */
export interface PoolFigures {
  requests: number;
  /** Successful dials to the local service. */
  connectionsOpened: number;
  connectAttempts: number;
  connectFailures: number;
  /** 1 − connectionsOpened / requests: the share of requests served on a socket opened before. */
  reuseRate: number;
  idle: number;
  active: number;
  dialing: number;
  waiting: number;
  retries: number;
  timeouts: number;
  fastFailures: number;
  acquireMsP50: number;
  acquireMsP99: number;
  breakerState: string;
  breakerTransitions: number;
  socketsRetired: Record<string, number>;
}
