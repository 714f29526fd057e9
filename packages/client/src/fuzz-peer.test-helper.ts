import type { WebSocket } from 'ws';
import { decodeReference, type WireFrame } from '../../protocol/src/fuzz-wire.test-helper.js';

/*
 * Harness pieces for fuzz tests over real sockets: errors that escape to the process, a
 * recorder for one side of a WebSocket, and waits that end on events (with a deadline that
 * only bounds a hang).
 */

/** A guard, not a sync: every wait is for an event, and this only bounds a hang. */
export const DEADLINE_MS = 5_000;

/** Errors that reached the process (uncaught exceptions, unhandled rejections) since the last reset. */
export const escaped: unknown[] = [];
const wakers = new Set<() => void>();

function onEscape(error: unknown): void {
  escaped.push(error);
  for (const wake of wakers) wake();
}

/** Starts collecting escaped errors; returns the function that stops. */
export function watchEscapes(): () => void {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  return () => {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  };
}

/** An escaped error with the top of its stack, so a report names the line that threw. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return (error.stack ?? String(error)).split('\n').slice(0, 4).join(' | ');
}

/** Control messages as received (parsed JSON, not validated: the peer under test may be wrong). */
export interface ControlRecord {
  type?: string;
  code?: string;
  [key: string]: unknown;
}

/** One side of a WebSocket: records every message, pong and the close, and waits on them. */
export class PeerRecorder {
  readonly ws: WebSocket;
  readonly controls: ControlRecord[] = [];
  readonly frames: WireFrame[] = [];
  /** Binary messages from the peer that break the wire format: the peer under test is wrong. */
  readonly malformed: string[] = [];
  pongs = 0;
  closeCode: number | null = null;
  readonly #checks = new Set<() => void>();

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const decoded = decodeReference(data);
        if ('codes' in decoded) this.malformed.push(decoded.codes.join(', '));
        else this.frames.push(...decoded.frames);
      } else {
        try {
          this.controls.push(JSON.parse(data.toString('utf8')) as ControlRecord);
        } catch {
          this.malformed.push(`text that is not JSON: ${data.toString('utf8').slice(0, 80)}`);
        }
      }
      this.#wake();
    });
    ws.on('pong', () => {
      this.pongs += 1;
      this.#wake();
    });
    ws.on('close', (code: number) => {
      this.closeCode = code;
      this.#wake();
    });
    ws.on('error', () => undefined);
  }

  get isClosed(): boolean {
    return this.closeCode !== null;
  }

  /** Resolves once `ready()` holds; rejects if an error escaped or nothing happens in time. */
  until(ready: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (error: Error | null): void => {
        clearTimeout(timer);
        this.#checks.delete(check);
        wakers.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = (): void => {
        if (escaped.length > 0) finish(new Error(`an error escaped while waiting for ${what}: ${describeError(escaped[0])}`));
        else if (ready()) finish(null);
      };
      // finish() reads `timer` only once it is set: from the check below or from the timer itself.
      const timer = setTimeout(() => finish(new Error(`no ${what} within ${DEADLINE_MS} ms`)), DEADLINE_MS);
      this.#checks.add(check);
      wakers.add(check);
      check();
    });
  }

  #wake(): void {
    for (const check of [...this.#checks]) check();
  }
}

/**
 * Waits until `settled()` holds, checking once per turn of the event loop (then every few ms,
 * so a slow settle does not spin a core); throws `describe()` after the deadline.
 */
export async function waitUntil(settled: () => boolean, describe: () => string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  for (let turn = 0; !settled(); turn += 1) {
    if (Date.now() > deadline) throw new Error(describe());
    await new Promise((resolve) => (turn < 200 ? setImmediate(resolve) : setTimeout(resolve, 2)));
  }
}
