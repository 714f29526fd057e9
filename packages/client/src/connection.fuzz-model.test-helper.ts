// Inputs and oracle for the agent fuzz test: arbitraries for a fuzzing relay's case, and a model of the wire rules.
import fc from 'fast-check';
import {
  ERROR_CODES,
  EndPayload,
  FrameType,
  INITIAL_WINDOW,
  MAX_FRAME_PAYLOAD,
  PROTOCOL_VERSION,
  RequestHead,
  ResetReason,
  parseControlMessage,
  type ErrorCode,
} from '@tunnel/protocol';
import {
  decodeReference,
  overflows,
  parsePayload,
  transportClose,
  windowIncrement,
  type Built,
  type FrameSpec,
  type MessageSpec,
  type Mutation,
  type PayloadSpec,
  type WireFrame,
} from '../../protocol/src/fuzz-wire.test-helper.js';

/** The relay's answer to a good hello; the fake relay sends it, and the fuzzer sends it again as a control text. */
export const READY = JSON.stringify({ type: 'ready', name: 'fuzz', url: 'http://fuzz.localhost:7070' });

// ---------------------------------------------------------------------------------------------
// What a case is made of.

export type Reply =
  | { reply: 'ready' }
  | { reply: 'error'; code: string }
  | { reply: 'text'; text: string }
  | { reply: 'binary'; bytes: number[] }
  | { reply: 'close' };

export interface AgentCase {
  reply: Reply;
  messages: MessageSpec[];
  end: 'relay-close' | 'relay-terminate' | 'agent-close';
}

const SAFE_HEADERS = ['accept', 'content-type', 'x-fuzz', 'cache-control', 'cookie'];
const SAFE_VALUE = /^[a-zA-Z0-9 ./;=-]*$/;
const safeValue = fc.stringMatching(/^[a-zA-Z0-9 ./;=-]{0,12}$/);
/** Any byte value, and a few characters beyond Latin-1 (fc's 'binary' unit costs a second to build). */
const fieldChar = fc
  .oneof(fc.integer({ min: 0, max: 0xff }), fc.constantFrom(0x100, 0x2028, 0xfeff, 0x1f600))
  .map((codePoint) => String.fromCodePoint(codePoint));
const headerName = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...SAFE_HEADERS) },
  { weight: 2, arbitrary: fc.constantFrom('content-length', 'transfer-encoding', 'connection', 'upgrade', 'host', 'expect', 'keep-alive', 'te') },
  { weight: 2, arbitrary: fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,10}$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
const headerValue = fc.oneof(
  { weight: 5, arbitrary: safeValue },
  { weight: 2, arbitrary: fc.constantFrom('0', '5', 'chunked', 'close', 'upgrade', '100-continue', 'abc', 'v\u0001', '\u00e9', '\u{1F600}') },
  { weight: 2, arbitrary: fc.string({ maxLength: 6, unit: fieldChar }) },
);
const safeHeaders = fc.array(fc.tuple(fc.constantFrom(...SAFE_HEADERS), safeValue), { maxLength: 3 });
const headers = fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 });
const method = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
  { weight: 1, arbitrary: fc.constantFrom('HEAD', 'CONNECT', 'TRACE', 'get', 'M-SEARCH') },
  { weight: 1, arbitrary: fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,8}$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
const target = fc.oneof(
  { weight: 6, arbitrary: fc.nat(99).map((n) => `/hold/${n}`) },
  { weight: 4, arbitrary: fc.constantFrom('/fast', '/echo', '/big', '/upgrade', '/missing', '*', '/?q=%00') },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
);
const requestHead = fc
  .record({
    method,
    target,
    headers,
    hasBody: fc.boolean(),
    upgrade: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('websocket', 'h2c', ' ') }),
    expectContinue: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.boolean() }),
  })
  .map(({ upgrade, expectContinue, ...head }) => ({
    ...head,
    ...(upgrade === undefined ? {} : { upgrade }),
    ...(expectContinue === undefined ? {} : { expectContinue }),
  }));
/** A request the local server holds until the case ends, and that undici takes as it is. */
const heldRequest = fc
  .record({ method: fc.constantFrom('POST', 'PUT'), target: fc.nat(99).map((n) => `/hold/${n}`), headers: safeHeaders, hasBody: fc.boolean() });
