import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { onTestFinished } from 'vitest';

/** A local service in its own process, so a test can kill it the way a crash would. */
export interface LocalProcess {
  child: ChildProcess;
  kill(): Promise<void>;
}

const SERVER_SOURCE = `
const http = require('node:http');
const server = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('up')); });
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

/** Starts a tiny keep-alive HTTP server on `port` in a child process and waits until it listens. */
export async function startLocalProcess(port: number): Promise<LocalProcess> {
  const child = spawn(process.execPath, ['-e', SERVER_SOURCE, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  await once(child.stdout, 'data');
  return {
    child,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
