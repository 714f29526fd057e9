// Inputs and oracle for the relay fuzz test: arbitraries for a fuzz agent's case, and a model of the wire rules.
import fc from 'fast-check';
import {
  EndPayload,
  ERROR_CODES,
  FLAG_INFORMATIONAL,
  PROTOCOL_VERSION,
  FrameType,
  INITIAL_WINDOW,
  MAX_FRAME_PAYLOAD,
  MAX_MESSAGE_BYTES,
  ResetReason,
  ResponseHead,
  parseControlMessage,
  type ErrorCode,
} from '@tunnel/protocol';
import {
  MAX_CREDIT,
  decodeReference,
  parsePayload,
  windowIncrement,
  type Built,
  type FrameSpec,
  type MessageSpec,
  type Mutation,
  type PayloadSpec,
  type WireFrame,
} from '../../protocol/src/fuzz-wire.test-helper.js';

// ---------------------------------------------------------------------------------------------
// What a case is made of. Payloads are described, not stored, so a counterexample stays short.

type Handshake =
  | { hello: 'valid' }
  | { hello: 'text'; text: string }
  | { hello: 'binary'; bytes: number[] }
  | { hello: 'version'; protocol: number }
  | { hello: 'reserved'; subdomain: string };

export type PublicRequest = { kind: 'none' } | { kind: 'get' } | { kind: 'post'; bodyBytes: number } | { kind: 'upgrade' };

export interface FuzzCase {
  handshake: Handshake;
  request: PublicRequest;
  messages: MessageSpec[];
  end: 'close' | 'terminate' | 'public-first';
}

const safeName = fc.constantFrom('content-type', 'x-fuzz', 'cache-control', 'Set-Cookie', 'etag');
const safeValue = fc.stringMatching(/^[a-zA-Z0-9 ./;=-]{0,12}$/);
const headerName = fc.oneof(
  { weight: 4, arbitrary: safeName },
  { weight: 2, arbitrary: fc.constantFrom('content-length', 'transfer-encoding', 'connection', 'trailer', 'upgrade', 'date', 'host') },
  { weight: 2, arbitrary: fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,10}$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
/** Any byte value, and a few characters beyond Latin-1 (fc's 'binary' unit costs a second to build). */
const fieldChar = fc
  .oneof(fc.integer({ min: 0, max: 0xff }), fc.constantFrom(0x100, 0x2028, 0xfeff, 0x1f600))
  .map((codePoint) => String.fromCodePoint(codePoint));
const headerValue = fc.oneof(
  { weight: 5, arbitrary: safeValue },
  { weight: 2, arbitrary: fc.constantFrom('0', '5', 'chunked', 'close', 'abc', '-1', 'v\u0001', '\u00e9', '\u{1F600}', '\t', ' x ') },
  { weight: 2, arbitrary: fc.string({ maxLength: 6, unit: fieldChar }) },
);
const headers = fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 });
const goodHeaders = fc.array(fc.tuple(safeName, safeValue), { maxLength: 3 });
const status = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(200, 201, 204, 304, 404, 500) },
  { weight: 1, arbitrary: fc.constantFrom(100, 101, 103, 199, 599, 99, 600) },
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 1000 }) },
);
const responseHead = fc.record(
  { status, statusMessage: headerValue, headers },
  { requiredKeys: ['status', 'headers'] },
);
const errorCode = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ERROR_CODES) },
  { weight: 1, arbitrary: fc.constantFrom('NEWER_CODE', 'lower', '', 'A'.repeat(70)) },
);
const smallBytes = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 24 });
const garbage: fc.Arbitrary<PayloadSpec> = fc.oneof(
  smallBytes.map((bytes) => ({ bytes })),
  fc.jsonValue({ maxDepth: 2 }).map((json) => ({ json })),
);
const oversizedHead: fc.Arbitrary<PayloadSpec> = fc.constantFrom(MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1, MAX_FRAME_PAYLOAD + 100).map((size) => ({ padded: { status: 200, headers: [] }, size }));
const dataPayload: fc.Arbitrary<PayloadSpec> = fc.oneof(
  { weight: 3, arbitrary: smallBytes.map((bytes) => ({ bytes })) },
  { weight: 1, arbitrary: fc.record({ fill: fc.integer({ min: 0, max: 255 }), size: fc.constantFrom(1, 1000, 16 * 1024, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1) }) },
);

