import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import {
  FrameType,
  FrameWriter,
  TunnelError,
  decodeFrames,
  encodeControlMessage,
  isTunnelError,
  parseControlMessage,
  startHeartbeat,
  type ErrorCode,
  type Heartbeat,
  type RequestHead,
} from '@tunnel/protocol';
import type { AccessPolicy } from './access.js';
import type { Logger } from './logger.js';
import type { Duplex } from 'node:stream';
import { RelayStream, type StreamHost } from './relay-stream.js';
import { UpgradeStream } from './upgrade-stream.js';

export interface AgentSessionOptions {
  name: string;
  url: string;
  /** The token grant this tunnel was opened with, or null on an open relay. */
  grantId: string | null;
  /** Who may use the public URL, or null for anyone. */
  access: AccessPolicy | null;
  pingIntervalMs: number;
  maxStreams: number;
  log: Logger;
}

/** Why a public request could not be given a stream. */
export type OpenRefusal = 'TOO_MANY_STREAMS' | 'RELAY_SHUTTING_DOWN' | 'AGENT_DISCONNECTED';

/**
 * One connected agent: its WebSocket, the streams open on it, and its heartbeat. The relay opens
 * every stream (ids count up from 1), so a frame for an id never opened is a protocol error,
 * while one for an id opened and since closed is a harmless race and is dropped.
 */
export class AgentSession {
  readonly name: string;
  readonly url: string;
  readonly grantId: string | null;
  readonly access: AccessPolicy | null;
  readonly frames: FrameWriter;
  readonly #ws: WebSocket;
  readonly #log: Logger;
  readonly #maxStreams: number;
  readonly #streams = new Map<number, RelayStream | UpgradeStream>();
  readonly #heartbeat: Heartbeat;
  readonly #streamHost: StreamHost;
  readonly #closeListeners: Array<() => void> = [];
  readonly #idleListeners: Array<() => void> = [];
  #lastStreamId = 0;
  #goingAway = false;
  #closed = false;
  /** The relay closed this session on purpose (shutdown, protocol error): no grace period. */
  #closedByRelay = false;
  /** The agent said goodbye (close code 1000): it is not coming back for its name. */
  #closedByAgent = false;

