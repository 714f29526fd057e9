import { finished } from 'node:stream/promises';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BodyWriter } from './body-writer.js';
import { TunnelError } from './errors.js';
import { SendCredit } from './flow.js';
import { decodeFrames } from './frame-decoder.js';
import { FrameWriter, type MessageSink } from './frame-writer.js';
import { FrameType, INITIAL_WINDOW, MAX_FRAME_PAYLOAD, type Frame } from './frame.js';

const STREAM_ID = 7;

/** A WebSocket stand-in: records each message and holds its callback until `drain` is called. */
class FakeSink implements MessageSink {
  bufferedAmount = 0;
  readonly messages: Uint8Array[] = [];
  #callbacks: Array<(error?: Error) => void> = [];

  send(message: Uint8Array, done: (error?: Error) => void): void {
    this.messages.push(message);
    this.#callbacks.push(done);
  }

  drain(): void {
    for (const done of this.#callbacks.splice(0)) done();
  }

  get frames(): Frame[] {
    return this.messages.flatMap((message) => decodeFrames(message));
  }
}

/** The writer's default high-water mark (1 MiB) is far above what these bodies queue. */
function setup(initialCredit = INITIAL_WINDOW, highWaterMark?: number) {
  const sink = new FakeSink();
  const frames = new FrameWriter(sink, { highWaterMark });
  const credit = new SendCredit(initialCredit);
  const body = new BodyWriter(STREAM_ID, credit, frames);
  return { sink, frames, credit, body };
}

const dataFrames = (frames: Frame[]): Frame[] => frames.filter((frame) => frame.type === FrameType.DATA);
const dataBytes = (frames: Frame[]): number => dataFrames(frames).reduce((sum, frame) => sum + frame.payload.length, 0);

describe('BodyWriter', () => {
  it('sends exactly the credit it has, in frames of at most MAX_FRAME_PAYLOAD, then stalls until a grant', async () => {
    const { sink, credit, body } = setup();
    const source = Uint8Array.from({ length: 300 * 1024 }, (_, i) => i % 251);
    body.write(source);
    await nextMacrotask();

    expect(dataBytes(sink.frames)).toBe(INITIAL_WINDOW);
    for (const frame of sink.frames) {
      expect(frame).toMatchObject({ type: FrameType.DATA, streamId: STREAM_ID });
      expect(frame.payload.length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD);
    }
    expect(credit.available).toBe(0);
    await nextMacrotask();
    expect(dataBytes(sink.frames)).toBe(INITIAL_WINDOW);

    credit.grant(64 * 1024);
    await nextMacrotask();
    expect(dataBytes(sink.frames)).toBe(source.length);
    expect(body.bytesSent).toBe(source.length);
    expect(Buffer.concat(dataFrames(sink.frames).map((frame) => frame.payload)).equals(source)).toBe(true);
    expect(credit.available).toBe(INITIAL_WINDOW + 64 * 1024 - source.length);
  });

  it('sends END after the last DATA when the body ends', async () => {
    const { sink, body } = setup();
    body.write(new Uint8Array(70_000));
    body.end(new Uint8Array(10));
    await finished(body);
    await nextMacrotask();

    const types = sink.frames.map((frame) => frame.type);
    expect(types).toEqual([FrameType.DATA, FrameType.DATA, FrameType.DATA, FrameType.END]);
    expect(sink.frames.at(-1)).toMatchObject({ streamId: STREAM_ID, payload: new Uint8Array(0) });
    expect(dataBytes(sink.frames)).toBe(70_010);
  });

  it('sends only END for an empty body', async () => {
    const { sink, body } = setup();
    body.end();
    await finished(body);
    await nextMacrotask();
    expect(sink.frames.map((frame) => frame.type)).toEqual([FrameType.END]);
  });

  it('holds END back until the stalled DATA before it has been sent', async () => {
    const { sink, credit, body } = setup(10);
    body.end(new Uint8Array(25));
    await nextMacrotask();
    expect(sink.frames.map((frame) => frame.type)).toEqual([FrameType.DATA]);

    credit.grant(15);
    await finished(body);
    await nextMacrotask();
    expect(sink.frames.map((frame) => [frame.type, frame.payload.length])).toEqual([
      [FrameType.DATA, 10],
      [FrameType.DATA, 15],
      [FrameType.END, 0],
    ]);
  });

  it('waits while the connection is congested, then resumes once it drains', async () => {
    const { sink, frames, body } = setup(INITIAL_WINDOW, 1024);
    frames.write(FrameType.HEAD, STREAM_ID);
    frames.flush();
    sink.bufferedAmount = 4096;

    body.write(new Uint8Array(100));
    await nextMacrotask();
    expect(dataBytes(sink.frames)).toBe(0);

    sink.bufferedAmount = 0;
    sink.drain();
    await nextMacrotask();
    expect(dataBytes(sink.frames)).toBe(100);
  });

  it('closes its credit when destroyed, so a stalled write stops waiting', async () => {
    const { credit, body } = setup(0);
    body.write(new Uint8Array(10));
    body.destroy();
    await expect(credit.whenAvailable()).rejects.toMatchObject({ code: 'STREAM_CANCELLED' });
    await expect(credit.whenAvailable()).rejects.toBeInstanceOf(TunnelError);
  });
});
