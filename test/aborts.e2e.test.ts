import { once } from 'node:events';
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer } from './helpers/local-server.js';
import { startAgentProcess, type RunningProcess } from './helpers/processes.js';
import {
  agentStatus, openDescriptors, relayStatus, settle, startRelayWithStatus, warningsByMessage, type AgentStatus, type RelayStatus,
} from './helpers/process-status.js';
import { seededRandom } from '../packages/protocol/src/seeded-random.test-helper.js';

const KiB = 1024;
const MiB = 1024 * KiB;

type Process = RunningProcess & { url: URL };

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** A relay and an agent, both logging at info so SIGUSR2 gets a status line from each. */
async function startTunnel(localPort: number, relayArgs: string[] = [], agentArgs: string[] = []): Promise<{ relay: Process; agent: Process }> {
  const relay = await startRelayWithStatus(['--port', '0', ...relayArgs]);
  const agent = await startAgentProcess([
    '--port', String(localPort), '--local-host', '127.0.0.1', '--server', relay.url.href, '--log-level', 'info', ...agentArgs,
  ]);
  return { relay, agent };
}

/**
 * Whether the relay holds nothing but its tunnels: no stream, and no connection besides the
 * agents' own WebSockets (its `publicConnections` counts every socket the server accepted).
 */
function relayIsIdle(status: RelayStatus): boolean {
  return status.relay.streams === 0 && status.relay.publicConnections === status.relay.tunnels;
}

/** Waits until neither side holds a stream, nor the relay a public connection, then checks. */
async function expectNoStreamsLeft(relay: Process, agent: Process): Promise<void> {
  const relayNow = await settle(() => relayStatus(relay), relayIsIdle);
  const agentNow = await settle(() => agentStatus(agent), (status) => status.streams === 0);
  expect(relayNow.relay).toMatchObject({ tunnels: 1, streams: 0, publicConnections: 1 });
  expect(agentNow.streams).toBe(0);
}

/** Sends a request through the tunnel without a body end; the caller writes and ends it. */
function publicRequest(url: URL, method: string, path: string, headers: Record<string, string | number> = {}): ClientRequest {
  const req = request({ host: '127.0.0.1', port: url.port, method, path, headers: { host: url.host, ...headers }, agent: false });
  // Every request here is cut on purpose at some point; its errors are the expected outcome.
  req.on('error', () => undefined);
  return req;
}

/** How a response ended: whether it completed, saw 'end', and how many bytes arrived. */
interface Outcome {
  complete: boolean;
  ended: boolean;
  bytes: number;
}

/** Reads a response until it closes; `onFirstBytes` is called when the body starts arriving. */
function readToClose(res: IncomingMessage, onFirstBytes: () => void = () => undefined): Promise<Outcome> {
  return new Promise((resolve) => {
    let bytes = 0;
    let ended = false;
    res.on('data', (chunk: Buffer) => {
      if (bytes === 0) onFirstBytes();
      bytes += chunk.length;
    });
    res.on('end', () => {
      ended = true;
    });
    res.on('error', () => undefined);
    res.on('close', () => resolve({ complete: res.complete, ended, bytes }));
  });
}

/** Streams `size` bytes of one repeated 64 KiB block, with backpressure; stops if the response goes. */
function sendBytes(res: ServerResponse, size: number): void {
  const block = Buffer.alloc(64 * KiB, 0x5a);
  function* blocks(): Generator<Buffer> {
    for (let sent = 0; sent < size; sent += block.length) yield block.subarray(0, Math.min(block.length, size - sent));
  }
  pipeline(Readable.from(blocks(), { objectMode: false }), res).catch(() => undefined);
}

