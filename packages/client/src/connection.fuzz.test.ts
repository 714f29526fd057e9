import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  EndPayload,
  FrameType,
  INITIAL_WINDOW,
  MAX_FRAME_PAYLOAD,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  RequestHead,
  ResetReason,
  isTunnelError,
  parseControlMessage,
  type ErrorCode,
  type Hello,
} from '@tunnel/protocol';
import { AGENT_DEFAULTS, type AgentConfig } from './config.js';
import { RelayConnection } from './connection.js';
import {
  build,
  decodeReference,
  overflows,
  parsePayload,
  sendBuilt,
  transportClose,
  windowIncrement,
  type Built,
  type FrameSpec,
  type MessageSpec,
  type Mutation,
  type PayloadSpec,
  type WireFrame,
} from '../../protocol/src/fuzz-wire.test-helper.js';
import { DEADLINE_MS, PeerRecorder, describeError, escaped, waitUntil, watchEscapes } from './fuzz-peer.test-helper.js';
import { poolOptionsFor } from './tunnel.js';
import { PoolRegistry, type Upstream } from './upstream.js';

/*
 * Property-based fuzzing of the agent's side of the wire. A fake relay in the test answers the
 * hello (in a few cases wrongly), then sends arbitrary frame sequences to a real RelayConnection
 * whose upstream is a real pool to a real local server: OPENs with random heads, DATA, END,
 * RESET and WINDOW for random ids, mutations and garbage. A model of the wire rules predicts
 * what the agent must do; the run checks that it did, that nothing escaped, and that once the
 * connection is gone no stream is left and no local request is stuck open.
 *
 * Reproduce a failure with FUZZ_SEED=<seed> FUZZ_PATH=<path> (both printed by fast-check).
 */

const SEED = Number(process.env.FUZZ_SEED ?? 0x7e1a8);
const PATH = process.env.FUZZ_PATH;
const RUNS = Number(process.env.FUZZ_AGENT_RUNS ?? 4_000);
const log = pino({ level: 'silent' });
const HELLO: Hello = { type: 'hello', protocol: PROTOCOL_VERSION, clientVersion: 'fuzz' };
const READY = JSON.stringify({ type: 'ready', name: 'fuzz', url: 'http://fuzz.localhost:7070' });
/** The local server's answer to /big: more than one window, so it waits on the relay's WINDOW. */
const BIG_BODY = Buffer.alloc(INITIAL_WINDOW + 40_000, 0x62);
/** Every this many cases, the pool must have given back every socket and request too. */
const POOL_CHECK_EVERY = 100;

// ---------------------------------------------------------------------------------------------
// What a case is made of.

type Reply =
  | { reply: 'ready' }
  | { reply: 'error'; code: string }
  | { reply: 'text'; text: string }
  | { reply: 'binary'; bytes: number[] }
  | { reply: 'close' };

