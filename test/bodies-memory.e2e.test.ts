import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PATTERN_CHUNK_BYTES, digestStream, patternChunks, waitForDrain, writeChunks, type BodyDigest } from './helpers/body-stream.js';
import { startLocalServer } from './helpers/local-server.js';
import { MiB, describeMemory, growthOver, watchMemory, type MemoryPeak } from './helpers/memory.js';
import { startAgentProcess, startRelayProcess, type RunningProcess } from './helpers/processes.js';
import { kernelQueuedBytes, tcpWmemMaxBytes } from './helpers/socket-queues.js';

/**
 * Big bodies through a relay process and a separate agent process, with their memory watched:
 * flow control must keep what each side holds to about a window per stream, whatever the size
 * of the body. Bodies are generated and hashed as they stream, so the test holds none of them.
 */
const GiB = 1024 * MiB;
const BIG_BYTES = GiB;
/**
 * The warm-up before each big transfer, of the same kind; its peak RSS is the baseline. A Node
 * process moving bytes keeps dead Buffers until V8's external-memory limit (64 MiB) triggers a
 * GC, so its RSS saws up and down by 30-60 MiB whatever the body size, and the RSS at one
 * instant after a warm-up may sit at the bottom or the top of that saw (measured: the agent at
 * 82 or 117 MiB after the same 16 MiB warm-up, then peaking near 145 MiB). 128 MiB is enough for
 * the saw to show in the warm-up, so the 1 GiB transfer is compared with a process that has
 * reached its working size, and what is measured is growth with the body size.
 */
const WARM_UP_BYTES = 128 * MiB;
/** The most each process's peak may rise over its warm-up peak while a big body passes. */
const MAX_GROWTH_BYTES = 64 * MiB;
/** A stall this long (no byte moving on a public socket) fails the transfer at once. */
const STALL_MS = 15_000;

/** The slow local reader of the backpressure test. */
const PACE_BYTES_PER_S = MiB;
const PACED_MS = 6_000;
/** After this long the pipeline between client and reader is full, and RSS must stay flat. */
const FILL_MS = 1_000;
const SLOW_UPLOAD_BYTES = 48 * MiB;
/**
 * The most that may sit between the public client's `req.write` and the slow local reader.
 * In user space: the client's write buffer (16 KiB high-water mark + one 64 KiB chunk), the
 * relay's request and body-writer buffers (~80 KiB each), one 256 KiB stream window across the
 * tunnel, undici's socket buffer and the paused local request (~80 KiB each): under 1 MiB, so 2
 * MiB with slack. In the kernel, on each of the two TCP hops (public client → relay, agent →
 * local service): the sender's send buffer, up to tcp_wmem's maximum (4 MiB here), plus the
 * receiver's receive buffer, which autotuning sizes by how fast its reader drains it: ~1 MiB for
 * a 1 MiB/s reader (measured with `ss -m`), so 3 MiB allowed. Total: 2 × (wmem + 3 MiB) + 2 MiB,
 * 16 MiB here. The test runs on fresh processes, and its warm-up's local connection is closed
 * after it, so no receive buffer is still grown from an earlier fast transfer on a pooled
 * connection (autotuning can take that up to tcp_rmem's maximum, 32 MiB here).
 */
const MAX_USER_SPACE_IN_FLIGHT_BYTES = 2 * MiB;
const MAX_IN_FLIGHT_BYTES = 2 * (tcpWmemMaxBytes() + 3 * MiB) + MAX_USER_SPACE_IN_FLIGHT_BYTES;
/**
 * Once the pipeline is full only ~5 MiB cross each process in the rest of the paced phase, each
 * byte copied at most ~3 times (socket read, frame batch, WebSocket message), so dead Buffers
 * waiting for a GC can add at most ~15 MiB (measured: 0-9 MiB). A process buffering the upload
 * would grow at the public client's pace instead, ~100 MB/s.
 */
const MAX_PACED_GROWTH_BYTES = 24 * MiB;

interface Tunnel {
  relay: RunningProcess & { url: URL };
  agent: RunningProcess & { url: URL };
}

