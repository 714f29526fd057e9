export { ERRORS, ERROR_CODES, TunnelError, isTunnelError, isErrorCode, type ErrorCode } from './errors.js';
export {
  FrameType,
  FLAG_UPGRADE,
  FLAG_INFORMATIONAL,
  FRAME_HEADER_BYTES,
  MAX_FRAME_PAYLOAD,
  MAX_MESSAGE_BYTES,
  INITIAL_WINDOW,
  MAX_STREAM_ID,
  encodeFrame,
  encodeFrameHeader,
  encodeWindowIncrement,
  decodeWindowIncrement,
  isFrameType,
  type Frame,
} from './frame.js';
export { decodeFrames } from './frame-decoder.js';
export { FrameWriter, type MessageSink, type FrameWriterOptions } from './frame-writer.js';
export { SendCredit, ReceiveWindow } from './flow.js';
export { BodyWriter } from './body-writer.js';
export { acceptInbound, frameTypeName, type InboundState } from './stream-state.js';
export {
  SUBDOMAIN_PATTERN,
  Subdomain,
  HeaderList,
  RequestHead,
  ResponseHead,
  ResetReason,
  EndPayload,
  Hello,
  Ready,
  ErrorMessage,
  GoAway,
  ControlMessage,
  parseControlMessage,
  encodeControlMessage,
  decodeJsonPayload,
  encodeJsonPayload,
} from './messages.js';
export { PROTOCOL_VERSION, checkProtocolVersion } from './version.js';
export { startHeartbeat, type Heartbeat, type Timers } from './heartbeat.js';
export { endToEndHeaders } from './headers.js';
export { DataSink } from './data-sink.js';
export { bridgeSocket } from './socket-bridge.js';
