import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** One request's outcome as the probe process saw it. */
export interface TimedResponse {
  status: number;
  body: string;
  ms: number;
}

const SCRIPT = fileURLToPath(new URL('./timed-requests.mjs', import.meta.url));

export interface TimedRequestOptions {
  accept?: string;
  /** Pause between requests. */
  gapMs?: number;
  /** A new connection for each request instead of one kept alive. */
  fresh?: boolean;
}

/** Times `count` sequential GETs to a tunnel URL from a separate, quiet process. */
export function timedRequests(url: URL, count: number, options: TimedRequestOptions = {}): Promise<TimedResponse[]> {
  const { accept = 'application/json', gapMs = 0, fresh = false } = options;
  const args = [SCRIPT, url.port || '80', url.host, String(count), accept, String(gapMs), fresh ? '1' : '0'];
  const timeoutMs = 30_000 + count * gapMs;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: timeoutMs }, (error, stdout) => {
      if (error) reject(new Error(`the timing probe failed: ${error.message}`, { cause: error }));
      else resolve(JSON.parse(stdout) as TimedResponse[]);
    });
  });
}
