import type { AgentSession } from './agent-session.js';

/** Tunnel name → live session. Pure bookkeeping, no I/O. */
export class Registry {
  readonly #sessions = new Map<string, AgentSession>();

  /** The session holding `name`, if any. */
  get(name: string): AgentSession | undefined {
    return this.#sessions.get(name);
  }

  /** Whether `name` is held by a live session. */
  has(name: string): boolean {
    return this.#sessions.has(name);
  }

  /** Binds `name` to `session`; the caller checked it was free. */
  add(name: string, session: AgentSession): void {
    this.#sessions.set(name, session);
  }

  /** Unbinds `name`, but only from `session`, so a late close never evicts a newer holder. */
  remove(name: string, session: AgentSession): void {
    if (this.#sessions.get(name) === session) this.#sessions.delete(name);
  }

  /** Every live session. */
  sessions(): AgentSession[] {
    return [...this.#sessions.values()];
  }

  /** How many tunnels are online. */
  get size(): number {
    return this.#sessions.size;
  }
}
