// Benchmark: a local HTTP service reached directly vs through the tunnel.
//
//   npm run bench                 (builds first, then runs this file)
//   BENCH_SECONDS=10 npm run bench  (duration of each load-generator run; default 5)
//
// What it does, in one run:
//   1. starts bench/local-server.mjs (GET /small = 100 B, GET /big = 100 MiB, GET /pattern and
//      POST /upload for the 1 GiB rows) on 127.0.0.1;
//   2. starts the tunnel CLI with an embedded relay on 127.0.0.1 and reads its public URL;
//   3. measures req/s and p50/p99 latency of GET /small at 1 and 50 connections with wrk
//      (or autocannon if wrk is missing and autocannon is installed), direct vs tunnel;
//   4. downloads /big direct vs tunnel with node:http, checks the byte count, reports MB/s;
//   5. starts a relay process (tunnel-server) and an agent process (tunnel --server) and moves
//      1 GiB up and 1 GiB down, direct vs through them, each body generated and sha256-checked
//      as it streams (bench/pattern.mjs); reports MB/s and the relay's and agent's peak RSS;
//   6. prints a side-by-side table, and exits non-zero if anything failed.
// Only 127.0.0.1 is used; only the child processes started here are ever signalled (by PID).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { patternDigest, writePattern } from './pattern.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LOOPBACK = '127.0.0.1';
const SMALL_BYTES = 100;
const BIG_BYTES = 100 * 1024 * 1024; // 100 MiB
const MB = 1e6; // throughput is reported in MB/s with 1 MB = 1,000,000 bytes
const SECONDS = parseSeconds(process.env.BENCH_SECONDS);
const STARTUP_TIMEOUT_MS = 20_000;
const DOWNLOAD_TIMEOUT_MS = 180_000;
const GIB_BYTES = 1024 ** 3; // the 1 GiB rows
const GIB_SEED = 7; // which deterministic body they carry
const GIB_TIMEOUT_MS = 300_000; // per transfer: fails below ~3.6 MB/s
const SANITY_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 3_000;
const MAX_LOG_LINES = 500; // per child, kept for the report

const failures = [];
const notes = [];
/** @type {Map<number, {name: string, child: import('node:child_process').ChildProcess, exit: null | {code: number|null, signal: string|null}, killedByUs: boolean, stderr: string[], stderrLines: number}>} */
const children = new Map();

