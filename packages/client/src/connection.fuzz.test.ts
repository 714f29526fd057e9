import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import fc from 'fast-check';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  INITIAL_WINDOW,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  isTunnelError,
  type ErrorCode,
  type Hello,
} from '@tunnel/protocol';
import { AGENT_DEFAULTS, type AgentConfig } from './config.js';
import { RelayConnection } from './connection.js';
import {
  READY,
  agentCase,
  predict,
  refusalFor,
  type AgentCase,
  type Outcome,
  type Reply,
} from './connection.fuzz-model.test-helper.js';
import { build, describeEndings, sendBuilt } from '../../protocol/src/fuzz-wire.test-helper.js';
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
/** The local server's answer to /big: more than one window, so it waits on the relay's WINDOW. */
const BIG_BODY = Buffer.alloc(INITIAL_WINDOW + 40_000, 0x62);
/** Every this many cases, the pool must have given back every socket and request too. */
const POOL_CHECK_EVERY = 100;

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

  it('survives arbitrary frames from the relay: clean errors, no stream or local request left behind', async ({ annotate }) => {
    // Recorded with the test result, so a failing run names the seed that replays it.
    await annotate(`agent fuzz: seed ${SEED}, ${RUNS} runs${PATH ? `, path ${PATH}` : ''}`);
    await fc.assert(fc.asyncProperty(agentCase, runCase), {
      seed: SEED,
      numRuns: RUNS,
      verbose: Number(process.env.FUZZ_VERBOSE ?? 0),
      ...(PATH ? { path: PATH } : {}),
    });
    await annotate(`agent fuzz endings: ${describeEndings(endings)}`);
    expect(escaped).toEqual([]);
    expect(local.open).toBe(0);
    await poolSettled({ active: 0, waiting: 0 });
  }, 120_000);
});
