import {
  FLAG_INFORMATIONAL,
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
  /** An interim 1xx answer (100 Continue, 103 Early Hints); the final head comes later. */
  informational(head: ResponseHead): void;
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
  acceptInbound(inbound, frame.type, streamId, frame.flags);
  switch (frame.type) {
    case FrameType.HEAD: {
      const head = decodeJsonPayload(ResponseHead, frame.payload, 'response head');
      const interim = (frame.flags & FLAG_INFORMATIONAL) !== 0;
      // 101 is the final head of an upgrade; any other 1xx is interim, and nothing else may be.
      if (interim !== (head.status < 200 && head.status !== 101)) {
        throw new TunnelError('MESSAGE_INVALID', `Status ${head.status} on stream ${streamId} ${interim ? 'cannot be an informational head' : 'must be flagged informational'}.`);
      }
      return interim ? on.informational(head) : on.head(head);
    }
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
