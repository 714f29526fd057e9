import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EndPayload,
  ERROR_CODES,
  FLAG_INFORMATIONAL,
  PROTOCOL_VERSION,
  FLAG_UPGRADE,
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
  build,
  decodeReference,
  encodeFrames,
  parsePayload,
  sendBuilt,
  windowIncrement,
  type Built,
  type FrameSpec,
  type MessageSpec,
  type Mutation,
  type PayloadSpec,
  type WireFrame,
} from '../../protocol/src/fuzz-wire.test-helper.js';
import { startRelay, type Relay } from './relay.js';

/*
 * Property-based fuzzing of the relay's agent side. A fake agent says a valid hello (or, in a
 * few cases, a broken one), may have a public request open a stream to it, then sends an
 * arbitrary sequence of frames (most of them well-formed, then mutated), raw bytes and text.
 * A model of the wire rules predicts what the relay must do; the run checks that it did, that
 * nothing escaped as an uncaught exception, that a well-behaved tunnel kept working, and that
 * the relay forgot the fuzz connection and its streams once it closed.
 *
 * Reproduce a failure with FUZZ_SEED=<seed> FUZZ_PATH=<path> (both printed by fast-check).
 */

const SEED = Number(process.env.FUZZ_SEED ?? 0x7e1a7);
const PATH = process.env.FUZZ_PATH;
const RUNS = Number(process.env.FUZZ_RELAY_RUNS ?? 6_000);
/** Every this many cases, the good tunnel must answer a public request. */
const CHECK_EVERY = 500;
/** A guard, not a sync: every wait in a case is for an event, and this only bounds a hang. */
const CASE_DEADLINE_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// What a case is made of. Payloads are described, not stored, so a counterexample stays short.

type Handshake =
  | { hello: 'valid' }
  | { hello: 'text'; text: string }
  | { hello: 'binary'; bytes: number[] }
  | { hello: 'version'; protocol: number }
  | { hello: 'reserved'; subdomain: string };

type PublicRequest = { kind: 'none' } | { kind: 'get' } | { kind: 'post'; bodyBytes: number } | { kind: 'upgrade' };

interface FuzzCase {
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

const fuzzCase: fc.Arbitrary<FuzzCase> = fc.record({
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

// ---------------------------------------------------------------------------------------------
// The model: what the relay must do with a sequence, as a list of acceptable endings.

type Outcome =
  | { kind: 'open' }
  /** An `error` message with one of these codes, then close 1002 (or 4000 for a refused hello). */
  | { kind: 'violation'; codes: ErrorCode[]; closeCode: number }
  /** A close with this code and no error message (ws's own limits, or the agent's own error). */
  | { kind: 'closed'; closeCode: number };

interface StreamModel {
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
function predict(messages: Built[], stream: StreamModel | null): Outcome[] {
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
function predictHandshake(shake: Handshake): Outcome | null {
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

function firstMessage(shake: Handshake): Built {
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
// Harness: uncaught errors, a fake agent that records everything, and a good agent.

/** Errors that reached the process (uncaught exceptions, unhandled rejections) in this case. */
const escaped: unknown[] = [];
const wakers = new Set<() => void>();
const onEscape = (error: unknown): void => {
  escaped.push(error);
  for (const wake of wakers) wake();
};

/** An escaped error with the top of its stack, so the report names the line that threw. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return (error.stack ?? String(error)).split('\n').slice(0, 4).join(' | ');
}

/** A fuzz agent's connection: records every message, pong and the close, and waits on them. */
class FakeAgent {
  readonly ws: WebSocket;
  readonly controls: Array<{ type?: string; code?: string; name?: string }> = [];
  readonly frames: WireFrame[] = [];
  /** Messages from the relay that break the wire format: the relay is wrong. */
  readonly malformed: string[] = [];
  pongs = 0;
  closeCode: number | null = null;
  readonly #waiters = new Set<() => void>();

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 8 * MAX_MESSAGE_BYTES });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      const decoded = isBinary ? decodeReference(data) : null;
      if (decoded && 'codes' in decoded) this.malformed.push(decoded.codes.join(', '));
      else if (decoded) this.frames.push(...decoded.frames);
      else {
        try {
          this.controls.push(JSON.parse(data.toString('utf8')) as { type?: string });
        } catch {
          this.malformed.push(`text that is not JSON: ${data.toString('utf8').slice(0, 80)}`);
        }
      }
      this.#wake();
    });
    this.ws.on('pong', () => {
      this.pongs += 1;
      this.#wake();
    });
    this.ws.on('close', (code: number) => {
      this.closeCode = code;
      this.#wake();
    });
    this.ws.on('error', () => undefined);
  }

  /** Resolves once `ready()` holds; rejects if an error escaped or the case hangs. */
  until(ready: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (escaped.length > 0) finish(new Error(`an error escaped while waiting for ${what}: ${describeError(escaped[0])}`));
        else if (ready()) finish(null);
      };
      const timer = setTimeout(() => finish(new Error(`no ${what} within ${CASE_DEADLINE_MS} ms`)), CASE_DEADLINE_MS);
      const finish = (error: Error | null): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        wakers.delete(check);
        if (error) reject(error);
        else resolve();
      };
      this.#waiters.add(check);
      wakers.add(check);
      check();
    });
  }

  get isClosed(): boolean {
    return this.closeCode !== null;
  }

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }
}

