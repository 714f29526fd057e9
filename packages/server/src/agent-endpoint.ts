import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  MAX_MESSAGE_BYTES,
  TunnelError,
  checkProtocolVersion,
  encodeControlMessage,
  isTunnelError,
  parseControlMessage,
  type Hello,
} from '@tunnel/protocol';
import { AccessPolicy } from './access.js';
import { AgentSession } from './agent-session.js';
import type { Logger } from './logger.js';
import { randomName } from './names.js';
import { newResumeSecret, type Registry } from './registry.js';
import type { Grant, TokenPolicy } from './tokens.js';

export interface AgentEndpointOptions {
  registry: Registry;
  log: Logger;
  helloTimeoutMs: number;
  pingIntervalMs: number;
  maxStreamsPerTunnel: number;
  /** Who may connect; null is an open relay (anyone, any free name). */
  tokens: TokenPolicy | null;
  /** Names no agent may take, beyond the built-in ones. */
  reservedNames: readonly string[];
  /** How long a lost agent's name is kept for it to reclaim; 0 frees it at once. */
  resumeGraceMs: number;
  /** The public URL of a tunnel name, e.g. `http://name.localhost:7070`. */
  urlFor(name: string): string;
}

/** Names no agent may take: they would shadow hosts people expect to be the operator's. */
const BUILT_IN_RESERVED = ['www', 'api', 'admin', 'mail', 'relay', 'tunnel', 'status', 'dashboard'];

/** WebSocket close code for a hello the relay refuses (application range 4000-4999). */
export const CLOSE_REFUSED = 4000;

/**
 * The agents' door: upgrades `/_tunnel` requests, waits for a hello, checks its version and name,
 * answers with the public URL, and hands the connection to an AgentSession.
 */
export class AgentEndpoint {
  readonly #options: AgentEndpointOptions;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });
  readonly #pending = new Set<WebSocket>();
  readonly #reserved: ReadonlySet<string>;

  constructor(options: AgentEndpointOptions) {
    this.#options = options;
    this.#reserved = new Set([...BUILT_IN_RESERVED, ...options.reservedNames]);
  }

  /** Completes the WebSocket handshake for an agent and starts waiting for its hello. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, req));
  }

  /** Closes connections that have not said hello yet. */
  closePending(): void {
    for (const ws of this.#pending) ws.terminate();
    this.#pending.clear();
  }

  #onConnection(ws: WebSocket, req: IncomingMessage): void {
    const log = this.#options.log.child({ agent: req.socket.remoteAddress });
    this.#pending.add(ws);
    const timer = setTimeout(() => this.#refuse(ws, new TunnelError('HELLO_TIMEOUT'), log), this.#options.helloTimeoutMs);
    ws.on('error', (error: Error) => log.debug({ err: error }, 'agent connection error before hello'));
    ws.once('close', () => {
      clearTimeout(timer);
      this.#pending.delete(ws);
    });
    ws.once('message', (data: Buffer, isBinary: boolean) => {
      clearTimeout(timer);
      this.#pending.delete(ws);
      try {
        if (isBinary) throw new TunnelError('MESSAGE_INVALID', 'The first message must be a text hello.');
        const message = parseControlMessage(data.toString('utf8'));
        if (message.type !== 'hello') throw new TunnelError('MESSAGE_INVALID', `Expected hello, got "${message.type}".`);
        this.#accept(ws, message, log);
      } catch (error) {
        if (!isTunnelError(error)) throw error;
        this.#refuse(ws, error, log);
      }
    });
  }

  #accept(ws: WebSocket, hello: Hello, log: Logger): void {
    checkProtocolVersion(hello.protocol);
    const { registry, pingIntervalMs, maxStreamsPerTunnel, tokens, resumeGraceMs } = this.#options;
    const grant = this.#authorize(hello.token);
    if (grant && registry.countFor(grant.id) >= grant.maxTunnels) {
      throw new TunnelError('TUNNEL_LIMIT', `This token already has ${grant.maxTunnels} tunnels open, its limit; close one first.`);
    }
    const name = this.#chooseName(hello, grant);
    const url = this.#options.urlFor(name);
    const grantId = grant?.id ?? null;
    const sessionLog = log.child({ tunnel: name, ...(tokens ? { grant: grantId } : {}) });
    const maxStreams = Math.min(maxStreamsPerTunnel, grant?.maxStreams ?? maxStreamsPerTunnel);
    const access = hello.access ? new AccessPolicy(hello.access) : null;
    const session = new AgentSession(ws, { name, url, grantId, access, pingIntervalMs, maxStreams, log: sessionLog });
    const resume = newResumeSecret();
    registry.add(name, session);
    session.onClose(() => registry.remove(name, session, session.lostAgent ? { resumeSecret: resume, graceMs: resumeGraceMs } : null));
    ws.send(encodeControlMessage({ type: 'ready', name, url, resume }));
    sessionLog.info({ url, clientVersion: hello.clientVersion }, 'tunnel online');
  }

