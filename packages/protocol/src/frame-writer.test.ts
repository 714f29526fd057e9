import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import { decodeFrames } from './frame-decoder.js';
import { FrameWriter, type MessageSink } from './frame-writer.js';
import { FrameType, MAX_FRAME_PAYLOAD, MAX_MESSAGE_BYTES } from './frame.js';

/** A WebSocket stand-in: records each message and holds its callback until `drain` is called. */
class FakeSink implements MessageSink {
  bufferedAmount = 0;
  readonly messages: Uint8Array[] = [];
  #callbacks: Array<(error?: Error) => void> = [];

  send(message: Uint8Array, done: (error?: Error) => void): void {
    this.messages.push(message);
    this.#callbacks.push(done);
  }

  /** Reports every send so far as written (or failed), as ws does from the socket's callback. */
  drain(error?: Error): void {
    for (const done of this.#callbacks.splice(0)) done(error);
  }
}

function track(promise: Promise<unknown>): { state: 'pending' | 'resolved' | 'rejected'; reason?: unknown } {
  const tracked: { state: 'pending' | 'resolved' | 'rejected'; reason?: unknown } = { state: 'pending' };
  promise.then(
    () => (tracked.state = 'resolved'),
    (reason: unknown) => Object.assign(tracked, { state: 'rejected', reason }),
  );
  return tracked;
}

describe('FrameWriter batching', () => {
  it('sends frames written in one tick as one message that decodes to all of them', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink);
    writer.write(FrameType.OPEN, 1, new Uint8Array([1]), 1);
    writer.write(FrameType.DATA, 1, new Uint8Array([2, 3]));
    writer.write(FrameType.END, 1);
    writer.write(FrameType.WINDOW, 2, new Uint8Array([0, 0, 1, 0]));
    expect(sink.messages).toHaveLength(0);

    await nextMacrotask();
    expect(sink.messages).toHaveLength(1);
    expect(decodeFrames(sink.messages[0]!)).toEqual([
      { type: FrameType.OPEN, flags: 1, streamId: 1, payload: new Uint8Array([1]) },
      { type: FrameType.DATA, flags: 0, streamId: 1, payload: new Uint8Array([2, 3]) },
      { type: FrameType.END, flags: 0, streamId: 1, payload: new Uint8Array(0) },
      { type: FrameType.WINDOW, flags: 0, streamId: 2, payload: new Uint8Array([0, 0, 1, 0]) },
    ]);
  });

  it('sends frames written in different ticks as different messages', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink);
    writer.write(FrameType.END, 1);
    await nextMacrotask();
    writer.write(FrameType.END, 2);
    await nextMacrotask();
    expect(sink.messages.map((message) => decodeFrames(message).map((frame) => frame.streamId))).toEqual([[1], [2]]);
  });

  it('sends at once on flush()', () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink);
    writer.write(FrameType.END, 1);
    writer.flush();
    expect(sink.messages).toHaveLength(1);
  });

  it('cuts a large burst into messages the decoder accepts, keeping frame order', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink);
    for (let i = 1; i <= 10; i++) writer.write(FrameType.DATA, i, new Uint8Array(MAX_FRAME_PAYLOAD).fill(i));
    await nextMacrotask();
    expect(sink.messages.length).toBeGreaterThan(1);
    for (const message of sink.messages) expect(message.length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    const frames = sink.messages.flatMap((message) => decodeFrames(message));
    expect(frames.map((frame) => [frame.streamId, frame.payload.length, frame.payload[0]])).toEqual(
      Array.from({ length: 10 }, (_, i) => [i + 1, MAX_FRAME_PAYLOAD, i + 1]),
    );
  });
});

describe('FrameWriter backpressure', () => {
  it('returns undefined from whenWritable while the socket is below the high-water mark', () => {
    const sink = new FakeSink();
    sink.bufferedAmount = 100;
    expect(new FrameWriter(sink, { highWaterMark: 100 }).whenWritable()).toBeUndefined();
  });

  it('counts frames not yet sent towards congestion', () => {
    const writer = new FrameWriter(new FakeSink(), { highWaterMark: 100 });
    writer.write(FrameType.DATA, 1, new Uint8Array(200));
    expect(writer.isCongested).toBe(true);
  });

  it('resolves whenWritable once a send callback reports the socket drained', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink, { highWaterMark: 100 });
    writer.write(FrameType.DATA, 1, new Uint8Array(50));
    writer.flush();
    sink.bufferedAmount = 500;
    const waiter = track(writer.whenWritable()!);

    await nextMacrotask();
    expect(waiter.state).toBe('pending');

    sink.bufferedAmount = 0;
    sink.drain();
    await nextMacrotask();
    expect(waiter.state).toBe('resolved');
    expect(writer.whenWritable()).toBeUndefined();
  });

  it('wakes a waiter when the socket drains of bytes it did not send itself', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink, { highWaterMark: 100 });
    // Congested by others (control messages, pings): no send of the writer's own is in flight.
    sink.bufferedAmount = 2_000_000;
    const waiting = writer.whenWritable()!;
    const waiter = track(waiting);
    await nextMacrotask();
    expect(waiter.state).toBe('pending');
    sink.bufferedAmount = 0;
    await waiting;
    expect(waiter.state).toBe('resolved');
  });

  it('keeps waiting when a send completes but the socket is still over the mark', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink, { highWaterMark: 100 });
    writer.write(FrameType.END, 1);
    writer.flush();
    writer.write(FrameType.END, 2);
    writer.flush();
    sink.bufferedAmount = 500;
    const waiter = track(writer.whenWritable()!);

    sink.drain();
    await nextMacrotask();
    expect(waiter.state).toBe('pending');

    writer.write(FrameType.END, 3);
    writer.flush();
    sink.bufferedAmount = 0;
    sink.drain();
    await nextMacrotask();
    expect(waiter.state).toBe('resolved');
  });
});

describe('FrameWriter close', () => {
  it('rejects waiters and later calls to whenWritable with the first reason', async () => {
    const sink = new FakeSink();
    sink.bufferedAmount = 500;
    const writer = new FrameWriter(sink, { highWaterMark: 100 });
    const waiter = track(writer.whenWritable()!);
    const reason = new TunnelError('RELAY_SHUTTING_DOWN');
    writer.close(reason);
    writer.close(new TunnelError('INTERNAL'));
    await nextMacrotask();
    expect(waiter).toEqual({ state: 'rejected', reason });
    await expect(writer.whenWritable()).rejects.toBe(reason);
  });

  it('drops frames pending at close and ignores later writes', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink);
    writer.write(FrameType.END, 1);
    writer.close(new TunnelError('AGENT_DISCONNECTED'));
    writer.write(FrameType.END, 2);
    writer.flush();
    await nextMacrotask();
    expect(sink.messages).toEqual([]);
  });

  it('closes itself with AGENT_DISCONNECTED, keeping the cause, when a send fails', async () => {
    const sink = new FakeSink();
    const writer = new FrameWriter(sink, { highWaterMark: 100 });
    writer.write(FrameType.END, 1);
    writer.flush();
    sink.bufferedAmount = 500;
    const waiter = track(writer.whenWritable()!);
    const socketError = new Error('write EPIPE');

    sink.drain(socketError);
    await nextMacrotask();
    expect(waiter.state).toBe('rejected');
    expect(waiter.reason).toBeInstanceOf(TunnelError);
    expect(waiter.reason).toMatchObject({ code: 'AGENT_DISCONNECTED', cause: socketError });
  });
});
