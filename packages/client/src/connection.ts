import { WebSocket } from 'ws';
import {
  FrameType,
  FrameWriter,
  MAX_MESSAGE_BYTES,
  RequestHead,
  TunnelError,
  decodeFrames,
  decodeJsonPayload,
  encodeControlMessage,
  isTunnelError,
  parseControlMessage,
  startHeartbeat,
  type Heartbeat,
  type Hello,
  type Ready,
} from '@tunnel/protocol';
import type { Logger } from 'pino';
import { AgentStream, type StreamHost } from './forwarder.js';
import type { Upstream } from './upstream.js';

export interface ConnectionOptions {
  /** The relay's agent endpoint, `ws(s)://host:port/_tunnel`. */
  url: string;
  hello: Hello;
  upstream: Upstream;
  log: Logger;
  pingIntervalMs: number;
  handshakeTimeoutMs: number;
}

/**
 * Client-to-server masking (RFC 6455 §5.3) guards against proxies in the path that mistake
 * frame bytes for HTTP. On loopback, and inside TLS, no such proxy can read the stream, so an
 * all-zero mask is used there: ws then skips the XOR on both ends, a large share of the CPU.
 */
function needsMasking(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'wss:') return false;
  return !(hostname === 'localhost' || hostname === '[::1]' || hostname.startsWith('127.'));
}

function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** How a connection ended. */
export interface ConnectionEnd {
  code: number;
  reason: string;
  /** The relay said goaway before closing. */
  wentAway: boolean;
}

/**
 * One WebSocket to the relay: hello, then frames. Every stream the relay opens is replayed
 * against the local service. Opening resolves on `ready`, or rejects with the relay's refusal
 * (a TunnelError with the relay's code) or RELAY_UNREACHABLE.
 */
export class RelayConnection {
  readonly ready: Ready;
  /** Resolves once the connection is gone. */
  readonly ended: Promise<ConnectionEnd>;
  readonly #ws: WebSocket;
  readonly #log: Logger;
  readonly #upstream: Upstream;
  readonly #frames: FrameWriter;
  readonly #streams = new Map<number, AgentStream>();
  readonly #heartbeat: Heartbeat;
  readonly #streamHost: StreamHost;
  #lastStreamId = 0;
  #wentAway = false;
  #closed = false;

  private constructor(ws: WebSocket, ready: Ready, options: ConnectionOptions) {
    this.#ws = ws;
    this.ready = ready;
    this.#log = options.log;
    this.#upstream = options.upstream;
    this.#frames = new FrameWriter({
      send: (message, done) => ws.send(message, { binary: true }, done),
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    });
    this.#streamHost = { frames: this.#frames, release: (id) => this.#streams.delete(id) };
    this.#heartbeat = startHeartbeat(
      options.pingIntervalMs,
      () => ws.ping(),
      () => {
        this.#log.warn({ pingIntervalMs: options.pingIntervalMs }, 'relay stopped answering pings; reconnecting');
        ws.terminate();
      },
    );
    ws.on('pong', () => this.#heartbeat.alive());
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    this.ended = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        this.#teardown();
        resolve({ code, reason: reason.toString(), wentAway: this.#wentAway });
      });
    });
  }

  /** Dials the relay, says hello and waits for the assigned URL. */
  static open(options: ConnectionOptions): Promise<RelayConnection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(options.url, {
        maxPayload: MAX_MESSAGE_BYTES,
        perMessageDeflate: false,
        handshakeTimeout: options.handshakeTimeoutMs,
        ...(needsMasking(options.url) ? {} : { generateMask: zeroMask }),
      });
      let refusal: TunnelError | null = null;
      const fail = (error: TunnelError): void => {
        ws.removeAllListeners('message');
        ws.terminate();
        reject(error);
      };
      ws.on('error', (error: Error) => {
        refusal ??= new TunnelError('RELAY_UNREACHABLE', `Cannot reach the relay at ${options.url}: ${error.message}`, { cause: error });
      });
      ws.once('open', () => ws.send(encodeControlMessage(options.hello)));
      ws.once('close', () => reject(refusal ?? new TunnelError('RELAY_UNREACHABLE', `The relay at ${options.url} closed the connection before accepting it.`)));
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        try {
          if (isBinary) throw new TunnelError('MESSAGE_INVALID', 'The relay sent frames before ready.');
          const message = parseControlMessage(data.toString('utf8'));
          if (message.type === 'error') {
            refusal = new TunnelError(message.code, message.message);
            return;
          }
          if (message.type !== 'ready') throw new TunnelError('MESSAGE_INVALID', `Expected ready, got "${message.type}".`);
          ws.removeAllListeners('close');
          resolve(new RelayConnection(ws, message, options));
        } catch (error) {
          fail(isTunnelError(error) ? error : new TunnelError('INTERNAL', String(error)));
        }
      });
    });
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Closes the connection; open streams are aborted. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#frames.flush();
    this.#ws.close(1000, 'agent closing');
    this.#teardown();
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    // ws may still deliver messages after a protocol error or close() began: they are moot.
    if (this.#closed) return;
    this.#heartbeat.alive();
    try {
      if (!isBinary) return this.#onControl(data.toString('utf8'));
      for (const frame of decodeFrames(data)) {
        if (frame.type === FrameType.OPEN) {
          this.#open(frame.streamId, decodeJsonPayload(RequestHead, frame.payload, 'request head'));
          continue;
        }
        const stream = this.#streams.get(frame.streamId);
        if (stream) stream.onFrame(frame);
        else if (frame.streamId > this.#lastStreamId) {
          throw new TunnelError('STREAM_UNKNOWN', `The relay sent a frame for stream ${frame.streamId}, which it never opened.`);
        }
      }
    } catch (caught) {
      // Whatever the relay sent, it may end only this connection (the agent reconnects), never the process.
      const error = isTunnelError(caught) ? caught : new TunnelError('INTERNAL', 'The agent could not handle a message from the relay.');
      if (!isTunnelError(caught)) this.#log.error({ err: caught }, 'unexpected error handling a relay message');
      this.#log.error({ code: error.code, reason: error.message }, 'protocol error from the relay; reconnecting');
      this.#ws.send(encodeControlMessage({ type: 'error', code: error.code, message: error.message }));
      this.#ws.close(1002, error.code);
      this.#teardown();
    }
  }

  #open(streamId: number, head: RequestHead): void {
    if (streamId <= this.#lastStreamId) {
      throw new TunnelError('FRAME_OUT_OF_ORDER', `OPEN reuses stream id ${streamId}; ids must increase.`);
    }
    this.#lastStreamId = streamId;
    // The connection's logger, not a child per stream: log calls name the stream in a field.
    const stream = new AgentStream(streamId, this.#streamHost, this.#upstream, this.#log);
    this.#streams.set(streamId, stream);
    stream.start(head);
  }

  #onControl(text: string): void {
    const message = parseControlMessage(text);
    if (message.type === 'goaway') {
      this.#wentAway = true;
      this.#log.info({ reason: message.reason, deadlineMs: message.deadlineMs }, 'relay is going away; open streams may finish');
      return;
    }
    if (message.type === 'error') {
      this.#log.error({ code: message.code, reason: message.message }, 'relay reported an error');
      return;
    }
    throw new TunnelError('MESSAGE_INVALID', `The relay may not send "${message.type}" after ready.`);
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#heartbeat.stop();
    const reason = new TunnelError('RELAY_UNREACHABLE', 'The connection to the relay closed.');
    this.#frames.close(reason);
    for (const stream of [...this.#streams.values()]) stream.abort(reason);
    this.#streams.clear();
  }
}
