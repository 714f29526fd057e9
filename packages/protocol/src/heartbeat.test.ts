import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startHeartbeat, type Timers } from './heartbeat.js';

const INTERVAL_MS = 1_000;

/** Real timer functions, looked up per call so vitest's fake timers stand in for them. */
const timers: Timers = {
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

function start() {
  const sendPing = vi.fn();
  const onTimeout = vi.fn();
  const heartbeat = startHeartbeat(INTERVAL_MS, sendPing, onTimeout, timers);
  return { heartbeat, sendPing, onTimeout };
}

describe('startHeartbeat', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends a ping each interval and never times out while the peer answers', () => {
    const { heartbeat, sendPing, onTimeout } = start();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(INTERVAL_MS);
      heartbeat.alive();
    }
    expect(sendPing).toHaveBeenCalledTimes(10);
    expect(onTimeout).not.toHaveBeenCalled();
    heartbeat.stop();
  });

  it('calls onTimeout once, and stops, after a whole interval passes with no answer to a ping', () => {
    const { sendPing, onTimeout } = start();
    vi.advanceTimersByTime(INTERVAL_MS);
    expect(sendPing).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(INTERVAL_MS - 1);
    expect(onTimeout).not.toHaveBeenCalled();

    vi.advanceTimersByTime(1);
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * INTERVAL_MS);
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(sendPing).toHaveBeenCalledTimes(1);
  });

  it('does not time out when alive() comes late in the interval after a ping', () => {
    const { heartbeat, sendPing, onTimeout } = start();
    vi.advanceTimersByTime(INTERVAL_MS);
    vi.advanceTimersByTime(INTERVAL_MS - 1);
    heartbeat.alive();
    vi.advanceTimersByTime(1);
    expect(onTimeout).not.toHaveBeenCalled();
    expect(sendPing).toHaveBeenCalledTimes(2);
    heartbeat.stop();
  });

  it('stops pinging and never times out after stop(), which is safe to call twice', () => {
    const { heartbeat, sendPing, onTimeout } = start();
    heartbeat.stop();
    heartbeat.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5 * INTERVAL_MS);
    expect(sendPing).not.toHaveBeenCalled();
    expect(onTimeout).not.toHaveBeenCalled();
  });

  it('uses the system timers by default, which vitest can fake', () => {
    const onTimeout = vi.fn();
    startHeartbeat(INTERVAL_MS, () => {}, onTimeout);
    vi.advanceTimersByTime(2 * INTERVAL_MS);
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });
});