const errorCode = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ERROR_CODES) },
  { weight: 1, arbitrary: fc.constantFrom('NEWER_CODE', 'lower', '') },
);
const smallBytes = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 24 });
const garbage: fc.Arbitrary<PayloadSpec> = fc.oneof(
  smallBytes.map((bytes) => ({ bytes })),
  fc.jsonValue({ maxDepth: 2 }).map((json) => ({ json })),
);

const payloadFor: Record<number, fc.Arbitrary<PayloadSpec>> = {
  [FrameType.OPEN]: fc.oneof(
    { weight: 8, arbitrary: requestHead.map((json) => ({ json })) },
    { weight: 2, arbitrary: garbage },
    { weight: 1, arbitrary: fc.record({ padded: fc.constant({ method: 'GET', target: '/hold/0', headers: [], hasBody: false }), size: fc.constantFrom(MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1) }) },
  ),
  [FrameType.HEAD]: fc.oneof(fc.record({ status: fc.constant(200), headers: safeHeaders }).map((json) => ({ json })), garbage),
  [FrameType.DATA]: fc.oneof(
    { weight: 4, arbitrary: smallBytes.map((bytes) => ({ bytes })) },
    { weight: 1, arbitrary: fc.record({ fill: fc.integer({ min: 0, max: 255 }), size: fc.constantFrom(1, 16 * 1024, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1) }) },
  ),
  [FrameType.END]: fc.oneof(
    { weight: 4, arbitrary: fc.constant({ bytes: [] }) },
    { weight: 1, arbitrary: headers.map((trailers) => ({ json: { trailers } })) },
    { weight: 1, arbitrary: garbage },
  ),
  [FrameType.RESET]: fc.oneof(
    { weight: 4, arbitrary: fc.record({ code: errorCode, message: fc.string({ maxLength: 12 }) }, { requiredKeys: ['code'] }).map((json) => ({ json })) },
    { weight: 1, arbitrary: garbage },
  ),
  [FrameType.WINDOW]: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(0, 1, 4096, 65_536, 0x7fff_ffff - INITIAL_WINDOW, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff).map((u32) => ({ u32 })) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }).map((u32) => ({ u32 })) },
    { weight: 1, arbitrary: smallBytes.map((bytes) => ({ bytes })) },
  ),
};

const streamId = fc.oneof(
  { weight: 10, arbitrary: fc.constant(1) },
  { weight: 4, arbitrary: fc.constant(2) },
  { weight: 2, arbitrary: fc.integer({ min: 3, max: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 0x7fff_ffff, 0xffff_ffff) },
);
const flags = fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) });
const TYPE_WEIGHTS: Array<[number, number]> = [
  [FrameType.OPEN, 5], [FrameType.DATA, 4], [FrameType.END, 3], [FrameType.RESET, 2], [FrameType.WINDOW, 3], [FrameType.HEAD, 1],
];
const frameSpec: fc.Arbitrary<FrameSpec> = fc.oneof(
  ...TYPE_WEIGHTS.map(([type, weight]) => ({ weight, arbitrary: fc.record({ type: fc.constant(type), flags, streamId, payload: payloadFor[type]! }) })),
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom(0, 7, 8, 255), flags, streamId, payload: garbage }) },
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ flip: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ keep: fc.nat() }),
  fc.record({ frame: fc.nat(3), length: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom(MAX_FRAME_PAYLOAD + 1, 0xffff_ffff)) }),
  fc.record({ frame: fc.nat(3), type: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ append: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }) }),
);
/** A request a well-behaved relay would send on stream `id`: OPEN, some body, maybe END. */
function wellFormedRequest(id: number): fc.Arbitrary<MessageSpec> {
  return fc
    .tuple(fc.oneof({ weight: 3, arbitrary: heldRequest }, { weight: 1, arbitrary: requestHead }), fc.array(smallBytes, { maxLength: 2 }), fc.boolean())
    .map(([head, chunks, ends]) => ({
      frames: [
        { type: FrameType.OPEN, flags: 0, streamId: id, payload: { json: head } },
        ...(head.hasBody ? chunks.map((bytes) => ({ type: FrameType.DATA, flags: 0, streamId: id, payload: { bytes } })) : []),
        ...(ends ? [{ type: FrameType.END, flags: 0, streamId: id, payload: { bytes: [] } }] : []),
      ],
    }));
}
const controlText = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
  fc.constantFrom(
    '{"type":"goaway","reason":"r","deadlineMs":0}',
    '{"type":"goaway","reason":"r"}',
    '{"type":"error","code":"INTERNAL","message":"m"}',
    '{"type":"error","code":"NEWER_CODE","message":"m"}',
    '{"type":"error","code":"lower","message":"m"}',
    READY,
    `{"type":"hello","protocol":${PROTOCOL_VERSION},"clientVersion":"x"}`,
    '{"type":"bogus"}',
  ),
);
const messageSpec: fc.Arbitrary<MessageSpec> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ frames: fc.array(frameSpec, { minLength: 1, maxLength: 4 }) }) },
  { weight: 8, arbitrary: fc.record({ frames: fc.array(frameSpec, { minLength: 1, maxLength: 3 }), mutation }) },
  { weight: 3, arbitrary: fc.record({ raw: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }) }) },
  { weight: 4, arbitrary: fc.record({ text: controlText }) },
  { weight: 1, arbitrary: fc.oneof(
    fc.record({ hugeText: fc.constant(64 * 1024 + 1) }),
    fc.record({ badUtf8: fc.constantFrom([0xff], [0xc3, 0x28]) }),
    fc.constant({ oversized: true as const }),
  ) },
);
const reply: fc.Arbitrary<Reply> = fc.oneof(
  { weight: 24, arbitrary: fc.constant({ reply: 'ready' as const }) },
  { weight: 1, arbitrary: fc.oneof(
    fc.record({ reply: fc.constant('error' as const), code: errorCode }),
    fc.record({ reply: fc.constant('text' as const), text: controlText }),
    fc.record({ reply: fc.constant('binary' as const), bytes: smallBytes }),
    fc.constant({ reply: 'close' as const }),
  ) },
);
/** The case the property runs: the reply to hello, then messages from the relay, then who ends it. */
export const agentCase: fc.Arbitrary<AgentCase> = fc.record({
  reply,
  messages: fc.oneof(
    { weight: 1, arbitrary: fc.array(messageSpec, { minLength: 1, maxLength: 5 }) },
    { weight: 2, arbitrary: fc.tuple(wellFormedRequest(1), fc.array(messageSpec, { maxLength: 4 })).map(([first, rest]) => [first, ...rest]) },
    { weight: 1, arbitrary: fc.tuple(wellFormedRequest(1), wellFormedRequest(2), fc.array(messageSpec, { maxLength: 3 })).map(([one, two, rest]) => [one, two, ...rest]) },
  ),
  end: fc.constantFrom('relay-close' as const, 'relay-terminate' as const, 'agent-close' as const),
});

