import { TunnelError } from './errors.js';
import { FLAG_INFORMATIONAL, FrameType } from './frame.js';

/** What has arrived on one stream from the peer, for checking the order of what comes next. */
export interface InboundState {
  /** The head (OPEN for the agent, HEAD for the relay) has arrived. */
  headReceived: boolean;
  /** The peer's END has arrived: no more DATA may follow. */
  remoteEnded: boolean;
}

const NAMES: Record<FrameType, string> = {
  [FrameType.OPEN]: 'OPEN',
  [FrameType.HEAD]: 'HEAD',
  [FrameType.DATA]: 'DATA',
  [FrameType.END]: 'END',
  [FrameType.RESET]: 'RESET',
  [FrameType.WINDOW]: 'WINDOW',
};

/** The name of a frame type, for messages and logs. */
export function frameTypeName(type: FrameType): string {
  return NAMES[type];
}

/**
 * Checks that a frame may arrive now on an existing stream, and records it. OPEN never arrives
 * on an existing stream (it creates one); HEAD arrives once, before any DATA or END, after any
 * number of informational heads; nothing but RESET and WINDOW may follow END. Throws
 * FRAME_OUT_OF_ORDER otherwise.
 */
export function acceptInbound(state: InboundState, type: FrameType, streamId: number, flags = 0): void {
  const fail = (why: string): never => {
    throw new TunnelError('FRAME_OUT_OF_ORDER', `${NAMES[type]} on stream ${streamId} ${why}.`);
  };
  switch (type) {
    case FrameType.OPEN:
      return fail('reuses an open stream id');
    case FrameType.HEAD:
      if (state.headReceived) fail('arrived after the head');
      if ((flags & FLAG_INFORMATIONAL) === 0) state.headReceived = true;
      return;
    case FrameType.DATA:
    case FrameType.END:
      if (!state.headReceived) fail('arrived before the head');
      if (state.remoteEnded) fail('arrived after END');
      if (type === FrameType.END) state.remoteEnded = true;
      return;
    case FrameType.RESET:
    case FrameType.WINDOW:
      return;
  }
}
