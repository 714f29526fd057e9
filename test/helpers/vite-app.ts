import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'vite';
import { onTestFinished } from 'vitest';

/** A Vite dev server over a throwaway project, standing in for a developer's front-end app. */
export interface ViteApp {
  root: string;
  port: number;
  /** Replaces a file in the project, as an editor would; Vite's watcher picks it up. */
  write(name: string, content: string): Promise<void>;
}

/**
 * Writes `files` into a fresh temp dir and serves it with Vite on 127.0.0.1. Vite, its watcher,
 * its HMR WebSocket and the dir are all removed when the test ends.
 */
export async function startViteApp(files: Record<string, string>): Promise<ViteApp> {
  const root = await mkdtemp(join(tmpdir(), 'tunnel-vite-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) await writeFile(join(root, name), content);

  const server = await createServer({
    root,
    configFile: false,
    logLevel: 'silent',
    clearScreen: false,
    // Reached through the tunnel, requests carry the tunnel's Host header, which Vite refuses
    // by default. The HMR client is left alone: it dials the page's own host and port, which
    // is the tunnel, so its WebSocket goes through the relay too.
    server: { host: '127.0.0.1', port: 0, strictPort: true, allowedHosts: true },
  });
  onTestFinished(() => server.close());
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') throw new Error('Vite is not listening on a TCP port');
  return { root, port: address.port, write: (name, content) => writeFile(join(root, name), content) };
}
