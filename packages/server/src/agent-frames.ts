import {
  FrameType,
  ResetReason,
  ResponseHead,
  TunnelError,
  acceptInbound,
  decodeJsonPayload,
  decodeWindowIncrement,
  type Frame,
  type InboundState,
} from '@tunnel/protocol';

/** What a relay stream does with each kind of frame its agent may send. */
export interface AgentFrameHandlers {
  head(head: ResponseHead): void;
  data(payload: Uint8Array): void;
  /** The agent's body is complete; `payload` may carry trailers. */
  end(payload: Uint8Array): void;
  reset(reason: ResetReason): void;
  window(bytes: number): void;
}

/**
 * Checks that a frame from the agent may arrive now on a stream, decodes its payload, and hands
 * it to the matching handler. Throws TunnelError on a protocol violation.
 */
export function dispatchAgentFrame(frame: Frame, inbound: InboundState, streamId: number, on: AgentFrameHandlers): void {
  acceptInbound(inbound, frame.type, streamId);
  switch (frame.type) {
    case FrameType.HEAD:
      return on.head(decodeJsonPayload(ResponseHead, frame.payload, 'response head'));
    case FrameType.DATA:
      return on.data(frame.payload);
    case FrameType.END:
      return on.end(frame.payload);
    case FrameType.RESET:
      return on.reset(decodeJsonPayload(ResetReason, frame.payload, 'reset reason'));
    case FrameType.WINDOW:
      return on.window(decodeWindowIncrement(frame.payload));
    default:
      throw new TunnelError('FRAME_OUT_OF_ORDER', `Frame type ${frame.type} cannot flow from agent to relay.`);
  }
}
