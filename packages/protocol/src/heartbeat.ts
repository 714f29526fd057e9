/** Timer functions, injectable so tests need not wait for real time. */
export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const systemTimers: Timers = {
  setInterval: (fn, ms) => {
    const handle = setInterval(fn, ms);
    handle.unref();
    return handle;
  },
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export interface Heartbeat {
  /** Records that the peer answered (a pong, or any message). */
  alive(): void;
  /** Stops the timer; safe to call twice. */
  stop(): void;
}

/**
 * Sends a ping every `intervalMs`; if a whole interval passes with no sign of life since the
 * previous ping, calls `onTimeout` once and stops. The peer therefore has between one and two
 * intervals to answer, which tolerates a busy event loop without keeping a dead peer for long.
 */
export function startHeartbeat(
  intervalMs: number,
  sendPing: () => void,
  onTimeout: () => void,
  timers: Timers = systemTimers,
): Heartbeat {
  let answered = true;
  let stopped = false;
  const handle = timers.setInterval(() => {
    if (!answered) {
      stop();
      onTimeout();
      return;
    }
    answered = false;
    sendPing();
  }, intervalMs);
  function stop(): void {
    if (stopped) return;
    stopped = true;
    timers.clearInterval(handle);
  }
  return {
    alive: () => {
      answered = true;
    },
    stop,
  };
}