const payloadFor: Record<number, fc.Arbitrary<PayloadSpec>> = {
  [FrameType.OPEN]: fc.oneof(
    fc.record({ method: fc.constantFrom('GET', 'POST'), target: fc.constant('/'), headers: goodHeaders, hasBody: fc.boolean() }).map((json) => ({ json })),
    garbage,
  ),
  [FrameType.HEAD]: fc.oneof(
    { weight: 6, arbitrary: responseHead.map((json) => ({ json })) },
    { weight: 2, arbitrary: garbage },
    { weight: 1, arbitrary: oversizedHead },
  ),
  [FrameType.DATA]: dataPayload,
  [FrameType.END]: fc.oneof(
    { weight: 4, arbitrary: fc.constant({ bytes: [] }) },
    { weight: 2, arbitrary: headers.map((trailers) => ({ json: { trailers } })) },
    { weight: 1, arbitrary: garbage },
  ),
  [FrameType.RESET]: fc.oneof(
    { weight: 4, arbitrary: fc.record({ code: errorCode, message: fc.string({ maxLength: 12 }) }, { requiredKeys: ['code'] }).map((json) => ({ json })) },
    { weight: 1, arbitrary: garbage },
  ),
  [FrameType.WINDOW]: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(0, 1, 4096, 65_536, MAX_CREDIT - INITIAL_WINDOW, MAX_CREDIT, MAX_CREDIT + 1, 0xffff_ffff).map((u32) => ({ u32 })) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }).map((u32) => ({ u32 })) },
    { weight: 1, arbitrary: smallBytes.map((bytes) => ({ bytes })) },
  ),
};

const streamId = fc.oneof(
  { weight: 12, arbitrary: fc.constant(1) },
  { weight: 2, arbitrary: fc.integer({ min: 2, max: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 0x7fff_ffff, 0xffff_ffff) },
);
const flags = fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) });
/** HEAD frames also come flagged informational, so interim answers are fuzzed too. */
const headFlags = fc.oneof({ weight: 3, arbitrary: flags }, { weight: 1, arbitrary: fc.constant(FLAG_INFORMATIONAL) });

const frameSpec: fc.Arbitrary<FrameSpec> = fc.oneof(
  ...[FrameType.HEAD, FrameType.DATA, FrameType.END, FrameType.RESET, FrameType.WINDOW, FrameType.OPEN].map((type) => ({
    weight: type === FrameType.OPEN ? 1 : 4,
    arbitrary: fc.record({ type: fc.constant<number>(type), flags: type === FrameType.HEAD ? headFlags : flags, streamId, payload: payloadFor[type]! }),
  })),
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom(0, 7, 8, 255), flags, streamId, payload: garbage }) },
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ flip: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ keep: fc.nat() }),
  fc.record({ frame: fc.nat(3), length: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom(MAX_FRAME_PAYLOAD + 1, 0xffff_ffff)) }),
  fc.record({ frame: fc.nat(3), type: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ append: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }) }),
);

/** Frames a well-behaved agent would send for stream 1: a head, some body, maybe the end. */
const wellFormedResponse: fc.Arbitrary<MessageSpec> = fc
  .tuple(fc.constantFrom(200, 201, 404, 101), goodHeaders, fc.array(smallBytes, { maxLength: 2 }), fc.boolean())
  .map(([code, list, chunks, ends]) => ({
    frames: [
      { type: FrameType.HEAD, flags: 0, streamId: 1, payload: { json: { status: code, headers: list } } },
      ...chunks.map((bytes) => ({ type: FrameType.DATA, flags: 0, streamId: 1, payload: { bytes } })),
      ...(ends ? [{ type: FrameType.END, flags: 0, streamId: 1, payload: { bytes: [] } }] : []),
    ],
  }));

const controlText = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
  fc.constantFrom(
    `{"type":"hello","protocol":${PROTOCOL_VERSION},"clientVersion":"fuzz"}`,
    '{"type":"ready","name":"x","url":"http://x.localhost/"}',
    '{"type":"goaway","reason":"r","deadlineMs":0}',
    '{"type":"error","code":"INTERNAL","message":"m"}',
    '{"type":"error","code":"NEWER_CODE","message":"m"}',
    '{"type":"error","code":"lower","message":"m"}',
    '{"type":"error","code":"INTERNAL"}',
    '{"type":"bogus"}',
    '{"type":"hello"',
  ),
);

const messageSpec: fc.Arbitrary<MessageSpec> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ frames: fc.array(frameSpec, { minLength: 1, maxLength: 4 }) }) },
  { weight: 10, arbitrary: fc.record({ frames: fc.array(frameSpec, { minLength: 1, maxLength: 3 }), mutation }) },
  { weight: 3, arbitrary: fc.record({ raw: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }) }) },
  { weight: 3, arbitrary: fc.record({ text: controlText }) },
  { weight: 1, arbitrary: fc.oneof(
    fc.record({ hugeText: fc.constant(64 * 1024 + 1) }),
    fc.record({ badUtf8: fc.constantFrom([0xff], [0xc3, 0x28], [0x7b, 0xed, 0xa0, 0x80, 0x7d]) }),
    fc.constant({ oversized: true as const }),
  ) },
);

