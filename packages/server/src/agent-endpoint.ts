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
import { AgentSession } from './agent-session.js';
import type { Logger } from './logger.js';
import { randomName } from './names.js';
import type { Registry } from './registry.js';

export interface AgentEndpointOptions {
  registry: Registry;
  log: Logger;
  helloTimeoutMs: number;
  pingIntervalMs: number;
  maxStreamsPerTunnel: number;
  /** The public URL of a tunnel name, e.g. `http://name.localhost:7070`. */
  urlFor(name: string): string;
}

/** Names no agent may take: they would shadow the relay's own hosts. */
const RESERVED = new Set(['www', 'api', 'admin', 'mail', 'relay', 'tunnel']);

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

  constructor(options: AgentEndpointOptions) {
    this.#options = options;
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
    const name = this.#chooseName(hello.subdomain);
    const { registry, urlFor, pingIntervalMs, maxStreamsPerTunnel } = this.#options;
    const url = urlFor(name);
    const sessionLog = log.child({ tunnel: name });
    const session = new AgentSession(ws, { name, url, pingIntervalMs, maxStreams: maxStreamsPerTunnel, log: sessionLog });
    registry.add(name, session);
    session.onClose(() => registry.remove(name, session));
    ws.send(encodeControlMessage({ type: 'ready', name, url }));
    sessionLog.info({ url, clientVersion: hello.clientVersion }, 'tunnel online');
  }

  #chooseName(requested: string | undefined): string {
    const { registry } = this.#options;
    if (requested === undefined) {
      let name = randomName();
      while (registry.has(name)) name = randomName();
      return name;
    }
    if (RESERVED.has(requested)) {
      throw new TunnelError('SUBDOMAIN_RESERVED', `"${requested}" is reserved by the relay; choose another with --subdomain.`);
    }
    if (registry.has(requested)) {
      throw new TunnelError('SUBDOMAIN_TAKEN', `"${requested}" is in use by another tunnel; choose another with --subdomain.`);
    }
    return requested;
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