describe('a public client that leaves mid-stream', () => {
  it('aborts the local request when the public client disconnects mid-upload', async () => {
    const firstBytes = deferred();
    const localSaw = deferred<{ complete: boolean; aborted: boolean; received: number }>();
    const local = await startLocalServer((req, res) => {
      let received = 0;
      let aborted = false;
      req.on('aborted', () => {
        aborted = true;
      });
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        firstBytes.resolve();
      });
      req.on('close', () => localSaw.resolve({ complete: req.complete, aborted, received }));
      req.on('end', () => res.end('whole upload'));
    });
    const { relay, agent } = await startTunnel(local.port);

    const upload = publicRequest(agent.url, 'POST', '/upload', { 'content-length': 16 * MiB });
    upload.write(Buffer.alloc(MiB, 7));
    await firstBytes.promise;
    upload.destroy();

    const seen = await localSaw.promise;
    expect(seen.complete).toBe(false);
    expect(seen.aborted).toBe(true);
    expect(seen.received).toBeLessThan(16 * MiB);
    await expectNoStreamsLeft(relay, agent);
  });

  it('aborts the local response when the public client disconnects mid-download', async () => {
    const localSaw = deferred<{ finished: boolean; socketClosed: boolean }>();
    const local = await startLocalServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': 256 * MiB });
      res.on('close', () => {
        // The socket closing with the response unfinished is what an abort looks like here.
        const socket = req.socket;
        localSaw.resolve({ finished: res.writableFinished, socketClosed: socket.destroyed });
      });
      sendBytes(res, 256 * MiB);
    });
    const { relay, agent } = await startTunnel(local.port);

    const download = publicRequest(agent.url, 'GET', '/download');
    download.end();
    const [res] = (await once(download, 'response')) as [IncomingMessage];
    let received = 0;
    for await (const chunk of res) {
      received += (chunk as Buffer).length;
      if (received >= MiB) break;
    }
    download.destroy();

    const seen = await localSaw.promise;
    expect(seen.finished).toBe(false);
    expect(seen.socketClosed).toBe(true);
    await expectNoStreamsLeft(relay, agent);
  });
});

describe('a local service that resets mid-response', () => {
  it.each([
    { body: 'Content-Length', cut: 'destroy (FIN)' },
    { body: 'chunked', cut: 'destroy (FIN)' },
    { body: 'Content-Length', cut: 'resetAndDestroy (RST)' },
    { body: 'chunked', cut: 'resetAndDestroy (RST)' },
  ])('cuts the public response, never ending it cleanly, when a $body body is cut by $cut', async ({ body, cut }) => {
    const total = 4 * MiB;
    const local = await startLocalServer((req, res) => {
      req.resume();
      res.writeHead(200, body === 'chunked' ? { 'content-type': 'application/octet-stream' } : { 'content-length': total });
      res.write(Buffer.alloc(256 * KiB, 1), () => {
        const socket = req.socket;
        if (cut.startsWith('resetAndDestroy')) socket.resetAndDestroy();
        else socket.destroy();
      });
    });
    const { relay, agent } = await startTunnel(local.port);

    const download = publicRequest(agent.url, 'GET', '/cut');
    download.end();
    const [res] = (await once(download, 'response')) as [IncomingMessage];
    expect(res.statusCode).toBe(200);
    if (body === 'chunked') expect(res.headers['transfer-encoding']).toBe('chunked');
    const outcome = await readToClose(res);

    expect(outcome.complete).toBe(false);
    expect(outcome.ended).toBe(false);
    expect(outcome.bytes).toBeLessThan(total);
    await expectNoStreamsLeft(relay, agent);
  });
});