// ---------------------------------------------------------------------------------------------
// The model: what the agent must do with a sequence, as a list of acceptable endings.

export type Outcome =
  | { kind: 'open' }
  /** An `error` message with one of these codes, then close 1002. */
  | { kind: 'violation'; codes: ErrorCode[] }
  /** A close with this code and no error message (ws's own limits). */
  | { kind: 'closed'; closeCode: number };

interface StreamModel {
  /** live: frames are checked; released: dropped; unsure: the local answer may have ended it. */
  state: 'live' | 'released' | 'unsure';
  hasBody: boolean;
  remoteEnded: boolean;
  received: number;
  credit: number;
}

interface ConnectionModel {
  lastStreamId: number;
  streams: Map<number, StreamModel>;
}

const STREAM_CODES: ErrorCode[] = ['FRAME_OUT_OF_ORDER', 'FRAME_INVALID', 'FLOW_CONTROL_VIOLATION'];
const HELD_METHODS = new Set(['GET', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH']);
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Whether the stream surely stays open until the case ends: the local server holds /hold
 * requests, and undici takes this head as it is. Anything else may be answered or refused
 * (undici validates asynchronously) at a moment the model cannot know.
 */
function isHeld(head: RequestHead): boolean {
  return head.target.startsWith('/hold/') && HELD_METHODS.has(head.method) && (!head.hasBody || BODY_METHODS.has(head.method))
    && head.upgrade === undefined && head.expectContinue === undefined && head.headers.every(([name, value]) => SAFE_HEADERS.includes(name) && SAFE_VALUE.test(value));
}

/** What the model says of a sequence: the acceptable endings, and a known bug it would meet. */
interface Prediction {
  outcomes: Outcome[];
}

type Step = { done: Outcome } | { maybe: ErrorCode[] } | null;

function applyFrame(frame: WireFrame, model: ConnectionModel): Step {
  const violation = (code: ErrorCode): Step => ({ done: { kind: 'violation', codes: [code] } });
  if (frame.type === FrameType.OPEN) {
    const head = parsePayload(RequestHead, frame.payload);
    if (!head) return violation('FRAME_INVALID');
    if (frame.streamId <= model.lastStreamId) return violation('FRAME_OUT_OF_ORDER');
    model.lastStreamId = frame.streamId;
    const state = isHeld(head) ? 'live' : 'unsure';
    model.streams.set(frame.streamId, { state, hasBody: head.hasBody, remoteEnded: false, received: 0, credit: INITIAL_WINDOW });
    return null;
  }
  const stream = model.streams.get(frame.streamId);
  if (!stream || stream.state === 'released') return frame.streamId > model.lastStreamId ? violation('STREAM_UNKNOWN') : null;
  if (stream.state === 'unsure') return { maybe: STREAM_CODES };
  switch (frame.type) {
    case FrameType.HEAD:
      return violation('FRAME_OUT_OF_ORDER');
    case FrameType.DATA:
      if (stream.remoteEnded || !stream.hasBody) return violation('FRAME_OUT_OF_ORDER');
      stream.received += frame.payload.length;
      // Credit comes back as undici reads the body, so only a full window is sure.
      return stream.received > INITIAL_WINDOW ? { maybe: ['FLOW_CONTROL_VIOLATION'] } : null;
    case FrameType.END:
      if (stream.remoteEnded) return violation('FRAME_OUT_OF_ORDER');
      stream.remoteEnded = true;
      // An END may carry the request's trailers; anything else in it is malformed.
      if (frame.payload.length > 0 && !parsePayload(EndPayload, frame.payload)) return violation('FRAME_INVALID');
      return null;
    case FrameType.RESET:
      if (!parsePayload(ResetReason, frame.payload)) return violation('FRAME_INVALID');
      stream.state = 'released';
      return null;
    case FrameType.WINDOW: {
      const increment = windowIncrement(frame.payload);
      if (increment === null) return violation('FRAME_INVALID');
      if (overflows(stream.credit, increment)) return violation('FLOW_CONTROL_VIOLATION');
      stream.credit += increment;
      return null;
    }
    default:
      throw new Error(`the reference decoder let type ${frame.type} through`);
  }
}

/** The endings the agent may choose for `messages`, sent right after ready. */
export function predict(messages: Built[]): Prediction {
  const model: ConnectionModel = { lastStreamId: 0, streams: new Map() };
  /** Protocol errors the agent may have closed on, with the message that carried each. */
  const possible: Array<{ index: number; outcome: Outcome }> = [];
  const ending = (index: number, outcome: Outcome): Prediction => {
    // Messages after the agent's own 1002 close are ignored, so nothing after it can open a stream.
    return { outcomes: [...possible.map((maybe) => maybe.outcome), outcome] };
  };
  for (const [index, message] of messages.entries()) {
    const closeCode = transportClose(message);
    if (closeCode !== null) return ending(index, { kind: 'closed', closeCode });
    if ('text' in message) {
      let type: string | null = null;
      try {
        type = parseControlMessage(message.text).type;
      } catch {
        // Invalid: MESSAGE_INVALID below.
      }
      if (type === 'goaway' || type === 'error') continue;
      return ending(index, { kind: 'violation', codes: ['MESSAGE_INVALID'] });
    }
    if (!('binary' in message)) throw new Error('unreachable: every other message closes the transport');
    const decoded = decodeReference(message.binary);
    if ('codes' in decoded) return ending(index, { kind: 'violation', codes: decoded.codes });
    for (const frame of decoded.frames) {
      const step = applyFrame(frame, model);
      if (step && 'done' in step) return ending(index, step.done);
      if (step) possible.push({ index, outcome: { kind: 'violation', codes: step.maybe } });
    }
  }
  return ending(messages.length, { kind: 'open' });
}

/** How RelayConnection.open must end for a reply: null when it resolves. */
export function refusalFor(answer: Reply): ErrorCode | null {
  const asControl = (text: string): ErrorCode | null => {
    try {
      const message = parseControlMessage(text);
      if (message.type === 'ready') return null;
      if (message.type === 'error') return message.code;
    } catch {
      // Invalid: MESSAGE_INVALID below.
    }
    return 'MESSAGE_INVALID';
  };
  switch (answer.reply) {
    case 'ready':
      return null;
    case 'error':
      return asControl(JSON.stringify({ type: 'error', code: answer.code, message: 'refused' }));
    case 'text':
      return asControl(answer.text);
    case 'binary':
      return 'MESSAGE_INVALID';
    case 'close':
      return 'RELAY_UNREACHABLE';
  }
}
