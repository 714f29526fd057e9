import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TUNNEL_BIN = `${ROOT}packages/client/bin/tunnel.js`;
export const RELAY_BIN = `${ROOT}packages/server/bin/tunnel-server.js`;
const EXIT_WITH_PARENT = new URL('./exit-with-parent.mjs', import.meta.url).href;

/** A CLI started by a test, with its first stdout line and everything it wrote to stderr. */
export interface RunningProcess {
  child: ChildProcess;
  firstLine: string;
  stderr(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** The outcome of a CLI run to completion. */
export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function spawnCli(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', EXIT_WITH_PARENT, bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TUNNEL_SERVER: '', TUNNEL_TOKEN: '', LOG_LEVEL: '', ...env },
  });
}

/**
 * Starts a CLI and resolves with its first stdout line (its URL). The process is killed by PID
 * when the test finishes, if it is still running.
 */
export async function startCli(
  bin: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  cleanup: (fn: () => Promise<void>) => void = onTestFinished,
): Promise<RunningProcess> {
  const child = spawnCli(bin, args, env);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const lines = createInterface({ input: child.stdout! });
  const firstLine = await Promise.race([
    once(lines, 'line').then(([line]) => line as string),
    exited.then((code) => {
      throw new Error(`${bin} exited with ${code} before printing a line; stderr:\n${stderr}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${bin} printed nothing in 15 s; stderr:\n${stderr}`)), 15_000).unref()),
  ]);
  lines.on('line', () => undefined);
  return {
    child,
    firstLine,
    stderr: () => stderr,
    exited,
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
  };
}

/** Runs a CLI to completion (bounded by `timeoutMs`) and returns its exit code and output. */
export async function runCli(bin: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 15_000): Promise<ProcessResult> {
  const child = spawnCli(bin, args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Starts `tunnel-server` on a free port (or the given args) and returns it with its base URL. */
export async function startRelayProcess(
  args: string[] = ['--port', '0'],
  cleanup?: (fn: () => Promise<void>) => void,
): Promise<RunningProcess & { url: URL }> {
  const proc = await startCli(RELAY_BIN, [...args, '--log-level', 'warn'], undefined, cleanup);
  return { ...proc, url: new URL(proc.firstLine) };
}

/** The JSON log lines a process wrote to stderr with message `msg`. */
export function logLines(stderr: string, msg: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === msg);
}

/**
 * Sends SIGUSR2 to a CLI started with `--log-level info` and returns the status line it logs
 * (`pool figures` for the agent, `relay status` for the relay).
 */
export async function statusLine(proc: RunningProcess, msg: string): Promise<Record<string, unknown>> {
  const before = logLines(proc.stderr(), msg).length;
  proc.kill('SIGUSR2');
  for (let i = 0; i < 200; i += 1) {
    const lines = logLines(proc.stderr(), msg);
    if (lines.length > before) return lines[before]!;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no "${msg}" line was logged after SIGUSR2`);
}

/** Asks a running agent for its pool figures (SIGUSR2). */
export async function poolFigures(agent: RunningProcess): Promise<Record<string, number | string>> {
  return (await statusLine(agent, 'pool figures')).pool as Record<string, number | string>;
}

/** Starts `tunnel` and returns it with its public URL. */
export async function startAgentProcess(
  args: string[],
  cleanup?: (fn: () => Promise<void>) => void,
): Promise<RunningProcess & { url: URL }> {
  const level = args.includes('--log-level') ? [] : ['--log-level', 'warn'];
  const proc = await startCli(TUNNEL_BIN, [...args, ...level], undefined, cleanup);
  return { ...proc, url: new URL(proc.firstLine) };
}