interface AgentCase {
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
const agentCase: fc.Arbitrary<AgentCase> = fc.record({
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

type Outcome =
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
function predict(messages: Built[]): Prediction {
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
function refusalFor(answer: Reply): ErrorCode | null {
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

function sendReply(ws: WebSocket, answer: Reply): void {
  if (answer.reply === 'ready') ws.send(READY);
  if (answer.reply === 'error') ws.send(JSON.stringify({ type: 'error', code: answer.code, message: 'refused' }));
  if (answer.reply === 'text') ws.send(answer.text);
  if (answer.reply === 'binary') ws.send(Uint8Array.from(answer.bytes), { binary: true });
}

function matches(outcome: Outcome, peer: PeerRecorder, errors: Array<{ code?: string }>): boolean {
  switch (outcome.kind) {
    case 'open':
      return !peer.isClosed && peer.pongs > 0 && errors.length === 0;
    case 'closed':
      return peer.closeCode === outcome.closeCode && errors.length === 0;
    case 'violation':
      return peer.closeCode === 1002 && errors.length === 1 && outcome.codes.includes(errors[0]!.code as ErrorCode);
  }
}

// ---------------------------------------------------------------------------------------------
// The local service: holds /hold requests until the agent lets go, answers the rest.

interface LocalService {
  readonly port: number;
  /** Requests (and upgraded sockets) not yet closed. */
  readonly open: number;
  close(): Promise<void>;
}

async function startLocalService(): Promise<LocalService> {
  let open = 0;
  const track = (closable: NodeJS.EventEmitter): void => {
    open += 1;
    closable.once('close', () => {
      open -= 1;
    });
  };
  const server: Server = createServer((req, res) => {
    track(res);
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const path = req.url ?? '';
    if (path.startsWith('/echo')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    req.resume();
    if (path.startsWith('/hold')) return;
    if (path.startsWith('/big')) res.end(BIG_BODY);
    else res.writeHead(path.startsWith('/fast') ? 200 : 404).end('ok');
  });
  server.on('upgrade', (req, socket: Duplex) => {
    track(socket);
    socket.on('error', () => undefined);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade ?? 'websocket'}\r\n\r\n`);
    socket.pipe(socket);
  });
  server.on('clientError', (_error, socket: Duplex) => socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    port,
    get open() {
      return open;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function withDeadline<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------

describe('agent connection against a fuzzing relay', () => {
  let local: LocalService;
  let upstream: Upstream;
  /** The fake relay: a bare WebSocket server this test drives by hand. */
  let fakeRelay: WebSocketServer;
  let relayUrl: string;
  let stopWatching = (): void => undefined;
  /** Pool sockets lent out and requests waiting when the pool last settled. */
  let poolBaseline = { active: 0, waiting: 0 };
  let cases = 0;
  const endings = new Map<string, number>();
  const tally = (ending: string): void => {
    endings.set(ending, (endings.get(ending) ?? 0) + 1);
  };

  beforeAll(async () => {
    stopWatching = watchEscapes();
    local = await startLocalService();
    const config: AgentConfig = { ...AGENT_DEFAULTS, port: local.port, localHost: '127.0.0.1', poolMinIdle: 2, logLevel: 'silent' };
    upstream = new PoolRegistry().acquire(poolOptionsFor(config, log));
    fakeRelay = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 4 * MAX_MESSAGE_BYTES });
    await once(fakeRelay, 'listening');
    relayUrl = `ws://127.0.0.1:${(fakeRelay.address() as { port: number }).port}/_tunnel`;
  });

  afterAll(async () => {
    for (const client of fakeRelay?.clients ?? []) client.terminate();
    await new Promise((resolve) => fakeRelay?.close(resolve));
    await upstream?.close();
    await local?.close();
    stopWatching();
  });

  async function runCase(fuzz: AgentCase): Promise<void> {
    const refusal = refusalFor(fuzz.reply);
    const messages = fuzz.messages.map(build);
    const expected = predict(messages).outcomes;
    escaped.length = 0;
    // Measured against the figures before the case, so a leak fails the case that made it and
    // not every case after it (which would also mislead shrinking).
    const before = { ...poolBaseline, open: local.open };

    const arriving = once(fakeRelay, 'connection') as Promise<[WebSocket]>;
    const opening = RelayConnection.open({ url: relayUrl, hello: HELLO, upstream, log, pingIntervalMs: 3_600_000, handshakeTimeoutMs: DEADLINE_MS });
    const opened = opening.then((connection) => ({ connection }), (error: unknown) => ({ error }));
    const [ws] = await withDeadline(arriving, 'connection from the agent');
    const peer = new PeerRecorder(ws);
    let connection: RelayConnection | null = null;
    try {
      await peer.until(() => peer.controls.length > 0 || peer.isClosed, 'hello');
      expect(peer.controls[0]).toEqual(HELLO);
      peer.controls.shift();
      if (refusal) {
        sendReply(ws, fuzz.reply);
        if (ws.readyState === WebSocket.OPEN) ws.close(4000, 'refused');
        const result = await withDeadline(opened, 'end of RelayConnection.open');
        if (!('error' in result)) throw new Error(`open resolved; expected a refusal with ${refusal}`);
        if (!isTunnelError(result.error) || result.error.code !== refusal) throw new Error(`open failed with ${String(result.error)}; expected ${refusal}`);
        tally(`refused (${fuzz.reply.reply} reply)`);
        return;
      }
      // Ready and the sequence go out together: frames right behind ready must be handled too.
      ws.send(fuzz.reply.reply === 'text' ? fuzz.reply.text : READY);
      for (const message of messages) sendBuilt(ws, message);
      // The agent handles messages in order and answers a ping only while open: a pong means it
      // took every message above without closing; otherwise its close comes instead.
      ws.ping();
      const result = await withDeadline(opened, 'end of RelayConnection.open');
      if ('error' in result) throw new Error(`open failed after ready: ${describeError(result.error)}`);
      connection = result.connection;
      await peer.until(() => peer.pongs > 0 || peer.isClosed, 'pong or close');
      const errors = peer.controls.filter((control) => control.type === 'error');
      tally(peer.isClosed ? `close ${peer.closeCode}${errors[0] ? ` ${String(errors[0].code)}` : ''}` : 'open');
      if (!expected.some((outcome) => matches(outcome, peer, errors))) {
        throw new Error(`expected one of ${JSON.stringify(expected)}, got ${JSON.stringify({ close: peer.closeCode, pong: peer.pongs > 0, controls: peer.controls })}`);
      }
    } finally {
      if (fuzz.end === 'agent-close') connection?.close();
      if (fuzz.end === 'relay-terminate') ws.terminate();
      else if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      if (connection) await withDeadline(connection.ended, 'end of the connection');
      await peer.until(() => peer.isClosed, 'close').catch(() => ws.terminate());
    }
    if (escaped.length > 0) throw new Error(`an error escaped: ${describeError(escaped[0])}`, { cause: escaped[0] });
    if (peer.malformed.length > 0) throw new Error(`the agent sent malformed messages: ${peer.malformed.join('; ')}`);
    if (connection && connection.streamCount !== 0) throw new Error(`${connection.streamCount} streams left after the connection ended`);
    await waitUntil(() => local.open <= before.open, () => `${local.open - before.open} local requests stuck open after the connection ended`);
    cases += 1;
    // The pool's figures sort its latency samples (about a millisecond), so read them now and then.
    if (cases % POOL_CHECK_EVERY === 0) await poolSettled(before);
  }

  /** Waits until the pool has no more sockets lent out or requests waiting than `before`. */
  async function poolSettled(before: { active: number; waiting: number }): Promise<void> {
    let figures = upstream.figures();
    await waitUntil(
      () => {
        figures = upstream.figures();
        return figures.active <= before.active && figures.waiting <= before.waiting;
      },
      () => `the pool kept sockets or requests after the connection ended: ${JSON.stringify(figures)}; before ${JSON.stringify(before)}`,
    );
    poolBaseline = { active: figures.active, waiting: figures.waiting };
  }

  it('survives arbitrary frames from the relay: clean errors, no stream or local request left behind', async () => {
    console.log(`agent fuzz: seed ${SEED}, ${RUNS} runs${PATH ? `, path ${PATH}` : ''}`);
    await fc.assert(fc.asyncProperty(agentCase, runCase), {
      seed: SEED,
      numRuns: RUNS,
      verbose: Number(process.env.FUZZ_VERBOSE ?? 0),
      ...(PATH ? { path: PATH } : {}),
    });
    console.log(`agent fuzz endings: ${[...endings].sort((a, b) => b[1] - a[1]).map(([ending, count]) => `${ending} ×${count}`).join(', ')}`);
    expect(escaped).toEqual([]);
    expect(local.open).toBe(0);
    await poolSettled({ active: 0, waiting: 0 });
  }, 120_000);
});