interface SlowReader {
  received: number;
  isPaced: boolean;
  /** The agent's end of the local connection (its port), to find the connection with `ss`. */
  peerPort: number;
}

const sentDownloads = new Map<number, Promise<BodyDigest>>();
let slowReader: SlowReader | null = null;

/**
 * Starts a local service, a relay process, and an agent process with `--server` pointing at it.
 * `cleanup` receives each closer: onTestFinished by default.
 */
async function startTunnel(cleanup?: (close: () => Promise<void>) => void): Promise<Tunnel> {
  const local = await startLocalServer(answerLocally, cleanup);
  const relay = await startRelayProcess(['--port', '0'], cleanup);
  const agent = await startAgentProcess(
    ['--port', String(local.port), '--local-host', '127.0.0.1', '--server', `http://127.0.0.1:${relay.url.port}`],
    cleanup,
  );
  return { relay, agent };
}

/** The local service: hashes uploads and answers with the digest; streams pattern downloads. */
function answerLocally(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://local');
  switch (url.pathname) {
    case '/upload':
      // Asked to, close the connection after answering, so the agent's pool retires it.
      if (url.searchParams.has('close')) res.setHeader('connection', 'close');
      digestStream(req).then(
        (digest) => res.end(JSON.stringify(digest)),
        () => res.destroy(),
      );
      return;
    case '/slow-upload':
      readSlowly(req).then(
        (digest) => res.end(JSON.stringify(digest)),
        () => res.destroy(),
      );
      return;
    case '/download': {
      const bytes = Number(url.searchParams.get('bytes'));
      const seed = Number(url.searchParams.get('seed'));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) });
      const sent = writeChunks(res, patternChunks(bytes, seed));
      sent.catch(() => res.destroy());
      sentDownloads.set(seed, sent);
      return;
    }
    default:
      req.resume();
      res.end('ok');
  }
}

/** Reads a request body at PACE_BYTES_PER_S until `isPaced` is cleared, hashing it. */
function readSlowly(req: IncomingMessage): Promise<BodyDigest> {
  const reader: SlowReader = { received: 0, isPaced: true, peerPort: req.socket.remotePort ?? 0 };
  slowReader = reader;
  const hash = createHash('sha256');
  // 'data' with pause/resume, not an async iterator: the iterator reads on, paused or not.
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    reader.received += chunk.length;
    if (!reader.isPaced) return;
    req.pause();
    setTimeout(() => req.resume(), (chunk.length / PACE_BYTES_PER_S) * 1000);
  });
  return new Promise((resolve, reject) => {
    req.on('end', () => resolve({ bytes: reader.received, sha256: hash.digest('hex') }));
    req.on('error', reject);
    req.on('close', () => reject(new Error(`the slow upload closed after ${reader.received} bytes`)));
  });
}

function processIds(tunnel: Tunnel): Record<string, number> {
  return { relay: tunnel.relay.child.pid!, agent: tunnel.agent.child.pid! };
}

/** Starts a public POST with a declared length; the response promise never goes unhandled. */
function startUpload(url: URL, path: string, bytes: number): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const req = request({
    host: '127.0.0.1',
    port: url.port,
    method: 'POST',
    path,
    headers: { host: url.host, 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
    agent: false,
  });
  req.setTimeout(STALL_MS, () => req.destroy(new Error(`upload to ${path} stalled for ${STALL_MS} ms`)));
  const response = once(req, 'response').then(([res]) => res as IncomingMessage);
  response.catch(() => undefined);
  return { req, response };
}

async function readJson(res: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of res) text += String(chunk);
  return JSON.parse(text);
}

/** Uploads a pattern body; returns what the client sent and what the local service received. */
async function upload(url: URL, bytes: number, seed: number, path = '/upload'): Promise<{ sent: BodyDigest; received: unknown; seconds: number }> {
  const started = performance.now();
  const { req, response } = startUpload(url, path, bytes);
  const sent = await writeChunks(req, patternChunks(bytes, seed));
  const res = await response;
  expect(res.statusCode).toBe(200);
  const received = await readJson(res);
  return { sent, received, seconds: (performance.now() - started) / 1000 };
}