describe('an agent killed mid-stream', () => {
  it('cuts every open download, then the relay holds no streams or tunnel for it and frees the name', async () => {
    const parts = 5;
    const local = await startLocalServer((req, res) => {
      req.resume();
      // Send 512 KiB of 64 MiB and hold the rest: every response is mid-body when the agent dies.
      res.writeHead(200, { 'content-length': 64 * MiB });
      res.write(Buffer.alloc(512 * KiB, 2));
    });
    // A short grace: the relay keeps a lost agent's name for it to reclaim, then frees it.
    const graceMs = 1000;
    const { relay, agent } = await startTunnel(local.port, ['--resume-grace', String(graceMs)], ['--subdomain', 'killed-agent']);
    expect(agent.url.hostname).toBe('killed-agent.localhost');

    const downloads = await Promise.all(
      Array.from({ length: parts }, async (_, index) => {
        const download = publicRequest(agent.url, 'GET', `/part/${index}`);
        download.end();
        const [res] = (await once(download, 'response')) as [IncomingMessage];
        const bodyStarted = deferred();
        const outcome = readToClose(res, () => bodyStarted.resolve());
        await bodyStarted.promise;
        return { outcome };
      }),
    );
    expect((await relayStatus(relay)).relay).toMatchObject({ tunnels: 1, streams: parts });
    expect((await agentStatus(agent)).streams).toBe(parts);

    agent.kill('SIGKILL');
    const outcomes = await Promise.all(downloads.map((download) => download.outcome));
    for (const outcome of outcomes) {
      expect(outcome).toMatchObject({ complete: false, ended: false });
      expect(outcome.bytes).toBeLessThan(64 * MiB);
    }

    const afterKill = await settle(() => relayStatus(relay), (status) => status.relay.tunnels === 0 && status.relay.streams === 0);
    expect(afterKill.relay).toMatchObject({ tunnels: 0, streams: 0 });
    const released = await settle(() => relayStatus(relay), (status) => status.relay.reconnecting === 0, graceMs + 5_000);
    expect(released.relay).toMatchObject({ tunnels: 0, streams: 0, reconnecting: 0, publicConnections: 0 });

    const local2 = await startLocalServer((req, res) => {
      req.resume();
      res.end('second agent');
    });
    const second = await startAgentProcess(['--port', String(local2.port), '--local-host', '127.0.0.1', '--server', relay.url.href, '--subdomain', 'killed-agent']);
    expect(second.url.hostname).toBe('killed-agent.localhost');
    expect((await fetchVia(second.url)).body.toString()).toBe('second agent');
    expect((await relayStatus(relay)).relay).toMatchObject({ tunnels: 1, streams: 0 });
  });
});

