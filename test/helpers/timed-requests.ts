import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** One request's outcome as the probe process saw it. */
export interface TimedResponse {
  status: number;
  body: string;
  ms: number;
}

const SCRIPT = fileURLToPath(new URL('./timed-requests.mjs', import.meta.url));

/** Times `count` sequential keep-alive GETs to a tunnel URL from a separate, quiet process. */
export function timedRequests(url: URL, count: number, accept = 'application/json'): Promise<TimedResponse[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SCRIPT, url.port || '80', url.host, String(count), accept], { timeout: 30_000 }, (error, stdout) => {
      if (error) reject(new Error(`the timing probe failed: ${error.message}`, { cause: error }));
      else resolve(JSON.parse(stdout) as TimedResponse[]);
    });
  });
}