const handshake: fc.Arbitrary<Handshake> = fc.oneof(
  { weight: 18, arbitrary: fc.constant({ hello: 'valid' as const }) },
  { weight: 1, arbitrary: fc.oneof(
    fc.record({ hello: fc.constant('text' as const), text: controlText }),
    fc.record({ hello: fc.constant('binary' as const), bytes: smallBytes }),
    fc.record({ hello: fc.constant('version' as const), protocol: fc.constantFrom(0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 99) }),
    fc.record({ hello: fc.constant('reserved' as const), subdomain: fc.constantFrom('www', 'admin', 'relay', 'tunnel') }),
  ) },
);

const publicRequest: fc.Arbitrary<PublicRequest> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'get' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('post' as const), bodyBytes: fc.integer({ min: 1, max: 3000 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'upgrade' as const }) },
);

/** The case the property runs: a hello, maybe a public request, then messages from the agent. */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.record({
  handshake,
  request: publicRequest,
  messages: fc.oneof(
    fc.array(messageSpec, { minLength: 1, maxLength: 5 }),
    fc.tuple(wellFormedResponse, fc.array(messageSpec, { maxLength: 4 })).map(([first, rest]) => [first, ...rest]),
  ),
  end: fc.constantFrom('close' as const, 'terminate' as const, 'public-first' as const),
});

// ---------------------------------------------------------------------------------------------
// Turning a case into bytes.

/** The first message the fuzz agent sends for `shake`. */
export function firstMessage(shake: Handshake): Built {
  const hello = { type: 'hello', protocol: PROTOCOL_VERSION, clientVersion: 'fuzz' };
  switch (shake.hello) {
    case 'valid':
      return { text: JSON.stringify(hello) };
    case 'text':
      return { text: shake.text };
    case 'binary':
      return { binary: Uint8Array.from(shake.bytes) };
    case 'version':
      return { text: JSON.stringify({ ...hello, protocol: shake.protocol }) };
    case 'reserved':
      return { text: JSON.stringify({ ...hello, subdomain: shake.subdomain }) };
  }
}

// ---------------------------------------------------------------------------------------------
// The model: what the relay must do with a sequence, as a list of acceptable endings.

export type Outcome =
  | { kind: 'open' }
  /** An `error` message with one of these codes, then close 1002 (or 4000 for a refused hello). */
  | { kind: 'violation'; codes: ErrorCode[]; closeCode: number }
  /** A close with this code and no error message (ws's own limits, or the agent's own error). */
  | { kind: 'closed'; closeCode: number };

export interface StreamModel {
  upgrade: boolean;
  /** live: frames are checked; released: frames are dropped; unsure: either. */
  state: 'live' | 'released' | 'unsure';
  headReceived: boolean;
  remoteEnded: boolean;
  received: number;
  credit: number;
}

const STREAM_CODES: ErrorCode[] = ['FRAME_OUT_OF_ORDER', 'FRAME_INVALID', 'FLOW_CONTROL_VIOLATION'];
/** What Node's writeHead accepts in a header value or status message. */
const NODE_FIELD = /^[\t\x20-\x7e\x80-\xff]*$/;
const NODE_SPECIAL = new Set(['content-length', 'transfer-encoding', 'connection', 'trailer', 'upgrade', 'date', 'host', 'keep-alive']);

/** Whether Node's writeHead takes this head: throws on bad characters, unclear on 1xx and framing headers. */
function nodeTakes(head: ResponseHead): 'yes' | 'no' | 'unsure' {
  const fields = [head.statusMessage ?? '', ...head.headers.map(([, value]) => value)];
  if (!fields.every((field) => NODE_FIELD.test(field))) return 'no';
  if (head.status < 200 || head.headers.some(([name]) => NODE_SPECIAL.has(name.toLowerCase()))) return 'unsure';
  return 'yes';
}

type Step = { done: Outcome } | { maybe: ErrorCode[] } | null;