describe('many streams aborted at random points', () => {
  const TOTAL = Number(process.env.ABORT_STORM_TOTAL ?? 10_000);
  const CONCURRENCY = 50;
  const SEED = Number(process.env.ABORT_STORM_SEED ?? 0x7a11);
  // About 30 s on an idle 2-core machine; the bound only stops a storm that cannot finish.
  const MAX_MS = 90_000;
  const KINDS = ['before-head', 'mid-upload', 'mid-download', 'after-complete'] as const;
  type Kind = (typeof KINDS)[number];

  interface Plan {
    kind: Kind;
    /** Body size: declared upload or download length. */
    size: number;
    /** Where to cut: bytes uploaded or downloaded before the abort. */
    cutAt: number;
    /**
     * before-head: abort at once (0), on connect (1) or after `delayMs` (2);
     * after-complete: an upload (0) or a download (1, 2).
     */
    moment: number;
    delayMs: number;
  }

  function planStorm(random: () => number): Plan[] {
    const between = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
    return Array.from({ length: TOTAL }, () => {
      const kind = KINDS[Math.floor(random() * KINDS.length)]!;
      const size = kind === 'mid-download' ? between(16 * KiB, MiB) : kind === 'mid-upload' ? between(KiB, 512 * KiB) : between(0, 8 * KiB);
      const cutAt = kind === 'mid-download' ? between(1, Math.min(size - 1, 128 * KiB)) : kind === 'mid-upload' ? between(1, size - 1) : size;
      return { kind, size, cutAt, moment: between(0, 2), delayMs: between(0, 5) };
    });
  }

  /** Runs one planned stream; resolves with a complaint if it saw something other than the plan. */
  function runOne(url: URL, plan: Plan): Promise<string | null> {
    return new Promise((resolve) => {
      let complaint: string | null = null;
      let req: ClientRequest;
      const guard = setTimeout(() => {
        complaint = `${plan.kind} stuck for 15 s`;
        req.destroy();
      }, 15_000);
      const finish = (): void => {
        clearTimeout(guard);
        resolve(complaint);
      };
      switch (plan.kind) {
        case 'before-head': {
          req = publicRequest(url, 'GET', '/hold');
          req.on('response', (res: IncomingMessage) => {
            complaint = `before-head got a ${res.statusCode}`;
            res.resume();
          });
          req.end();
          if (plan.moment === 0) req.destroy();
          else if (plan.moment === 1) req.once('socket', (socket: Socket) => socket.once('connect', () => req.destroy()));
          else setTimeout(() => req.destroy(), plan.delayMs);
          break;
        }
        case 'mid-upload': {
          req = publicRequest(url, 'POST', '/upload', { 'content-length': plan.size });
          req.on('response', (res: IncomingMessage) => {
            complaint = `mid-upload got a ${res.statusCode} before its body was sent`;
            res.resume();
          });
          req.write(Buffer.alloc(plan.cutAt, 3), () => setTimeout(() => req.destroy(), plan.delayMs));
          break;
        }
        case 'mid-download': {
          req = publicRequest(url, 'GET', `/download?size=${plan.size}`);
          req.on('response', (res: IncomingMessage) => {
            if (res.statusCode !== 200) complaint = `mid-download got a ${res.statusCode}`;
            let received = 0;
            res.on('data', (chunk: Buffer) => {
              received += chunk.length;
              if (received >= plan.cutAt) req.destroy();
            });
            res.on('error', () => undefined);
          });
          req.end();
          break;
        }
        case 'after-complete': {
          // A third uploads, the rest downloads; the socket is destroyed right after the end.
          const isUpload = plan.moment === 0;
          req = isUpload ? publicRequest(url, 'POST', '/upload', { 'content-length': plan.size }) : publicRequest(url, 'GET', `/download?size=${plan.size}`);
          req.on('response', (res: IncomingMessage) => {
            let received = 0;
            res.on('data', (chunk: Buffer) => {
              received += chunk.length;
            });
            res.on('end', () => {
              const expected = isUpload ? String(plan.size).length : plan.size;
              if (res.statusCode !== 200 || received !== expected) complaint = `after-complete got ${res.statusCode} with ${received} of ${expected} bytes`;
              res.socket?.destroy();
            });
            res.on('error', () => {
              complaint = 'after-complete was cut before its end';
            });
          });
          req.end(isUpload ? Buffer.alloc(plan.size, 4) : undefined);
          break;
        }
      }
      req.on('close', finish);
    });
  }

  it('leaves no streams, sockets or timers behind after 10,000 streams aborted at random points', { timeout: 90_000 }, async () => {
    const openLocal = new Set<IncomingMessage>();
    const localRequests: Record<string, number> = {};
    const local = await startLocalServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://local');
      localRequests[url.pathname] = (localRequests[url.pathname] ?? 0) + 1;
      openLocal.add(req);
      req.on('close', () => openLocal.delete(req));
      switch (url.pathname) {
        case '/hold':
          // Never answers: the public client always leaves first.
          req.resume();
          return;
        case '/upload': {
          let received = 0;
          req.on('data', (chunk: Buffer) => {
            received += chunk.length;
          });
          req.on('end', () => res.end(String(received)));
          return;
        }
        default:
          req.resume();
          res.writeHead(200, { 'content-length': Number(url.searchParams.get('size')) });
          sendBytes(res, Number(url.searchParams.get('size')));
      }
    });
    const { relay, agent } = await startTunnel(local.port);

    // Warm both sides up (pool, parsers, lazy modules), so the baseline is the idle steady state.
    for (let i = 0; i < 20; i += 1) expect((await fetchVia(agent.url, { path: '/download?size=100' })).status).toBe(200);
    const relayBefore = await relaySnapshot(relay);
    const agentBefore = await agentSnapshot(agent);

    const plans = planStorm(seededRandom(SEED));
    const complaints: string[] = [];
    const started = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < plans.length && performance.now() - started < MAX_MS) {
        const plan = plans[next]!;
        next += 1;
        const complaint = await runOne(agent.url, plan);
        if (complaint) complaints.push(complaint);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const elapsedMs = performance.now() - started;

    const relayAfter = await settle(() => relaySnapshot(relay), (now) => relayIsIdle(now.status) && relayIsBack(now, relayBefore));
    const agentAfter = await settle(() => agentSnapshot(agent), (now) => now.status.streams === 0 && agentIsBack(now, agentBefore));
    const openLocalAfter = await settle(async () => openLocal.size, (size) => size === 0);
    const ran = plans.slice(0, next);
    console.log(JSON.stringify({
      seed: SEED, streams: next, elapsedMs: Math.round(elapsedMs),
      kinds: Object.fromEntries(KINDS.map((kind) => [kind, ran.filter((plan) => plan.kind === kind).length])),
      localRequests, complaints: complaints.length,
      relay: { before: describeRelay(relayBefore), after: describeRelay(relayAfter), warnings: warningsByMessage(relay.stderr()) },
      agent: { before: describeAgent(agentBefore), after: describeAgent(agentAfter), warnings: warningsByMessage(agent.stderr()) },
    }));

    expect(next, `only ${next} of ${TOTAL} streams ran in ${MAX_MS} ms`).toBe(TOTAL);
    expect(complaints.slice(0, 10)).toEqual([]);
    expect(openLocalAfter).toBe(0);
    expect(relayAfter.status.relay).toMatchObject({ tunnels: 1, streams: 0, publicConnections: 1 });
    expect(agentAfter.status.streams).toBe(0);
    expect(relayIsBack(relayAfter, relayBefore), JSON.stringify({ before: describeRelay(relayBefore), after: describeRelay(relayAfter) })).toBe(true);
    expect(agentIsBack(agentAfter, agentBefore), JSON.stringify({ before: describeAgent(agentBefore), after: describeAgent(agentAfter) })).toBe(true);
  });
});

