import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { LocalTls } from './pool/dialer.js';
import { LocalPool, type PoolOptions } from './pool/local-pool.js';
import type { PoolFigures } from './pool/stats.js';

/**
 * The seam between the tunnel and the local service: dispatch a request the undici way, read
 * the figures, close. Implemented by LocalPool.
 */
export interface Upstream {
  /** `host:port`, for messages a person reads. */
  readonly label: string;
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void;
  figures(): PoolFigures;
  /** Sends a health probe through the pool; see LocalPool.probe. */
  probe(path: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Everything that decides which sockets may be shared: one pool per distinct key. */
export function poolKey(host: string, port: number, tls: LocalTls | null): string {
  if (!tls) return `http://${host}:${port}`;
  const ca = tls.ca === undefined ? 'system' : createHash('sha256').update(tls.ca).digest('hex').slice(0, 16);
  return `https://${host}:${port}#sni=${tls.servername ?? ''}&ca=${ca}&verify=${tls.rejectUnauthorized}`;
}

/**
 * Pools shared within a process, keyed by target and TLS settings (SNI name, CA, verification),
 * so sockets made for one SNI name are never used for another, and are reused within it.
 * A pool lives as long as someone holds it.
 */
export class PoolRegistry {
  readonly #pools = new Map<string, { pool: LocalPool; holders: number }>();

  /** Returns the pool for these options, creating it on first use. */
  acquire(options: PoolOptions): Upstream {
    const key = poolKey(options.host, options.port, options.tls);
    let entry = this.#pools.get(key);
    if (!entry) {
      entry = { pool: new LocalPool(options), holders: 0 };
      this.#pools.set(key, entry);
    }
    entry.holders += 1;
    const held = entry;
    let released = false;
    return {
      label: held.pool.label,
      dispatch: (dispatchOptions, handler) => held.pool.dispatch(dispatchOptions, handler),
      figures: () => held.pool.figures(),
      probe: (path) => held.pool.probe(path),
      close: async () => {
        if (released) return;
        released = true;
        held.holders -= 1;
        if (held.holders > 0) return;
        this.#pools.delete(key);
        await held.pool.close();
      },
    };
  }

  /** How many distinct pools are open. */
  get size(): number {
    return this.#pools.size;
  }
}

/** The registry the agent's tunnels share unless a caller brings its own. */
export const sharedPools = new PoolRegistry();

export type { PoolOptions, PoolFigures, LocalTls, Logger };