function matches(outcome: Outcome, agent: FakeAgent, errors: Array<{ code?: string }>): boolean {
  switch (outcome.kind) {
    case 'open':
      return !agent.isClosed && agent.pongs > 0 && errors.length === 0;
    case 'closed':
      return agent.closeCode === outcome.closeCode && errors.length === 0;
    case 'violation':
      return agent.closeCode === outcome.closeCode && errors.length === 1 && outcome.codes.includes(errors[0]!.code as ErrorCode);
  }
}

/** What went wrong for the good agent: messages from the relay it could not read. */
const goodAgentProblems: string[] = [];

/** A tunnel that answers every stream with 200 "ok", as a correct agent would. */
async function startGoodAgent(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/_tunnel`, { perMessageDeflate: false });
  ws.on('error', () => undefined);
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, clientVersion: 'fuzz-good', subdomain: 'good' }));
  const [ready] = (await once(ws, 'message')) as [Buffer];
  expect(JSON.parse(ready.toString())).toMatchObject({ type: 'ready', name: 'good' });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    const decoded = decodeReference(data);
    if ('codes' in decoded) {
      goodAgentProblems.push(decoded.codes.join(', '));
      return;
    }
    for (const frame of decoded.frames) {
      if (frame.type !== FrameType.OPEN) continue;
      ws.send(encodeFrames([
        { type: FrameType.HEAD, flags: 0, streamId: frame.streamId, payload: { json: { status: 200, headers: [['content-length', '2']] } } },
        { type: FrameType.DATA, flags: 0, streamId: frame.streamId, payload: { bytes: [0x6f, 0x6b] } },
        { type: FrameType.END, flags: 0, streamId: frame.streamId, payload: { bytes: [] } },
      ]).bytes);
    }
  });
  return ws;
}

function fetchGood(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { host: `good.localhost:${port}` }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(CASE_DEADLINE_MS, () => req.destroy(new Error('the good tunnel did not answer in time')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Waits, turn by turn of the event loop, until the relay has forgotten the fuzz connection:
 * its tunnel, its streams and its sockets, measured against the figures before the case.
 */
async function relaySettled(relay: Relay, before: ReturnType<Relay['stats']>, name: string): Promise<void> {
  const deadline = Date.now() + CASE_DEADLINE_MS;
  const settled = (): boolean => {
    const stats = relay.stats();
    return !relay.tunnelNames().includes(name) && stats.tunnels <= before.tunnels && stats.streams <= before.streams
      && stats.publicConnections <= before.publicConnections;
  };
  while (!settled()) {
    if (Date.now() > deadline) throw new Error(`the relay kept state after the fuzz connection closed: ${JSON.stringify(relay.stats())}, before ${JSON.stringify(before)}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Opens the public request that gives the fuzz agent stream 1; resolves with the raw socket. */
function openPublicRequest(port: number, name: string, request: PublicRequest): Socket {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  socket.resume();
  const host = `Host: ${name}.localhost:${port}\r\n`;
  if (request.kind === 'get') socket.write(`GET /fuzz HTTP/1.1\r\n${host}\r\n`);
  if (request.kind === 'post') socket.write(`POST /fuzz HTTP/1.1\r\n${host}Content-Length: ${request.bodyBytes}\r\n\r\n${'b'.repeat(request.bodyBytes)}`);
  if (request.kind === 'upgrade') socket.write(`GET /ws HTTP/1.1\r\n${host}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
  return socket;
}

// ---------------------------------------------------------------------------------------------

describe('relay against a fuzzing agent', () => {
  let relay: Relay;
  let good: WebSocket;
  let agentUrl: string;
  let cases = 0;
  /** How the cases ended, logged at the end to show what the run covered. */
  const endings = new Map<string, number>();
  const tally = (ending: string): void => {
    endings.set(ending, (endings.get(ending) ?? 0) + 1);
  };

  beforeAll(async () => {
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    relay = await startRelay({ host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
    agentUrl = `ws://127.0.0.1:${relay.port}/_tunnel`;
    good = await startGoodAgent(relay.port);
  });

  afterAll(async () => {
    good?.terminate();
    await relay?.close(0);
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  });

  async function runCase(fuzz: FuzzCase): Promise<void> {
    // The prediction needs nothing from the relay: all of stream 1's credit is known up front.
    const messages = fuzz.messages.map(build);
    const upgrade = fuzz.request.kind === 'upgrade';
    const bodyBytes = fuzz.request.kind === 'post' ? fuzz.request.bodyBytes : 0;
    const stream: StreamModel | null = fuzz.request.kind === 'none'
      ? null
      : { upgrade, state: 'live', headReceived: false, remoteEnded: false, received: 0, credit: INITIAL_WINDOW - bodyBytes };
    const outcomes = predict(messages, stream);

    escaped.length = 0;
    cases += 1;
    const before = relay.stats();
    const agent = new FakeAgent(agentUrl);
    let publicSocket: Socket | null = null;
    let name = '';
    try {
      await once(agent.ws, 'open');
      sendBuilt(agent.ws, firstMessage(fuzz.handshake));
      const refusal = predictHandshake(fuzz.handshake);
      if (refusal) {
        await agent.until(() => agent.isClosed, 'close after a refused hello');
        tally(`refused ${String(agent.controls[0]?.code)}`);
        if (!matches(refusal, agent, agent.controls)) throw new Error(`hello refusal: expected ${JSON.stringify(refusal)}, got ${JSON.stringify({ close: agent.closeCode, controls: agent.controls })}`);
        return;
      }
      await agent.until(() => agent.controls.length > 0 || agent.isClosed, 'ready');
      const ready = agent.controls.shift();
      if (ready?.type !== 'ready' || !ready.name) throw new Error(`expected ready, got ${JSON.stringify(ready)}`);
      name = ready.name;

      if (fuzz.request.kind !== 'none') {
        publicSocket = openPublicRequest(relay.port, name, fuzz.request);
        const onStream = (type: number): boolean => agent.frames.some((frame) => frame.streamId === 1 && frame.type === type);
        await agent.until(() => onStream(FrameType.OPEN) && (upgrade || onStream(FrameType.END)), 'the public request as OPEN … END');
        const open = agent.frames.find((frame) => frame.type === FrameType.OPEN)!;
        const sent = agent.frames.filter((frame) => frame.type === FrameType.DATA).reduce((sum, frame) => sum + frame.payload.length, 0);
        if (open.flags !== (upgrade ? FLAG_UPGRADE : 0) || sent !== bodyBytes) {
          throw new Error(`the relay opened stream 1 with flags ${open.flags} and ${sent} body bytes; expected ${bodyBytes}`);
        }
      }

      for (const message of messages) sendBuilt(agent.ws, message);
      // The relay handles messages in order and answers a ping only while open: a pong means
      // it took every message above without closing; otherwise the close comes instead.
      agent.ws.ping();
      await agent.until(() => agent.pongs > 0 || agent.isClosed, 'pong or close');
      const errors = agent.controls.filter((control) => control.type === 'error');
      tally(agent.isClosed ? `close ${agent.closeCode}${errors[0] ? ` ${String(errors[0].code)}` : ''}` : 'open');
      if (!outcomes.some((outcome) => matches(outcome, agent, errors))) {
        throw new Error(`expected one of ${JSON.stringify(outcomes)}, got ${JSON.stringify({ close: agent.closeCode, pong: agent.pongs > 0, controls: agent.controls })}`);
      }
    } finally {
      if (fuzz.end === 'public-first') publicSocket?.destroy();
      if (fuzz.end === 'terminate') agent.ws.terminate();
      else if (agent.ws.readyState === WebSocket.OPEN) agent.ws.close(1000);
      await agent.until(() => agent.isClosed, 'the fuzz connection to close').catch(() => agent.ws.terminate());
      publicSocket?.destroy();
    }
    if (escaped.length > 0) throw new Error(`an error escaped: ${describeError(escaped[0])}`, { cause: escaped[0] });
    if (agent.malformed.length > 0) throw new Error(`the relay sent malformed messages: ${agent.malformed.join('; ')}`);
    await relaySettled(relay, before, name);
    if (cases % CHECK_EVERY === 0) await expectGoodTunnel();
  }

  async function expectGoodTunnel(): Promise<void> {
    expect(good.readyState).toBe(WebSocket.OPEN);
    expect(goodAgentProblems).toEqual([]);
    expect(await fetchGood(relay.port)).toEqual({ status: 200, body: 'ok' });
  }

  it('survives arbitrary frames from one agent: clean errors, other tunnels untouched, nothing left behind', async () => {
    console.log(`relay fuzz: seed ${SEED}, ${RUNS} runs${PATH ? `, path ${PATH}` : ''}`);
    await fc.assert(fc.asyncProperty(fuzzCase, runCase), { seed: SEED, numRuns: RUNS, verbose: Number(process.env.FUZZ_VERBOSE ?? 0), ...(PATH ? { path: PATH } : {}) });
    console.log(`relay fuzz endings: ${[...endings].sort((a, b) => b[1] - a[1]).map(([ending, count]) => `${ending} ×${count}`).join(', ')}`);
    await expectGoodTunnel();
    expect(relay.stats()).toMatchObject({ tunnels: 1, streams: 0 });
    expect(relay.tunnelNames()).toEqual(['good']);
    expect(escaped).toEqual([]);
  }, 120_000);
});