/** Downloads a pattern body; returns what the local service sent and what the client received. */
async function download(url: URL, bytes: number, seed: number): Promise<{ sent: BodyDigest; received: BodyDigest; seconds: number }> {
  const started = performance.now();
  const req = request({ host: '127.0.0.1', port: url.port, path: `/download?bytes=${bytes}&seed=${seed}`, headers: { host: url.host }, agent: false });
  req.setTimeout(STALL_MS, () => req.destroy(new Error(`download stalled for ${STALL_MS} ms`)));
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  expect(res.statusCode).toBe(200);
  const received = await digestStream(res);
  expect(res.complete).toBe(true);
  const sent = await sentDownloads.get(seed)!;
  return { sent, received, seconds: (performance.now() - started) / 1000 };
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(2)} MiB`;
}

function rate(bytes: number, seconds: number): string {
  return `${(bytes / 1e6 / seconds).toFixed(1)} MB/s`;
}

function expectBoundedGrowth(baseline: MemoryPeak[], during: MemoryPeak[], maxBytes: number): void {
  for (const { name, growthBytes } of growthOver(baseline, during)) {
    expect(growthBytes, `${name}: peak RSS over its warm-up peak`).toBeLessThan(maxBytes);
  }
}

describe('1 GiB bodies through a relay process and an agent process', () => {
  let tunnel: Tunnel;
  // vitest ignores an afterAll registered inside a hook, so the closers are kept here.
  const closers: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    tunnel = await startTunnel((close) => closers.push(close));
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('carries a 1 GiB upload with its sha256 intact while the relay and the agent each grow by under 64 MiB', async () => {
    const warmUpWatch = watchMemory(processIds(tunnel));
    const warmUp = await upload(tunnel.agent.url, WARM_UP_BYTES, 1);
    const warmUpPeaks = warmUpWatch.stop();
    expect(warmUp.received).toEqual(warmUp.sent);

    const watch = watchMemory(processIds(tunnel));
    const { sent, received, seconds } = await upload(tunnel.agent.url, BIG_BYTES, 2);
    const peaks = watch.stop();
    console.info(`upload 1 GiB: ${seconds.toFixed(1)} s, ${rate(BIG_BYTES, seconds)}; ${describeMemory(warmUpPeaks, peaks)}`);
    expect(sent.bytes).toBe(BIG_BYTES);
    expect(received).toEqual(sent);
    expectBoundedGrowth(warmUpPeaks, peaks, MAX_GROWTH_BYTES);
  }, 90_000);

  it('carries a 1 GiB download with its sha256 intact while the relay and the agent each grow by under 64 MiB', async () => {
    const warmUpWatch = watchMemory(processIds(tunnel));
    const warmUp = await download(tunnel.agent.url, WARM_UP_BYTES, 3);
    const warmUpPeaks = warmUpWatch.stop();
    expect(warmUp.received).toEqual(warmUp.sent);

    const watch = watchMemory(processIds(tunnel));
    const { sent, received, seconds } = await download(tunnel.agent.url, BIG_BYTES, 4);
    const peaks = watch.stop();
    console.info(`download 1 GiB: ${seconds.toFixed(1)} s, ${rate(BIG_BYTES, seconds)}; ${describeMemory(warmUpPeaks, peaks)}`);
    expect(sent.bytes).toBe(BIG_BYTES);
    expect(received).toEqual(sent);
    expectBoundedGrowth(warmUpPeaks, peaks, MAX_GROWTH_BYTES);
  }, 90_000);
});

describe('backpressure from a slow local reader', () => {
  it('slows a public upload to the pace of the local reader, with what sits in between bounded and RSS flat', async () => {
    const tunnel = await startTunnel();
    const url = tunnel.agent.url;
    // Warm the processes up to their working size; the local connection used is then retired.
    const warmUp = await upload(url, WARM_UP_BYTES, 5, '/upload?close');
    expect(warmUp.received).toEqual(warmUp.sent);

    const { req, response } = startUpload(url, '/slow-upload', SLOW_UPLOAD_BYTES);
    onTestFinished(() => {
      req.destroy();
    });
    let sent = 0;
    let refusedWrites = 0;
    let maxWritableLength = 0;
    let maxInFlight = 0;
    const sampler = setInterval(() => {
      maxWritableLength = Math.max(maxWritableLength, req.writableLength);
      if (slowReader) maxInFlight = Math.max(maxInFlight, sent - slowReader.received);
    }, 50);
    onTestFinished(() => clearInterval(sampler));
    // writeChunks, inlined to count the writes `req.write` refuses.
    const writing = (async (): Promise<BodyDigest> => {
      const hash = createHash('sha256');
      for (const chunk of patternChunks(SLOW_UPLOAD_BYTES, 6)) {
        hash.update(chunk);
        sent += chunk.length;
        if (!req.write(chunk)) {
          refusedWrites += 1;
          maxWritableLength = Math.max(maxWritableLength, req.writableLength);
          if (!(await waitForDrain(req))) throw new Error(`the upload closed after ${sent} bytes`);
        }
      }
      req.end();
      return { bytes: sent, sha256: hash.digest('hex') };
    })();
    writing.catch(() => undefined);

    await new Promise((resolve) => setTimeout(resolve, FILL_MS));
    const watch = watchMemory(processIds(tunnel));
    await new Promise((resolve) => setTimeout(resolve, PACED_MS - FILL_MS));
    clearInterval(sampler);
    const pacedPeaks = watch.stop();
    const reader = slowReader!;
    expect(reader).not.toBeNull();
    const pacedReceived = reader.received;
    const pacedSent = sent;
    const kernelBytes = kernelQueuedBytes(req.socket?.localPort ?? 0) + kernelQueuedBytes(reader.peerPort);
    const userSpaceBytes = pacedSent - pacedReceived - kernelBytes;
    console.info(
      `slow upload after ${PACED_MS} ms: public sent ${mib(pacedSent)}, local received ${mib(pacedReceived)}, ` +
        `in flight ${mib(pacedSent - pacedReceived)} (max ${mib(maxInFlight)}, bound ${mib(MAX_IN_FLIGHT_BYTES)}; ` +
        `in kernel socket queues ${mib(kernelBytes)}, the rest ${mib(userSpaceBytes)}); writes refused ${refusedWrites}, ` +
        `max writableLength ${maxWritableLength} B; from ${FILL_MS} ms: ${describeMemory([], pacedPeaks)}`,
    );

    // The reader set the pace: about PACE_BYTES_PER_S got through, not the loopback's ~100 MB/s.
    const pacedBytes = (PACED_MS / 1000) * PACE_BYTES_PER_S;
    expect(pacedReceived).toBeGreaterThan(pacedBytes * 0.5);
    expect(pacedReceived).toBeLessThan(pacedBytes * 1.5);
    // The public client felt it: its socket stopped taking writes and its buffer filled.
    expect(refusedWrites).toBeGreaterThan(0);
    expect(maxWritableLength).toBeGreaterThanOrEqual(PATTERN_CHUNK_BYTES);
    // What sits in between stays bounded, most of it in the kernel's socket buffers.
    expect(maxInFlight).toBeLessThanOrEqual(MAX_IN_FLIGHT_BYTES);
    expect(userSpaceBytes).toBeLessThanOrEqual(MAX_USER_SPACE_IN_FLIGHT_BYTES);
    for (const peak of pacedPeaks) {
      expect(peak.peakBytes - peak.startBytes, `${peak.name}: RSS growth while held back`).toBeLessThan(MAX_PACED_GROWTH_BYTES);
    }

    // Let the reader go: the rest of the body arrives intact.
    reader.isPaced = false;
    const sentDigest = await writing;
    const res = await response;
    expect(res.statusCode).toBe(200);
    expect(await readJson(res)).toEqual(sentDigest);
  }, 60_000);
});
