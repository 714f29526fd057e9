import { readFileSync, readdirSync } from 'node:fs';
import { RELAY_BIN, startCli, type RunningProcess } from './processes.js';

/** What `tunnel-server` logs on SIGUSR2 ('relay status'). */
export interface RelayStatus {
  relay: { tunnels: number; reconnecting: number; streams: number; publicConnections: number };
  /** process.getActiveResourcesInfo() counts by kind: Timeout, TCPSocketWrap, … */
  resources: Record<string, number>;
}

/** What `tunnel` logs on SIGUSR2 ('pool figures'). */
export interface AgentStatus {
  pool: { idle: number; active: number; dialing: number; waiting: number } & Record<string, unknown>;
  /** Streams open on the agent's relay connection. */
  streams: number;
  resources: Record<string, number>;
}

/**
 * Starts `tunnel-server` logging at info, so it answers SIGUSR2 with a 'relay status' line
 * (startRelayProcess turns logging down to warn). Killed when the test finishes.
 */
export async function startRelayWithStatus(args: string[] = ['--port', '0']): Promise<RunningProcess & { url: URL }> {
  const proc = await startCli(RELAY_BIN, [...args, '--log-level', 'info']);
  return { ...proc, url: new URL(proc.firstLine) };
}

/**
 * Sends SIGUSR2 and returns the next log line with message `msg` written after it. Only the
 * stderr written since the signal is scanned, so this stays cheap for chatty processes.
 */
async function askForLine(proc: RunningProcess, msg: string): Promise<Record<string, unknown>> {
  const from = proc.stderr().length;
  const marker = `"msg":"${msg}"`;
  proc.kill('SIGUSR2');
  for (let attempt = 0; attempt < 300; attempt += 1) {
    const fresh = proc.stderr().slice(from);
    const line = fresh.split('\n').find((candidate) => candidate.startsWith('{') && candidate.includes(marker) && candidate.endsWith('}'));
    if (line) return JSON.parse(line) as Record<string, unknown>;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no '${msg}' line within 3 s of SIGUSR2; is the process logging at info?`);
}

/** The relay's status line; the relay must log at info (see startRelayWithStatus). */
export async function relayStatus(relay: RunningProcess): Promise<RelayStatus> {
  return (await askForLine(relay, 'relay status')) as unknown as RelayStatus;
}

/** The agent's status line; the agent must run with `--log-level info`. */
export async function agentStatus(agent: RunningProcess): Promise<AgentStatus> {
  return (await askForLine(agent, 'pool figures')) as unknown as AgentStatus;
}

/** Resident set size of a process in KiB, from /proc/<pid>/status (Linux). */
export function residentKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/**
 * Open file descriptors of a process (Linux, our own children). Unlike the `resources` counts,
 * this sees every socket: undici unrefs a socket between requests, and an unref'd handle is
 * missing from process.getActiveResourcesInfo().
 */
export function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** How many log lines at warn or above a process wrote, by message. */
export function warningsByMessage(stderr: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { level?: number; msg?: string };
    if ((entry.level ?? 0) >= 40) counts[entry.msg ?? '(no msg)'] = (counts[entry.msg ?? '(no msg)'] ?? 0) + 1;
  }
  return counts;
}

/**
 * Polls `read` until `isSettled` holds for what it returned, up to `timeoutMs`; returns the last
 * reading either way, so the caller's assertion shows the figures that failed.
 */
export async function settle<T>(read: () => Promise<T>, isSettled: (value: T) => boolean, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let value = await read();
  while (!isSettled(value) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    value = await read();
  }
  return value;
}
