// Sends sequential GETs, `gapMs` apart, over one keep-alive connection (or a new connection
// each when `fresh` is 1), and prints each one's status, body and time as JSON. It runs in its
// own small process so that the figures measure the tunnel, not garbage collection or other
// work in the test runner's worker.
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const [port, host, count, accept, gapMs, fresh] = process.argv.slice(2);
const agent = new Agent({ keepAlive: fresh !== '1', maxSockets: 1 });

function once() {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ host: '127.0.0.1', port: Number(port), path: '/', agent, headers: { host, accept } }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const results = [];
for (let i = 0; i < Number(count); i += 1) {
  if (i > 0 && Number(gapMs) > 0) await sleep(Number(gapMs));
  results.push(await once());
}
agent.destroy();
process.stdout.write(`${JSON.stringify(results)}\n`);
