import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AgentSession } from './agent-session.js';

/** A name kept for an agent that lost its connection, until it returns or the grace ends. */
interface Reservation {
  resumeDigest: Buffer;
  grantId: string | null;
  cancelExpiry: () => void;
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** A new resume secret: 256 random bits, URL-safe. */
export function newResumeSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Tunnel name → live session, and names held for agents that are reconnecting. Bookkeeping
 * only: the one timer per reservation is its expiry, and it never keeps the process alive.
 */
export class Registry {
  readonly #sessions = new Map<string, AgentSession>();
  readonly #reserved = new Map<string, Reservation>();

  /** The session holding `name`, if any. */
  get(name: string): AgentSession | undefined {
    return this.#sessions.get(name);
  }

  /** Whether `name` is held: by a live session, or for a reconnecting agent. */
  has(name: string): boolean {
    return this.#sessions.has(name) || this.#reserved.has(name);
  }

  /** Whether `name` is held for an agent that is reconnecting. */
  isReconnecting(name: string): boolean {
    return this.#reserved.has(name);
  }

  /**
   * Whether `secret` reclaims the reserved `name` for `grantId` (the same token, or both
   * none). Compared in constant time. A match ends the reservation.
   */
  reclaim(name: string, secret: string | undefined, grantId: string | null): boolean {
    const reservation = this.#reserved.get(name);
    if (!reservation || secret === undefined) return false;
    const matches = timingSafeEqual(reservation.resumeDigest, digest(secret)) && reservation.grantId === grantId;
    if (!matches) return false;
    reservation.cancelExpiry();
    this.#reserved.delete(name);
    return true;
  }

  /** Binds `name` to `session`; the caller checked it was free (or reclaimed). */
  add(name: string, session: AgentSession): void {
    this.#sessions.set(name, session);
  }

  /**
   * Unbinds `name` from `session` (never from a newer holder). With a grace period, the name
   * stays reserved for whoever shows `resumeSecret` until it ends.
   */
  remove(name: string, session: AgentSession, keep: { resumeSecret: string; graceMs: number } | null): void {
    if (this.#sessions.get(name) !== session) return;
    this.#sessions.delete(name);
    if (!keep || keep.graceMs <= 0) return;
    const timer = setTimeout(() => this.#reserved.delete(name), keep.graceMs);
    timer.unref();
    this.#reserved.set(name, { resumeDigest: digest(keep.resumeSecret), grantId: session.grantId, cancelExpiry: () => clearTimeout(timer) });
  }

  /** Live tunnels opened with the grant `grantId`. */
  countFor(grantId: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) if (session.grantId === grantId) count += 1;
    return count;
  }

  /** Every live session. */
  sessions(): AgentSession[] {
    return [...this.#sessions.values()];
  }

  /** How many tunnels are online. */
  get size(): number {
    return this.#sessions.size;
  }

  /** How many names are held for reconnecting agents. */
  get reconnecting(): number {
    return this.#reserved.size;
  }

  /** Drops every reservation and its timer (relay shutdown). */
  clear(): void {
    for (const reservation of this.#reserved.values()) reservation.cancelExpiry();
    this.#reserved.clear();
  }
}