  /** The token's grant; on an open relay, none is needed and null is returned. */
  #authorize(token: string | undefined): Grant | null {
    const { tokens } = this.#options;
    if (!tokens) return null;
    const grant = tokens.authorize(token);
    if (!grant) {
      throw new TunnelError('AUTH_FAILED', token === undefined
        ? 'This relay needs a token; pass it with --token or TUNNEL_TOKEN.'
        : 'The relay refused the token; check --token or TUNNEL_TOKEN.');
    }
    return grant;
  }

  #chooseName(hello: Hello, grant: Grant | null): string {
    const { registry, tokens } = this.#options;
    const requested = hello.subdomain;
    if (requested === undefined) return this.#randomName(grant);
    if (this.#reserved.has(requested)) {
      throw new TunnelError('SUBDOMAIN_RESERVED', `"${requested}" is reserved by the relay; choose another with --subdomain.`);
    }
    if (grant && tokens && !tokens.mayHold(grant, requested)) {
      throw new TunnelError('SUBDOMAIN_TAKEN', `"${requested}" belongs to another token on this relay; choose another with --subdomain.`);
    }
    if (registry.reclaim(requested, hello.resume, grant?.id ?? null)) return requested;
    if (registry.has(requested)) {
      throw new TunnelError('SUBDOMAIN_TAKEN', `"${requested}" is in use by another tunnel; choose another with --subdomain.`);
    }
    return requested;
  }

  /** A random free name the grant may hold: any, or under one of its prefixes. */
  #randomName(grant: Grant | null): string {
    const { registry, tokens } = this.#options;
    const patterns = grant ? grant.names : ['*'];
    const prefix = patterns.includes('*') ? '' : patterns.find((pattern) => pattern.endsWith('-*'))?.slice(0, -1);
    if (prefix === undefined) {
      const exact = patterns.find((name) => !registry.has(name) && !this.#reserved.has(name));
      if (exact) return exact;
      throw new TunnelError('SUBDOMAIN_TAKEN', 'Every name this token may hold is in use; close a tunnel or pass another --subdomain.');
    }
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const name = `${prefix}${randomName()}`.slice(0, 63).replace(/-+$/, '');
      if (!registry.has(name) && !this.#reserved.has(name) && (!grant || !tokens || tokens.mayHold(grant, name))) return name;
    }
    throw new TunnelError('INTERNAL', 'No free random name was found; try again.');
  }

  #refuse(ws: WebSocket, error: TunnelError, log: Logger): void {
    log.info({ code: error.code, reason: error.message }, 'agent refused');
    if (ws.readyState === ws.OPEN) {
      ws.send(encodeControlMessage({ type: 'error', code: error.code, message: error.message }));
      ws.close(CLOSE_REFUSED, error.code);
    } else {
      ws.terminate();
    }
  }
}