function parseSeconds(raw) {
  if (raw === undefined || raw === '') return 5;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 1 || value > 600 || !Number.isInteger(value)) {
    process.stderr.write(`bench: BENCH_SECONDS must be an integer from 1 to 600, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return value;
}

let interrupted = null; // the signal that interrupted the run, if any

/** Throws once a signal asked us to stop, so no further step starts. */
function checkInterrupted() {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

function fail(message) {
  if (interrupted) return; // errors caused by stopping the children are not results
  failures.push(message);
  process.stderr.write(`bench: FAIL: ${message}\n`);
}

function progress(message) {
  process.stderr.write(`bench: ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Starts a child we own; records its exit and keeps the tail of its stderr. */
function startChild(name, command, args, { shortLived = false, stdinPipe = false } = {}) {
  const child = spawn(command, args, { cwd: ROOT, stdio: [stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const entry = { name, child, exit: null, killedByUs: false, shortLived, stderr: [], stderrLines: 0, spawnError: null };
  child.on('error', (error) => {
    entry.spawnError = error;
  });
  child.on('exit', (code, signal) => {
    entry.exit = { code, signal };
    if (!entry.killedByUs && !entry.shortLived) progress(`${name} (pid ${child.pid}) exited unexpectedly: code ${code}, signal ${signal}`);
  });
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    entry.stderrLines += 1;
    const parsed = parseLogLine(line);
    // The agent's pool figures (logged on SIGUSR2) are read, not echoed; so is routine info.
    if (parsed?.msg === 'pool figures') {
      entry.poolFigures = parsed.pool;
      return;
    }
    if (parsed && parsed.level < 40) return;
    if (entry.stderr.length < MAX_LOG_LINES) entry.stderr.push(line);
  });
  if (child.pid !== undefined) children.set(child.pid, entry);
  return entry;
}

/** Resolves with the first stdout line of a child, or rejects on exit or timeout. */
function firstLine(entry, timeoutMs) {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: entry.child.stdout });
    const timer = setTimeout(() => finish(new Error(`${entry.name} printed nothing on stdout within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code, signal) => finish(new Error(`${entry.name} exited (code ${code}, signal ${signal}) before printing a line; stderr:\n${entry.stderr.join('\n')}`));
    const onError = (error) => finish(new Error(`${entry.name} failed to start: ${error.message}`));
    function finish(error, line) {
      clearTimeout(timer);
      rl.off('line', onLine);
      entry.child.off('exit', onExit);
      entry.child.off('error', onError);
      rl.close();
      // Keep draining stdout so the child never blocks on a full pipe.
      entry.child.stdout.resume();
      if (error) reject(error);
      else resolve(line);
    }
    function onLine(line) {
      finish(null, line.trim());
    }
    rl.on('line', onLine);
    entry.child.once('exit', onExit);
    entry.child.once('error', onError);
  });
}

function waitForExit(entry, timeoutMs) {
  if (entry.exit || entry.child.exitCode !== null || entry.child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      entry.child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    entry.child.once('exit', onExit);
  });
}

/** Stops one child we started: SIGTERM by PID, then SIGKILL after a grace period. */
async function stopChild(entry) {
  const pid = entry.child.pid;
  if (pid === undefined || entry.exit || entry.child.exitCode !== null || entry.child.signalCode !== null) return;
  entry.killedByUs = true;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  if (await waitForExit(entry, KILL_GRACE_MS)) return;
  progress(`${entry.name} (pid ${pid}) ignored SIGTERM for ${KILL_GRACE_MS} ms; sending SIGKILL`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(entry, KILL_GRACE_MS);
}

let stopping = null;
function stopAll() {
  stopping ??= Promise.all([...children.values()].map((entry) => stopChild(entry)));
  return stopping;
}

// Last resort if we exit some other way (process.exit, a crash): SIGKILL, by PID, whatever of
// ours is still running. Synchronous, as 'exit' handlers must be.
process.on('exit', () => {
  for (const entry of children.values()) {
    if (entry.exit || entry.child.exitCode !== null || entry.child.signalCode !== null) continue;
    try {
      process.kill(entry.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    interrupted = signal;
    progress(`${signal} received; stopping child processes`);
    const code = 128 + (os.constants.signals[signal] ?? 2);
    stopAll().finally(() => {
      progress(`interrupted by ${signal}; child processes stopped; no results`);
      process.exit(code);
    });
    setTimeout(() => process.exit(code), 2 * KILL_GRACE_MS + 1_000).unref();
  });
}

/** Runs a short-lived child (the load generator) to completion, bounded by a timeout. */
async function runToCompletion(name, command, args, timeoutMs) {
  const entry = startChild(name, command, args, { shortLived: true });
  let stdout = '';
  entry.child.stdout.setEncoding('utf8');
  entry.child.stdout.on('data', (chunk) => {
    if (stdout.length < 1_000_000) stdout += chunk;
  });
  // 'close' comes after 'exit' once stdout and stderr are fully read, so no output is lost.
  let timer;
  const exited = await new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    entry.child.once('close', () => resolve(true));
    entry.child.once('error', () => resolve(true));
  });
  clearTimeout(timer);
  if (!exited) {
    await stopChild(entry);
    children.delete(entry.child.pid);
    throw new Error(`${name} did not finish within ${timeoutMs} ms and was stopped`);
  }
  children.delete(entry.child.pid);
  if (entry.spawnError) throw entry.spawnError;
  return { code: entry.child.exitCode, signal: entry.child.signalCode, stdout, stderr: entry.stderr.join('\n') };
}

// ---------------------------------------------------------------------------------------------
// Load generators

function which(command) {
  const result = spawnSync('which', [command], { encoding: 'utf8', timeout: 5_000 });
  return result.status === 0 ? result.stdout.trim().split('\n')[0] : null;
}

function findLoadGenerator() {
  const wrk = which('wrk');
  if (wrk) return { kind: 'wrk', path: wrk };
  const local = path.join(ROOT, 'node_modules', '.bin', 'autocannon');
  const autocannon = existsSync(local) ? local : which('autocannon');
  if (autocannon) return { kind: 'autocannon', path: autocannon };
  return null;
}

function toMs(value, unit) {
  const factor = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[unit];
  return factor === undefined ? NaN : Number(value) * factor;
}

/** Parses `wrk --latency` output. */
function parseWrk(text) {
  const number = (re) => {
    const match = re.exec(text);
    return match ? Number(match[1]) : NaN;
  };
  const percentile = (p) => {
    const match = new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(text);
    return match ? toMs(match[1], match[2]) : NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    reqPerSec: number(/Requests\/sec:\s+([\d.]+)/),
    requests: number(/(\d+) requests in /),
    p50: percentile(50),
    p99: percentile(99),
    non2xx: number(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
    socketErrors: socket ? { connect: +socket[1], read: +socket[2], write: +socket[3], timeout: +socket[4] } : null,
  };
}

async function loadWrk(tool, target, connections, threads) {
  const url = `http://${LOOPBACK}:${target.port}/small`;
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${SECONDS}s`, '--latency', '--timeout', '5s'];
  if (target.host) args.push('-H', `Host: ${target.host}`);
  args.push(url);
  const run = await runToCompletion('wrk', tool.path, args, (SECONDS + 30) * 1000);
  const label = `wrk ${target.name} ${connections} conn`;
  if (run.code !== 0) throw new Error(`${label} exited with code ${run.code} (signal ${run.signal}): ${run.stderr || run.stdout}`);
  const parsed = parseWrk(run.stdout);
  const problems = [];
  if (!Number.isFinite(parsed.reqPerSec) || !Number.isFinite(parsed.requests) || parsed.requests === 0) problems.push('no completed requests');
  if (!Number.isFinite(parsed.p50) || !Number.isFinite(parsed.p99)) problems.push('latency distribution not found in output');
  if (parsed.non2xx > 0) problems.push(`${parsed.non2xx} of ${parsed.requests} responses were not 2xx/3xx ("Non-2xx or 3xx responses: ${parsed.non2xx}")`);
  const se = parsed.socketErrors;
  if (se && se.connect + se.read + se.write + se.timeout > 0) {
    problems.push(`socket errors: connect ${se.connect}, read ${se.read}, write ${se.write}, timeout ${se.timeout}`);
  }
  for (const problem of problems) fail(`${label}: ${problem}`);
  if (problems.length > 0) progress(`${label} raw output:\n${run.stdout}`);
  return { ...parsed, ok: problems.length === 0, raw: run.stdout };
}

async function loadAutocannon(tool, target, connections) {
  const url = `http://${LOOPBACK}:${target.port}/small`;
  const args = ['--json', '-c', String(connections), '-d', String(SECONDS), '-t', '5'];
  if (target.host) args.push('-H', `Host=${target.host}`);
  args.push(url);
  const run = await runToCompletion('autocannon', tool.path, args, (SECONDS + 30) * 1000);
  const label = `autocannon ${target.name} ${connections} conn`;
  if (run.code !== 0) throw new Error(`${label} exited with code ${run.code}: ${run.stderr}`);
  let json;
  try {
    json = JSON.parse(run.stdout.trim().split('\n').pop());
  } catch {
    throw new Error(`${label}: could not parse --json output: ${run.stdout.slice(0, 500)}`);
  }
  const parsed = {
    reqPerSec: json.requests?.total / (json.duration || SECONDS),
    requests: json.requests?.total,
    p50: json.latency?.p50,
    p99: json.latency?.p99,
    non2xx: json.non2xx ?? 0,
    errors: json.errors ?? 0,
    timeouts: json.timeouts ?? 0,
  };
  const problems = [];
  if (!parsed.requests) problems.push('no completed requests');
  if (parsed.non2xx > 0) problems.push(`${parsed.non2xx} of ${parsed.requests} responses were not 2xx`);
  if (parsed.errors > 0 || parsed.timeouts > 0) problems.push(`${parsed.errors} errors, ${parsed.timeouts} timeouts`);
  for (const problem of problems) fail(`${label}: ${problem}`);
  return { ...parsed, ok: problems.length === 0 };
}

// ---------------------------------------------------------------------------------------------
// node:http checks and downloads

/** One GET with a hard deadline; counts body bytes without keeping them. */
function get(target, pathname, timeoutMs) {
  return new Promise((resolve, reject) => {
    const headers = target.host ? { host: target.host } : {};
    const started = performance.now();
    let firstByteAt = null;
    const req = http.get({ host: LOOPBACK, port: target.port, path: pathname, headers, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => {
        firstByteAt ??= performance.now();
        bytes += chunk.length;
      });
      res.on('end', () => {
        clearTimeout(timer);
        const seconds = (performance.now() - started) / 1000;
        resolve({ status: res.statusCode, bytes, seconds, complete: res.complete, ttfbMs: firstByteAt === null ? NaN : firstByteAt - started, headers: res.headers });
      });
      res.on('aborted', () => {
        clearTimeout(timer);
        reject(new Error(`response aborted after ${bytes} bytes (status ${res.statusCode})`));
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`response error after ${bytes} bytes: ${error.message}`));
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function sanityCheck(target) {
  let result;
  try {
    result = await get(target, '/small', SANITY_TIMEOUT_MS);
  } catch (error) {
    throw new Error(`GET /small ${target.name} (check before the load runs): ${error.message}`);
  }
  if (result.status !== 200 || result.bytes !== SMALL_BYTES) {
    throw new Error(`GET /small ${target.name}: status ${result.status}, ${result.bytes} bytes (expected 200 and ${SMALL_BYTES} bytes)`);
  }
}

async function download(target) {
  const label = `download /big ${target.name}`;
  try {
    const result = await get(target, '/big', DOWNLOAD_TIMEOUT_MS);
    const ok = result.status === 200 && result.bytes === BIG_BYTES && result.complete;
    if (!ok) fail(`${label}: status ${result.status}, ${result.bytes} bytes (expected 200 and ${BIG_BYTES} bytes = 100 MiB), complete=${result.complete}`);
    const mbps = result.bytes / MB / result.seconds;
    progress(`${label}: ${result.bytes} bytes in ${result.seconds.toFixed(3)} s = ${mbps.toFixed(1)} MB/s (ttfb ${result.ttfbMs.toFixed(1)} ms)`);
    return ok ? mbps : NaN;
  } catch (error) {
    fail(`${label}: ${error.message}`);
    return NaN;
  }
}

/** POSTs the 1 GiB pattern body with backpressure, hashing it as it goes; resolves with the service's answer. */
function postPattern(target, timeoutMs) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(GIB_BYTES) };
    if (target.host) headers.host = target.host;
    let sent = null;
    const req = http.request({ host: LOOPBACK, port: target.port, method: 'POST', path: '/upload', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        if (text.length < 10_000) text += chunk;
      });
      res.on('end', () => {
        clearTimeout(timer);
        let received = null;
        try {
          received = JSON.parse(text);
        } catch {
          // reported below as a wrong answer
        }
        resolve({ status: res.statusCode, sent, received, text, seconds: (performance.now() - started) / 1000 });
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    writePattern(req, GIB_BYTES, GIB_SEED).then((result) => {
      sent = result;
      if (result.completed) req.end();
    }, (error) => req.destroy(error));
  });
}

async function uploadGib(target) {
  const label = `upload 1 GiB ${target.name}`;
  try {
    const result = await postPattern(target, GIB_TIMEOUT_MS);
    const ok = result.status === 200 && result.sent?.completed && result.received?.bytes === GIB_BYTES && result.received?.sha256 === result.sent.sha256;
    if (!ok) {
      fail(`${label}: status ${result.status}, sent ${result.sent?.bytes} bytes (sha256 ${result.sent?.sha256}), the service answered ${result.text.slice(0, 200)}`);
      return NaN;
    }
    const mbps = GIB_BYTES / MB / result.seconds;
    progress(`${label}: ${GIB_BYTES} bytes in ${result.seconds.toFixed(3)} s = ${mbps.toFixed(1)} MB/s, sha256 matches`);
    return mbps;
  } catch (error) {
    fail(`${label}: ${error.message}`);
    return NaN;
  }
}

/** GETs the 1 GiB pattern body, hashing it as it arrives and keeping none of it. */
function getPattern(target, timeoutMs) {
  return new Promise((resolve, reject) => {
    const headers = target.host ? { host: target.host } : {};
    const started = performance.now();
    const req = http.get({ host: LOOPBACK, port: target.port, path: `/pattern?bytes=${GIB_BYTES}&seed=${GIB_SEED}`, headers, agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, bytes, sha256: hash.digest('hex'), complete: res.complete, seconds: (performance.now() - started) / 1000 });
      });
      res.on('aborted', () => {
        clearTimeout(timer);
        reject(new Error(`response aborted after ${bytes} bytes (status ${res.statusCode})`));
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`response error after ${bytes} bytes: ${error.message}`));
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function downloadGib(target, expectedSha256) {
  const label = `download 1 GiB ${target.name}`;
  try {
    const result = await getPattern(target, GIB_TIMEOUT_MS);
    const ok = result.status === 200 && result.complete && result.bytes === GIB_BYTES && result.sha256 === expectedSha256;
    if (!ok) {
      fail(`${label}: status ${result.status}, ${result.bytes} bytes, sha256 ${result.sha256} (expected 200, ${GIB_BYTES} bytes, sha256 ${expectedSha256}), complete=${result.complete}`);
      return NaN;
    }
    const mbps = GIB_BYTES / MB / result.seconds;
    progress(`${label}: ${GIB_BYTES} bytes in ${result.seconds.toFixed(3)} s = ${mbps.toFixed(1)} MB/s, sha256 matches`);
    return mbps;
  } catch (error) {
    fail(`${label}: ${error.message}`);
    return NaN;
  }
}

/**
 * Starts a relay process and an agent process that dials it with --server, so the 1 GiB rows
 * measure the deployed shape (two processes, a real WebSocket between them) and each side's
 * memory can be read on its own; the embedded relay would put both in one process.
 */
async function startSeparateTunnel(localPort) {
  const exitWithParent = ['--import', pathToFileURL(path.join(ROOT, 'bench', 'exit-with-parent.mjs')).href];
  const relayArgs = [...exitWithParent, path.join(ROOT, 'packages', 'server', 'bin', 'tunnel-server.js'), '--port', '0', '--host', LOOPBACK, '--log-level', 'warn'];
  const relay = startChild('relay', process.execPath, relayArgs, { stdinPipe: true });
  const relayUrl = new URL(await firstLine(relay, STARTUP_TIMEOUT_MS));
  const agentArgs = [
    ...exitWithParent,
    path.join(ROOT, 'packages', 'client', 'bin', 'tunnel.js'),
    '--port', String(localPort),
    '--local-host', LOOPBACK,
    '--server', `http://${LOOPBACK}:${relayUrl.port}`,
    '--log-level', 'warn',
    '--stats-interval', '0',
  ];
  const agent = startChild('agent', process.execPath, agentArgs, { stdinPipe: true });
  const publicUrl = new URL(await firstLine(agent, STARTUP_TIMEOUT_MS));
  progress(`relay process ${relayUrl.href} (pid ${relay.child.pid}); agent process ${publicUrl.href} (pid ${agent.child.pid})`);
  return { relay, agent, target: { name: 'tunnel (relay + agent processes)', port: Number(publicUrl.port), host: publicUrl.host } };
}

/** Resets a child's peak RSS (VmHWM) to its current RSS (Linux; our own children only). */
function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function readProcStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
    return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

const fmt = {
  rps: (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a'),
  ms: (v) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(3) : v.toFixed(1)} ms` : 'n/a'),
  mbps: (v) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a'),
};

function printTable(rows) {
  const header = ['', 'direct', 'tunnel', 'tunnel/direct'];
  const body = rows.map((row) => {
    const ratio = Number.isFinite(row.direct) && Number.isFinite(row.tunnel) && row.direct > 0 ? `${(row.tunnel / row.direct).toFixed(2)}x` : 'n/a';
    return [row.label, row.format(row.direct), row.format(row.tunnel), ratio];
  });
  const widths = header.map((_, i) => Math.max(header[i].length, ...body.map((cells) => cells[i].length)));
  const line = (cells) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('   ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('   '));
  for (const cells of body) console.log(line(cells));
}

/** A pino JSON log line as an object, or null for any other line. */
function parseLogLine(line) {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

/** Asks the agent for its pool figures (SIGUSR2) and waits up to 2 s for the log line. */
async function readPoolFigures(entry) {
  entry.poolFigures = undefined;
  process.kill(entry.child.pid, 'SIGUSR2');
  for (let i = 0; i < 200 && entry.poolFigures === undefined; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
  return entry.poolFigures ?? null;
}

function summarizeLogLine(line) {
  try {
    const entry = JSON.parse(line);
    const err = entry.err ? ` err=${entry.err.type ?? ''}:${entry.err.code ?? ''} ${entry.err.message ?? ''}` : '';
    return `level=${entry.level} ${entry.component ?? ''} ${entry.code ? `code=${entry.code} ` : ''}${entry.msg ?? ''}${err}`.trim();
  } catch {
    return line;
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const cpus = os.cpus();
  console.log(`Machine: ${cpus.length} cores (${cpus[0]?.model?.trim() ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}`);
  console.log(`Node: ${process.version}`);

  const tool = findLoadGenerator();
  if (tool?.kind === 'wrk') {
    const version = spawnSync(tool.path, ['-v'], { encoding: 'utf8', timeout: 5_000 });
    console.log(`Load generator: ${(version.stdout || version.stderr || 'wrk').split('\n')[0].trim()} (${tool.path})`);
  } else if (tool) {
    console.log(`Load generator: autocannon (${tool.path}); wrk not found, install it with: apt-get install wrk`);
  } else {
    console.log('Load generator: NONE. wrk is not installed (and autocannon is not either): run `apt-get install wrk` to get the req/s and latency rows. Skipping them; throughput rows still run.');
  }
  console.log(`Each load run: ${SECONDS} s (BENCH_SECONDS); body of /small = ${SMALL_BYTES} B; /big = 100 MiB (${BIG_BYTES} bytes); 1 MB = 1,000,000 bytes.`);
  console.log('');

  const local = startChild('local-server', process.execPath, [path.join(ROOT, 'bench', 'local-server.mjs'), '--exit-with-stdin'], { stdinPipe: true });
  const localPort = JSON.parse(await firstLine(local, STARTUP_TIMEOUT_MS)).port;
  progress(`local server on ${LOOPBACK}:${localPort} (pid ${local.child.pid})`);

  const tunnelArgs = [
    // Only watches stdin, so the tunnel stops itself if this script dies without stopping it.
    '--import', pathToFileURL(path.join(ROOT, 'bench', 'exit-with-parent.mjs')).href,
    path.join(ROOT, 'packages', 'client', 'bin', 'tunnel.js'),
    '--port', String(localPort),
    // Forward to the loopback address the local server listens on, not to `localhost`,
    // which may resolve to ::1 first on some machines.
    '--local-host', LOOPBACK,
    '--relay-port', '0',
    // info, so the pool figures logged on SIGUSR2 reach us; routine info lines are dropped.
    '--log-level', 'info',
    '--stats-interval', '0',
  ];
  const tunnel = startChild('tunnel', process.execPath, tunnelArgs, { stdinPipe: true });
  const publicUrl = await firstLine(tunnel, STARTUP_TIMEOUT_MS);
  let parsedUrl;
  try {
    parsedUrl = new URL(publicUrl);
  } catch {
    throw new Error(`tunnel's first stdout line is not a URL: ${JSON.stringify(publicUrl)}`);
  }
  if (!parsedUrl.hostname.endsWith('.localhost') || !parsedUrl.port) {
    throw new Error(`unexpected tunnel URL ${publicUrl}: expected http://<name>.localhost:<port>`);
  }
  const relayPort = Number(parsedUrl.port);
  progress(`tunnel ${publicUrl} (pid ${tunnel.child.pid}); relay on ${LOOPBACK}:${relayPort}`);

  const direct = { name: 'direct', port: localPort, host: null };
  const viaTunnel = { name: 'tunnel', port: relayPort, host: parsedUrl.host };
  // Whether tunnel measurements should still run: not once the tunnel has died or failed the check.
  let tunnelBroken = false;
  const tunnelAlive = () => {
    if (tunnelBroken) return false;
    if (!tunnel.exit) return true;
    tunnelBroken = true;
    tunnel.killedByUs = true; // reported here, not again as "exited on its own"
    fail(`the tunnel process exited during the benchmark (code ${tunnel.exit.code}, signal ${tunnel.exit.signal})`);
    return false;
  };

  await sanityCheck(direct); // if the local server itself is broken, nothing is worth measuring
  try {
    await sanityCheck(viaTunnel);
  } catch (error) {
    fail(`${error.message}; skipping every tunnel measurement`);
    tunnelBroken = true;
  }

  const rows = [];
  if (tool) {
    for (const [connections, threads] of [[1, 1], [50, 2]]) {
      const results = {};
      for (const target of [direct, viaTunnel]) {
        checkInterrupted();
        if (target === viaTunnel && !tunnelAlive()) break;
        progress(`load ${target.name}: ${connections} conn, ${SECONDS} s`);
        try {
          results[target.name] = tool.kind === 'wrk' ? await loadWrk(tool, target, connections, threads) : await loadAutocannon(tool, target, connections);
        } catch (error) {
          fail(error.message);
        }
      }
      const pick = (name, key) => results[name]?.[key] ?? NaN;
      rows.push({ label: `req/s 100 B, ${connections} conn`, direct: pick('direct', 'reqPerSec'), tunnel: pick('tunnel', 'reqPerSec'), format: fmt.rps });
      rows.push({ label: `p50 latency, ${connections} conn`, direct: pick('direct', 'p50'), tunnel: pick('tunnel', 'p50'), format: fmt.ms });
      rows.push({ label: `p99 latency, ${connections} conn`, direct: pick('direct', 'p99'), tunnel: pick('tunnel', 'p99'), format: fmt.ms });
      for (const name of ['direct', 'tunnel']) {
        const r = results[name];
        if (r && r.non2xx > 0) notes.push(`${name} ${connections} conn: ${r.non2xx} non-2xx/3xx responses of ${r.requests}`);
      }
    }
  }

  checkInterrupted();
  progress('download /big direct');
  const directMbps = await download(direct);
  let tunnelMbps = NaN;
  checkInterrupted();
  if (tunnelAlive()) {
    progress('download /big through the tunnel');
    tunnelMbps = await download(viaTunnel);
  }
  rows.push({ label: 'download 100 MiB MB/s', direct: directMbps, tunnel: tunnelMbps, format: fmt.mbps });

  // 1 GiB each way, through a relay process and an agent process of their own.
  checkInterrupted();
  progress('1 GiB rows: computing the sha256 of the 1 GiB body');
  const gibSha256 = patternDigest(GIB_BYTES, GIB_SEED);
  let separate = null;
  try {
    separate = await startSeparateTunnel(localPort);
    await sanityCheck(separate.target);
  } catch (error) {
    fail(`relay and agent processes for the 1 GiB rows: ${error.message}; skipping their tunnel measurements`);
    separate = null;
  }
  const separateAlive = () => separate !== null && !separate.relay.exit && !separate.agent.exit;
  const memoryBefore = {};
  if (separate) {
    for (const entry of [separate.relay, separate.agent]) {
      memoryBefore[entry.name] = readProcStatus(entry.child.pid);
      entry.peakReset = resetPeakRss(entry.child.pid);
    }
  }
  const gibRows = [
    ['upload 1 GiB MB/s', (target) => uploadGib(target)],
    ['download 1 GiB MB/s', (target) => downloadGib(target, gibSha256)],
  ];
  for (const [label, measure] of gibRows) {
    checkInterrupted();
    progress(`${label}: direct`);
    const direct1 = await measure(direct);
    let tunnel1 = NaN;
    checkInterrupted();
    if (separateAlive()) {
      progress(`${label}: through the relay and agent processes`);
      tunnel1 = await measure(separate.target);
    }
    rows.push({ label, direct: direct1, tunnel: tunnel1, format: fmt.mbps });
  }
  if (separate) {
    for (const entry of [separate.relay, separate.agent]) {
      if (entry.exit) {
        fail(`the ${entry.name} process exited during the 1 GiB rows (code ${entry.exit.code}, signal ${entry.exit.signal})`);
        entry.killedByUs = true; // reported here, not again as "exited on its own"
        continue;
      }
      const before = memoryBefore[entry.name];
      const after = readProcStatus(entry.child.pid);
      if (!before || !after) continue;
      const since = entry.peakReset ? 'during the 1 GiB rows' : 'since it started';
      notes.push(
        `${entry.name} process (1 GiB rows): RSS ${before.rssMiB.toFixed(0)} MiB before, ${after.rssMiB.toFixed(0)} MiB after; ` +
          `peak RSS (VmHWM) ${since} ${after.peakMiB.toFixed(0)} MiB`,
      );
    }
  }

  // The tunnel must still serve after all that.
  checkInterrupted();
  if (tunnelAlive()) {
    try {
      await sanityCheck(viaTunnel);
    } catch (error) {
      fail(`after the benchmark: ${error.message}`);
    }
  }
  const pool = tunnelAlive() ? await readPoolFigures(tunnel) : null;
  if (pool) {
    notes.push(
      `agent pool: ${pool.requests} requests over ${pool.connectionsOpened} local connections opened ` +
        `(reuse rate ${(pool.reuseRate * 100).toFixed(2)}%), ${pool.retries} retries, ` +
        `acquire p50 ${pool.acquireMsP50.toFixed(3)} ms, p99 ${pool.acquireMsP99.toFixed(3)} ms`,
    );
  } else if (!tunnelBroken) {
    fail('the agent did not log its pool figures after SIGUSR2');
  }
  const mem = readProcStatus(tunnel.child.pid);
  if (mem) notes.push(`tunnel process memory at the end: RSS ${mem.rssMiB.toFixed(0)} MiB, peak RSS ${mem.peakMiB.toFixed(0)} MiB`);

  checkInterrupted();
  console.log('');
  printTable(rows);
  console.log('');
  console.log('req/s: higher is better; latency: lower is better; MB/s: 1 MB = 1,000,000 bytes, higher is better.');
  console.log('Tunnel rows go through the embedded relay (one process), except the 1 GiB rows: a relay process and an agent process.');
  console.log('1 GiB rows: each body is generated and sha256-checked as it streams, on both ends, so "direct" is bounded by hashing.');
  if (!tool) console.log('req/s and latency rows skipped: no load generator. Install wrk: apt-get install wrk');
  if (tool?.kind === 'autocannon') console.log('autocannon records latency in whole milliseconds, so sub-millisecond latencies show as 0; wrk is more precise.');
  for (const note of notes) console.log(`note: ${note}`);
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  fail(error?.stack ?? String(error));
} finally {
  await stopAll();
  if (interrupted) {
    // The signal handler reports and exits; nothing here is a result.
    progress(`interrupted by ${interrupted}; child processes stopped; no results`);
    process.exit(128 + (os.constants.signals[interrupted] ?? 2));
  }
  for (const entry of children.values()) {
    const logs = entry.stderr.filter(
      (line) =>
        line.trim() !== '' &&
        !line.startsWith('tunnel: Using an embedded relay') &&
        !(entry.killedByUs && /^received SIG[A-Z]+, shutting down$/.test(line.trim())),
    );
    if (logs.length > 0) {
      console.log('');
      console.log(`${entry.name} stderr (${logs.length} line(s)${logs.length > 20 ? ', first 20 shown' : ''}):`);
      for (const line of logs.slice(0, 20)) console.log(`  ${summarizeLogLine(line).slice(0, 400)}`);
    }
    if (entry.exit && !entry.killedByUs) {
      fail(`${entry.name} exited on its own (code ${entry.exit.code}, signal ${entry.exit.signal})`);
    }
  }
  if (failures.length > 0) {
    console.log('');
    console.log(`FAILED (${failures.length}):`);
    for (const failure of failures) console.log(`  - ${failure.split('\n')[0]}`);
    exitCode = 1;
  } else {
    console.log('');
    console.log('OK: all checks passed.');
  }
}
process.exit(exitCode);
