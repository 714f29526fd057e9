import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { eventually, freePort } from './ports.js';

/** A real nginx from Debian, serving a small body, logging each request's connection number. */
export interface Nginx {
  port: number;
  /** Distinct TCP connections nginx accepted, read from its access log. */
  connectionsSeen(): number;
  requestsSeen(): number;
}

/** Starts nginx in the foreground on a free port with `keepalive_requests`; stopped when the test ends. */
export async function startNginx(keepaliveRequests: number): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'tunnel-nginx-'));
  const port = await freePort();
  const log = join(dir, 'access.log');
  writeFileSync(join(dir, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  log_format conn '$connection $connection_requests $status';
  access_log ${log} conn;
  keepalive_requests ${keepaliveRequests};
  keepalive_timeout 65s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / { return 200 "hello from nginx\\n"; }
  }
}
`);
  writeFileSync(log, '');
  const child = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  onTestFinished(async () => {
    child.kill('SIGQUIT');
    await exited;
  });
  const up = await eventually(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/`);
    return response.ok;
  }, 40, 100);
  if (!up) throw new Error(`nginx did not start; see ${dir}/error.log`);
  const lines = (): string[] => readFileSync(log, 'utf8').split('\n').filter(Boolean);
  const warmup = lines().length;
  return {
    port,
    connectionsSeen: () => new Set(lines().slice(warmup).map((line) => line.split(' ')[0])).size,
    requestsSeen: () => lines().length - warmup,
  };
}