/** A status line and the process's open file descriptors, read together. */
interface Snapshot<T> {
  status: T;
  descriptors: number;
}

async function relaySnapshot(relay: Process): Promise<Snapshot<RelayStatus>> {
  return { status: await relayStatus(relay), descriptors: openDescriptors(relay.child.pid!) };
}

async function agentSnapshot(agent: Process): Promise<Snapshot<AgentStatus>> {
  return { status: await agentStatus(agent), descriptors: openDescriptors(agent.child.pid!) };
}

function describeRelay({ status, descriptors }: Snapshot<RelayStatus>): Record<string, unknown> {
  return { ...status.relay, resources: status.resources, descriptors };
}

function describeAgent({ status, descriptors }: Snapshot<AgentStatus>): Record<string, unknown> {
  const { idle, active, dialing, waiting } = status.pool;
  return { streams: status.streams, pool: { idle, active, dialing, waiting }, resources: status.resources, descriptors };
}

/** At most two timers more than the baseline: room for a sweep or heartbeat caught mid-flight. */
const TIMER_SLACK = 2;

/**
 * The relay is back to its baseline exactly: no more sockets (TCPSocketWrap counts the agent's
 * WebSocket; the listener is a TCPServerWrap) and no more file descriptors.
 */
function relayIsBack(now: Snapshot<RelayStatus>, before: Snapshot<RelayStatus>): boolean {
  const count = (snapshot: Snapshot<RelayStatus>, kind: string): number => snapshot.status.resources[kind] ?? 0;
  return count(now, 'TCPSocketWrap') <= count(before, 'TCPSocketWrap')
    && count(now, 'Timeout') <= count(before, 'Timeout') + TIMER_SLACK
    && now.descriptors <= before.descriptors;
}

/**
 * The agent is back to its baseline plus whatever its local pool holds beyond the baseline's
 * (idle, active or dialing sockets, as it reports them; idle ones retire after the pool's
 * idle timeout). Descriptors are checked too, since undici unrefs a socket between requests
 * and an unref'd socket is missing from the resources counts.
 */
function agentIsBack(now: Snapshot<AgentStatus>, before: Snapshot<AgentStatus>): boolean {
  const poolSockets = ({ status }: Snapshot<AgentStatus>): number => status.pool.idle + status.pool.active + status.pool.dialing;
  const count = (snapshot: Snapshot<AgentStatus>, kind: string): number => snapshot.status.resources[kind] ?? 0;
  const poolGrowth = Math.max(0, poolSockets(now) - poolSockets(before));
  return count(now, 'TCPSocketWrap') <= count(before, 'TCPSocketWrap') + poolGrowth
    && count(now, 'Timeout') <= count(before, 'Timeout') + TIMER_SLACK
    && now.descriptors <= before.descriptors + poolGrowth;
}
