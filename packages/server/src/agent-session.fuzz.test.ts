import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FLAG_UPGRADE,
  FrameType,
  INITIAL_WINDOW,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  type ErrorCode,
} from '@tunnel/protocol';
import {
  firstMessage,
  fuzzCase,
  predict,
  predictHandshake,
  type FuzzCase,
  type Outcome,
  type PublicRequest,
  type StreamModel,
} from './agent-session.fuzz-model.test-helper.js';
import {
  build,
  decodeReference,
  describeEndings,
  encodeFrames,
  sendBuilt,
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

  it('survives arbitrary frames from one agent: clean errors, other tunnels untouched, nothing left behind', async ({ annotate }) => {
    // Recorded with the test result, so a failing run names the seed that replays it.
    await annotate(`relay fuzz: seed ${SEED}, ${RUNS} runs${PATH ? `, path ${PATH}` : ''}`);
    await fc.assert(fc.asyncProperty(fuzzCase, runCase), { seed: SEED, numRuns: RUNS, verbose: Number(process.env.FUZZ_VERBOSE ?? 0), ...(PATH ? { path: PATH } : {}) });
    await annotate(`relay fuzz endings: ${describeEndings(endings)}`);
    await expectGoodTunnel();
    expect(relay.stats()).toMatchObject({ tunnels: 1, streams: 0 });
    expect(relay.tunnelNames()).toEqual(['good']);
    expect(escaped).toEqual([]);
  }, 120_000);
});