function applyFrame(frame: WireFrame, lastStreamId: number, streams: Map<number, StreamModel>): Step {
  const violation = (code: ErrorCode): Step => ({ done: { kind: 'violation', codes: [code], closeCode: 1002 } });
  const stream = streams.get(frame.streamId);
  if (!stream || stream.state === 'released') {
    if (frame.streamId > lastStreamId) return violation('STREAM_UNKNOWN');
    return frame.type === FrameType.OPEN ? violation('FRAME_OUT_OF_ORDER') : null;
  }
  if (stream.state === 'unsure') return { maybe: STREAM_CODES };
  switch (frame.type) {
    case FrameType.OPEN:
      return violation('FRAME_OUT_OF_ORDER');
    case FrameType.HEAD: {
      if (stream.headReceived) return violation('FRAME_OUT_OF_ORDER');
      const head = parsePayload(ResponseHead, frame.payload);
      if (!head) return violation('FRAME_INVALID');
      // Interim heads (1xx but 101) carry the informational flag, and only they do.
      const interim = (frame.flags & FLAG_INFORMATIONAL) !== 0;
      if (interim !== (head.status < 200 && head.status !== 101)) return violation('MESSAGE_INVALID');
      if (interim) return null;
      stream.headReceived = true;
      if (stream.upgrade) return null;
      const taken = nodeTakes(head);
      if (taken === 'no') stream.state = 'released';
      if (taken === 'unsure') stream.state = 'unsure';
      return null;
    }
    case FrameType.DATA:
    case FrameType.END:
      if (!stream.headReceived || stream.remoteEnded) return violation('FRAME_OUT_OF_ORDER');
      if (frame.type === FrameType.END) {
        stream.remoteEnded = true;
        if (stream.upgrade) return null;
        const end = frame.payload.length > 0 ? parsePayload(EndPayload, frame.payload) : { trailers: [] };
        if (!end) return violation('FRAME_INVALID');
        stream.state = 'released';
        return null;
      }
      stream.received += frame.payload.length;
      // Credit comes back as the public socket takes the bytes, so only a full window is sure.
      return stream.received > INITIAL_WINDOW ? { maybe: ['FLOW_CONTROL_VIOLATION'] } : null;
    case FrameType.RESET:
      if (!parsePayload(ResetReason, frame.payload)) return violation('FRAME_INVALID');
      stream.state = 'released';
      return null;
    case FrameType.WINDOW: {
      const increment = windowIncrement(frame.payload);
      if (increment === null) return violation('FRAME_INVALID');
      if (stream.credit + increment > MAX_CREDIT) return violation('FLOW_CONTROL_VIOLATION');
      stream.credit += increment;
      return null;
    }
    default:
      throw new Error(`the reference decoder let type ${frame.type} through`);
  }
}

/** The endings the relay may choose for `messages`, sent after hello with `stream` open (or none). */
export function predict(messages: Built[], stream: StreamModel | null): Outcome[] {
  const lastStreamId = stream ? 1 : 0;
  const streams = new Map<number, StreamModel>(stream ? [[1, stream]] : []);
  const possible: Outcome[] = [];
  const maybe = (codes: ErrorCode[]): void => {
    possible.push({ kind: 'violation', codes, closeCode: 1002 });
  };
  for (const message of messages) {
    if ('badText' in message) return [...possible, { kind: 'closed', closeCode: 1007 }];
    if ('binary' in message && message.binary.length > MAX_MESSAGE_BYTES) return [...possible, { kind: 'closed', closeCode: 1009 }];
    if ('text' in message) {
      let type: string | null = null;
      try {
        type = parseControlMessage(message.text).type;
      } catch {
        // Invalid: MESSAGE_INVALID below.
      }
      if (type === 'error') return [...possible, { kind: 'closed', closeCode: 1000 }];
      return [...possible, { kind: 'violation', codes: ['MESSAGE_INVALID'], closeCode: 1002 }];
    }
    const decoded = decodeReference(message.binary);
    if ('codes' in decoded) return [...possible, { kind: 'violation', codes: decoded.codes, closeCode: 1002 }];
    for (const frame of decoded.frames) {
      const step = applyFrame(frame, lastStreamId, streams);
      if (step && 'done' in step) return [...possible, step.done];
      if (step) maybe(step.maybe);
    }
  }
  return [...possible, { kind: 'open' }];
}

/** How the relay must answer a first message that is not a plain valid hello. */
export function predictHandshake(shake: Handshake): Outcome | null {
  const refused = (code: ErrorCode): Outcome => ({ kind: 'violation', codes: [code], closeCode: 4000 });
  switch (shake.hello) {
    case 'valid':
      return null;
    case 'binary':
      return refused('MESSAGE_INVALID');
    case 'version':
      return refused('VERSION_MISMATCH');
    case 'reserved':
      return refused('SUBDOMAIN_RESERVED');
    case 'text': {
      try {
        const message = parseControlMessage(shake.text);
        if (message.type === 'hello') return message.protocol === PROTOCOL_VERSION ? null : refused('VERSION_MISMATCH');
      } catch {
        // Invalid: refused below.
      }
      return refused('MESSAGE_INVALID');
    }
  }
}
