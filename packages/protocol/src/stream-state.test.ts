import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import { FLAG_INFORMATIONAL, FrameType } from './frame.js';
import { acceptInbound, frameTypeName, type InboundState } from './stream-state.js';

function outOfOrder(state: InboundState, type: FrameType, flags = 0): TunnelError {
  try {
    acceptInbound(state, type, 3, flags);
  } catch (error) {
    expect(error).toBeInstanceOf(TunnelError);
    expect((error as TunnelError).code).toBe('FRAME_OUT_OF_ORDER');
    return error as TunnelError;
  }
  throw new Error(`expected ${frameTypeName(type)} to be refused`);
}

const fresh = (): InboundState => ({ headReceived: false, remoteEnded: false });
const afterHead = (): InboundState => ({ headReceived: true, remoteEnded: false });
const afterEnd = (): InboundState => ({ headReceived: true, remoteEnded: true });

describe('acceptInbound', () => {
  it('accepts HEAD, DATA, DATA, END in that order and records the head and the end', () => {
    const state = fresh();
    acceptInbound(state, FrameType.HEAD, 3);
    expect(state).toEqual({ headReceived: true, remoteEnded: false });
    acceptInbound(state, FrameType.DATA, 3);
    acceptInbound(state, FrameType.DATA, 3);
    acceptInbound(state, FrameType.END, 3);
    expect(state).toEqual({ headReceived: true, remoteEnded: true });
  });

  it('refuses DATA before the head, naming the frame and stream, and leaves the state alone', () => {
    const state = fresh();
    expect(outOfOrder(state, FrameType.DATA).message).toBe('DATA on stream 3 arrived before the head.');
    expect(state).toEqual(fresh());
  });

  it('refuses END before the head', () => {
    outOfOrder(fresh(), FrameType.END);
  });

  it('refuses DATA after END', () => {
    expect(outOfOrder(afterEnd(), FrameType.DATA).message).toContain('after END');
  });

  it('refuses a second END', () => {
    outOfOrder(afterEnd(), FrameType.END);
  });

  it('refuses HEAD twice', () => {
    expect(outOfOrder(afterHead(), FrameType.HEAD).message).toContain('after the head');
  });

  it('accepts any number of informational heads before the final one, and none after it', () => {
    const state = fresh();
    acceptInbound(state, FrameType.HEAD, 3, FLAG_INFORMATIONAL);
    acceptInbound(state, FrameType.HEAD, 3, FLAG_INFORMATIONAL);
    expect(state).toEqual(fresh());
    outOfOrder(state, FrameType.DATA);
    acceptInbound(state, FrameType.HEAD, 3);
    expect(state).toEqual(afterHead());
    expect(outOfOrder(state, FrameType.HEAD, FLAG_INFORMATIONAL).message).toContain('after the head');
  });

  it.each([
    ['a fresh', fresh],
    ['a started', afterHead],
    ['an ended', afterEnd],
  ])('refuses OPEN on %s stream, since OPEN only creates streams', (_what, state) => {
    expect(outOfOrder(state(), FrameType.OPEN).message).toContain('reuses an open stream id');
  });

  it.each([
    ['a fresh', fresh],
    ['a started', afterHead],
    ['an ended', afterEnd],
  ])('accepts RESET and WINDOW on %s stream without changing it', (_what, state) => {
    const before = state();
    const current = state();
    acceptInbound(current, FrameType.RESET, 3);
    acceptInbound(current, FrameType.WINDOW, 3);
    expect(current).toEqual(before);
  });
});

describe('frameTypeName', () => {
  it('names every frame type', () => {
    expect(Object.values(FrameType).map(frameTypeName)).toEqual(Object.keys(FrameType));
  });
});
