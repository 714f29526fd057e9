import { Agent, request } from 'node:http';

/** What a bounded load run saw. */
export interface LoadResult {
  statuses: Record<number, number>;
  errors: string[];
  elapsedMs: number;
}

/**
 * Sends `total` GETs to a tunnel URL over `concurrency` keep-alive connections and stops by
 * itself: after `total` requests, or after `maxMs`, whichever comes first.
 */
export async function runLoad(url: URL, total: number, concurrency: number, maxMs = 60_000, path = '/'): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: Record<number, number> = {};
  const errors: string[] = [];
  const started = performance.now();
  let issued = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: url.port, path, agent, headers: { host: url.host } }, (res) => {
        res.resume();
        res.on('end', () => {
          statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
          resolve();
        });
        res.on('error', (error) => {
          errors.push(error.message);
          resolve();
        });
      });
      req.on('error', (error) => {
        errors.push(error.message);
        resolve();
      });
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (issued < total && performance.now() - started < maxMs) {
      issued += 1;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return { statuses, errors, elapsedMs: performance.now() - started };
}

/** Counts sockets in TIME_WAIT toward `port` on this machine (`ss`, from iproute2). */
export async function timeWaitToward(port: number): Promise<number> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('ss', ['-Htan', 'state', 'time-wait', `( dport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim().length > 0).length;
}