  constructor(ws: WebSocket, options: AgentSessionOptions) {
    this.#ws = ws;
    this.name = options.name;
    this.url = options.url;
    this.grantId = options.grantId;
    this.access = options.access;
    this.#log = options.log;
    this.#maxStreams = options.maxStreams;
    this.frames = new FrameWriter({
      send: (message, done) => ws.send(message, { binary: true }, done),
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    });
    this.#heartbeat = startHeartbeat(
      options.pingIntervalMs,
      () => ws.ping(),
      () => {
        this.#log.warn({ pingIntervalMs: options.pingIntervalMs }, 'agent stopped answering pings; dropping it');
        ws.terminate();
      },
    );
    this.#streamHost = {
      frames: this.frames,
      release: (streamId: number) => {
        this.#streams.delete(streamId);
        if (this.#streams.size === 0) this.#notifyIdle();
      },
    };
    ws.on('pong', () => this.#heartbeat.alive());
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason.toString()));
    ws.on('error', (error: Error) => this.#log.warn({ err: error }, 'agent connection error'));
  }

  /**
   * Whether the connection was lost rather than closed by either side on purpose: only then may
   * the agent come back to reclaim its name, so only then is the name held for it.
   */
  get lostAgent(): boolean {
    return this.#closed && !this.#closedByRelay && !this.#closedByAgent;
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Whether the session still takes new streams. */
  get isOpen(): boolean {
    return !this.#closed && !this.#goingAway;
  }

  /** Starts a stream for a public request, or says why it cannot. */
  openStream(req: IncomingMessage, res: ServerResponse, head: RequestHead): OpenRefusal | null {
    const refusal = this.#refusal();
    if (refusal) return refusal;
    const id = (this.#lastStreamId += 1);
    const stream = new RelayStream(id, req, res, this.#streamHost, this.#log);
    this.#streams.set(id, stream);
    stream.start(head);
    return null;
  }

  /** Starts a stream for a public upgrade request (its raw socket), or says why it cannot. */
  openUpgrade(socket: Duplex, early: Buffer, head: RequestHead & { upgrade: string }): OpenRefusal | null {
    const refusal = this.#refusal();
    if (refusal) return refusal;
    const id = (this.#lastStreamId += 1);
    const stream = new UpgradeStream(id, socket, early, head.upgrade, this.#streamHost, this.#log);
    this.#streams.set(id, stream);
    stream.start(head);
    return null;
  }

  #refusal(): OpenRefusal | null {
    if (this.#closed) return 'AGENT_DISCONNECTED';
    if (this.#goingAway) return 'RELAY_SHUTTING_DOWN';
    if (this.#streams.size >= this.#maxStreams) return 'TOO_MANY_STREAMS';
    return null;
  }

  /** Registers a callback for when the agent's connection is gone. */
  onClose(listener: () => void): void {
    if (this.#closed) listener();
    else this.#closeListeners.push(listener);
  }

  /** Resolves once no stream is open. */
  whenIdle(): Promise<void> {
    if (this.#streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleListeners.push(resolve));
  }

  /** Tells the agent the relay is stopping; open streams may finish, new ones are refused. */
  goAway(reason: string, deadlineMs: number): void {
    if (this.#closed || this.#goingAway) return;
    this.#goingAway = true;
    this.#ws.send(encodeControlMessage({ type: 'goaway', reason, deadlineMs }));
  }

  /** Closes the connection with a WebSocket close code; open streams fail. Safe to call twice. */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closedByRelay = true;
    this.frames.flush();
    this.#ws.close(code, reason.slice(0, 120));
    this.#teardown('AGENT_DISCONNECTED');
  }

  /** Sends an error message, then closes: for protocol violations by the agent. */
  closeWithError(error: TunnelError): void {
    if (this.#closed) return;
    this.#log.warn({ code: error.code, reason: error.message }, 'closing agent session after a protocol error');
    this.#ws.send(encodeControlMessage({ type: 'error', code: error.code, message: error.message }));
    this.close(1002, error.message);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.#heartbeat.alive();
    try {
      if (!isBinary) return this.#onControl(data.toString('utf8'));
      for (const frame of decodeFrames(data)) {
        const stream = this.#streams.get(frame.streamId);
        if (stream) {
          stream.onFrame(frame);
        } else if (frame.streamId > this.#lastStreamId) {
          throw new TunnelError('STREAM_UNKNOWN', `The agent sent a frame for stream ${frame.streamId}, which the relay never opened.`);
        } else if (frame.type === FrameType.OPEN) {
          throw new TunnelError('FRAME_OUT_OF_ORDER', 'Agents may not open streams.');
        }
      }
    } catch (error) {
      // Whatever this agent sent, it may end only its own session, never the relay.
      if (!isTunnelError(error)) this.#log.error({ err: error }, 'unexpected error handling an agent message');
      this.closeWithError(isTunnelError(error) ? error : new TunnelError('INTERNAL', 'The relay could not handle a message from the agent.'));
    }
  }

  #onControl(text: string): void {
    const message = parseControlMessage(text);
    if (message.type === 'error') {
      this.#log.warn({ code: message.code, reason: message.message }, 'agent reported an error');
      this.close(1000, 'agent reported an error');
      return;
    }
    throw new TunnelError('MESSAGE_INVALID', `An agent may not send "${message.type}" after hello.`);
  }

  #onClose(code: number, reason: string): void {
    if (code === 1000) this.#closedByAgent = true;
    if (!this.#closed) this.#log.info({ code, reason }, 'agent disconnected');
    this.#teardown('AGENT_DISCONNECTED');
  }

  #teardown(code: ErrorCode): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#heartbeat.stop();
    this.frames.close(new TunnelError(code));
    for (const stream of [...this.#streams.values()]) stream.fail(code);
    this.#streams.clear();
    this.#notifyIdle();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  #notifyIdle(): void {
    for (const listener of this.#idleListeners.splice(0)) listener();
  }
}
