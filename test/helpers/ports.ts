import { createServer } from 'node:net';

/** A port that was free a moment ago on 127.0.0.1 (for tests that must restart on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `check` every `intervalMs` until it returns true, at most `attempts` times. */
export async function eventually(check: () => Promise<boolean>, attempts = 60, intervalMs = 250): Promise<boolean> {
  for (let i = 0; i < attempts; i += 1) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return false;
}
