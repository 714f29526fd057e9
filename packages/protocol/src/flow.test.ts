import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import { INITIAL_WINDOW } from './frame.js';
import { ReceiveWindow, SendCredit } from './flow.js';

function tunnelErrorFrom(action: () => unknown): TunnelError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(TunnelError);
    return error as TunnelError;
  }
  throw new Error('expected a TunnelError, but nothing was thrown');
}

/** Records how a promise settles, so a test can check it is still pending after the microtasks ran. */
function track(promise: Promise<unknown>): { state: 'pending' | 'resolved' | 'rejected'; reason?: unknown } {
  const tracked: { state: 'pending' | 'resolved' | 'rejected'; reason?: unknown } = { state: 'pending' };
  promise.then(
    () => (tracked.state = 'resolved'),
    (reason: unknown) => Object.assign(tracked, { state: 'rejected', reason }),
  );
  return tracked;
}

describe('SendCredit', () => {
  it('starts with INITIAL_WINDOW bytes', () => {
    expect(new SendCredit().available).toBe(INITIAL_WINDOW);
  });

  it('takes what is wanted while credit lasts, then caps at what is available', () => {
    const credit = new SendCredit(100);
    expect(credit.take(60)).toBe(60);
    expect(credit.take(60)).toBe(40);
    expect(credit.take(60)).toBe(0);
    expect(credit.available).toBe(0);
  });

  it('resolves whenAvailable at once while credit remains', async () => {
    await expect(new SendCredit(1).whenAvailable()).resolves.toBeUndefined();
  });

  it('keeps waiters pending until a grant, then wakes all of them', async () => {
    const credit = new SendCredit(0);
    const first = track(credit.whenAvailable());
    const second = track(credit.whenAvailable());
    await nextMacrotask();
    expect([first.state, second.state]).toEqual(['pending', 'pending']);

    credit.grant(10);
    await nextMacrotask();
    expect([first.state, second.state]).toEqual(['resolved', 'resolved']);
    expect(credit.available).toBe(10);
  });

  it('rejects pending and later waiters, and take, with the close reason', async () => {
    const credit = new SendCredit(0);
    const waiter = track(credit.whenAvailable());
    const reason = new TunnelError('STREAM_CANCELLED');
    credit.close(reason);
    credit.close(new TunnelError('INTERNAL'));
    await nextMacrotask();
    expect(waiter).toEqual({ state: 'rejected', reason });
    await expect(credit.whenAvailable()).rejects.toBe(reason);
    expect(() => credit.take(1)).toThrow(reason);
  });

  it('throws FLOW_CONTROL_VIOLATION for a grant that overflows 2^31-1, leaving the credit as it was', () => {
    const credit = new SendCredit(0x7fff_ffff - 10);
    credit.grant(10);
    expect(tunnelErrorFrom(() => credit.grant(1)).code).toBe('FLOW_CONTROL_VIOLATION');
    expect(credit.available).toBe(0x7fff_ffff);
  });
});

describe('ReceiveWindow', () => {
  it('accepts DATA up to the window, then throws FLOW_CONTROL_VIOLATION', () => {
    const window = new ReceiveWindow(100);
    window.receive(60);
    window.receive(40);
    expect(tunnelErrorFrom(() => window.receive(1)).code).toBe('FLOW_CONTROL_VIOLATION');
  });

  it('rejects a single DATA larger than the whole window', () => {
    expect(tunnelErrorFrom(() => new ReceiveWindow().receive(INITIAL_WINDOW + 1)).code).toBe('FLOW_CONTROL_VIOLATION');
  });

  it('grants nothing below a quarter of the window, then the whole owed sum', () => {
    const window = new ReceiveWindow(400);
    expect(window.consume(60)).toBe(0);
    expect(window.consume(39)).toBe(0);
    expect(window.consume(1)).toBe(100);
    expect(window.consume(30)).toBe(0);
    expect(window.consume(150)).toBe(180);
  });

  it('reopens the window by exactly what it granted', () => {
    const window = new ReceiveWindow(400);
    window.receive(400);
    expect(window.consume(100)).toBe(100);
    window.receive(100);
    expect(tunnelErrorFrom(() => window.receive(1)).code).toBe('FLOW_CONTROL_VIOLATION');
  });

  it('grants every byte when the window is too small to batch', () => {
    expect(new ReceiveWindow(2).consume(1)).toBe(1);
  });
});
