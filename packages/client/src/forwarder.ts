import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  BodyWriter,
  DataSink,
  EndPayload,
  FLAG_INFORMATIONAL,
  MAX_FRAME_PAYLOAD,
  ResponseHead,
  bridgeSocket,
  FrameType,
  ReceiveWindow,
  ResetReason,
  SendCredit,
  TunnelError,
  acceptInbound,
  decodeJsonPayload,
  decodeWindowIncrement,
  encodeJsonPayload,
  encodeWindowIncrement,
  endToEndHeaders,
  type Frame,
  type FrameWriter,
  type InboundState,
  type RequestHead,
} from '@tunnel/protocol';
import type { Logger } from 'pino';
import { InboundBody } from './inbound-body.js';
import { describeLocalFailure } from './local-errors.js';
import type { Upstream } from './upstream.js';

/** What a stream needs from its connection. */
export interface StreamHost {
  readonly frames: FrameWriter;
  /** Called exactly once, when the stream is over. */
  release(streamId: number): void;
}

/** undici's raw headers as strings, or null when it gave none. */
function rawHeaderStrings(raw: Dispatcher.DispatchController['rawHeaders']): string[] | null {
  if (!Array.isArray(raw)) return null;
  return raw.map((part) => (typeof part === 'string' ? part : part.toString('latin1')));
}

/**
 * A local answer's head encoded as the protocol carries it, or null when the relay would refuse
 * it: a status outside 100-599, a 101 that is not an upgrade, fields the schema rejects, or a
 * head over one frame.
 */
function carriedHead(status: number, statusMessage: string | undefined, raw: string[]): Uint8Array | null {
  if (status === 101) return null;
  const head = ResponseHead.safeParse({ status, statusMessage: statusMessage || undefined, headers: endToEndHeaders(raw) });
  if (!head.success) return null;
  const payload = encodeJsonPayload(head.data);
  return payload.length <= MAX_FRAME_PAYLOAD ? payload : null;
}

/** The request's trailer fields from an END payload, flat, or null when it has none. */
function requestTrailers(payload: Uint8Array): string[] | null {
  if (payload.length === 0) return null;
  const { trailers } = decodeJsonPayload(EndPayload, payload, 'trailers');
  return trailers.length === 0 ? null : trailers.flat();
}

/** Shared, so the normal end of a stream builds no error object (and captures no stack). */
const STREAM_OVER = new TunnelError('STREAM_CANCELLED', 'The stream is over.');

/** Request headers never replayed as they came: Expect travels as the head's expectContinue flag. */
const NOT_REPLAYED = new Set(['expect']);

/**
 * One relay stream replayed against the local service: OPEN + DATA + END in, HEAD + DATA + END
 * out. The response body is paused at the local socket whenever the tunnel has no credit for it.
 */
export class AgentStream {
  readonly id: number;
  readonly #host: StreamHost;
  readonly #upstream: Upstream;
  readonly #log: Logger;
  readonly #credit = new SendCredit();
  readonly #window = new ReceiveWindow();
  readonly #inbound: InboundState = { headReceived: true, remoteEnded: false };
  #method = 'GET';
  #requestBody: InboundBody | null = null;
  #responseBody: BodyWriter | null = null;
  /** After a 101: the local socket now speaking the new protocol, and where relay DATA goes. */
  #upgraded: { socket: Duplex; sink: DataSink } | null = null;
  #controller: Dispatcher.DispatchController | null = null;
  #released = false;

  constructor(id: number, host: StreamHost, upstream: Upstream, log: Logger) {
    this.id = id;
    this.#host = host;
    this.#upstream = upstream;
    this.#log = log;
  }

  /** Starts the local request for `head`. */
  start(head: RequestHead): void {
    this.#method = head.method;
    if (head.hasBody) this.#requestBody = new InboundBody((bytes) => this.#grant(bytes));
    // undici takes an array of headers as flat name/value pairs, which keeps order and repeats.
    const headers: string[] = [];
    for (const [name, value] of head.headers) if (!NOT_REPLAYED.has(name.toLowerCase())) headers.push(name, value);
    try {
      this.#upstream.dispatch(
        {
          method: head.method,
          path: head.target,
          headers,
          body: this.#requestBody,
          ...(head.upgrade ? { upgrade: head.upgrade } : {}),
          ...(head.expectContinue && head.hasBody ? { expectContinue: true } : {}),
        },
        this.#handler,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#reset(new TunnelError('REQUEST_INVALID', `The request cannot be replayed to the local service: ${message}`));
    }
  }

  /** Handles one frame from the relay; throws TunnelError on a protocol violation. */
  onFrame(frame: Frame): void {
    if (this.#released) return;
    acceptInbound(this.#inbound, frame.type, this.id);
    switch (frame.type) {
      case FrameType.DATA:
        if (this.#upgraded) return this.#upgraded.sink.write(frame.payload);
        if (!this.#requestBody) throw new TunnelError('FRAME_OUT_OF_ORDER', `DATA on stream ${this.id}, whose request has no body.`);
        this.#window.receive(frame.payload.length);
        this.#requestBody.add(frame.payload);
        return;
      case FrameType.END: {
        if (this.#upgraded) return void this.#upgraded.socket.end();
        // Decoded even without a body, so a malformed END is refused the same way on every stream.
        const trailers = requestTrailers(frame.payload);
        this.#requestBody?.finish(trailers);
        return;
      }
      case FrameType.RESET: {
        const reason = decodeJsonPayload(ResetReason, frame.payload, 'reset reason');
        this.abort(new TunnelError(reason.code, reason.message));
        return;
      }
      case FrameType.WINDOW:
        this.#credit.grant(decodeWindowIncrement(frame.payload));
        return;
      default:
        throw new TunnelError('FRAME_OUT_OF_ORDER', `Frame type ${frame.type} cannot flow from relay to agent on an open stream.`);
    }
  }

  /** Aborts the local request (the relay reset the stream, or the connection is gone). */
  abort(reason: TunnelError): void {
    if (this.#released) return;
    this.#log.debug({ streamId: this.id, code: reason.code }, 'stream aborted');
    // Release first: undici reports the abort through onResponseError at once, and a released
    // stream must not answer it with a warning and a RESET the relay never asked for.
    const controller = this.#controller;
    this.#release(reason);
    controller?.abort(reason);
  }

  readonly #handler: Dispatcher.DispatchHandler = {
    onRequestStart: (controller) => {
      this.#controller = controller;
      if (this.#released) controller.abort(new TunnelError('STREAM_CANCELLED'));
    },
    onResponseStart: (controller, statusCode, headers, statusMessage) => {
      if (this.#released) return;
      const raw = rawHeaderStrings(controller.rawHeaders)
        ?? Object.entries(headers).flatMap(([name, value]) => (Array.isArray(value) ? value.flatMap((v) => [name, v]) : [name, String(value)]));
      const payload = carriedHead(statusCode, statusMessage, raw);
      // An interim answer the tunnel cannot carry is only a hint: drop it, the final head follows.
      if (!payload && statusCode < 200 && statusCode !== 101) return;
      if (!payload) {
        // What the relay would refuse as a protocol error must end this stream, not the tunnel.
        controller.abort(new TunnelError('LOCAL_ERROR', `The local service at ${this.#upstream.label} sent a response head the tunnel cannot carry (status ${statusCode}).`));
        return;
      }
      if (statusCode < 200) {
        // 100 Continue, 102, 103 Early Hints: passed on at once; the final head follows.
        this.#host.frames.write(FrameType.HEAD, this.id, payload, FLAG_INFORMATIONAL);
        return;
      }
      this.#host.frames.write(FrameType.HEAD, this.id, payload);
      const body = new BodyWriter(this.id, this.#credit, this.#host.frames);
      body.on('drain', () => controller.resume());
      body.on('error', (error: Error) => this.#log.debug({ streamId: this.id, err: error }, 'response body stopped'));
      body.on('finish', () => this.#release(null));
      this.#responseBody = body;
    },
    onRequestUpgrade: (_controller, statusCode, _headers, socket) => {
      if (this.#released) {
        socket.destroy();
        return;
      }
      const raw = rawHeaderStrings(_controller.rawHeaders) ?? [];
      this.#host.frames.write(FrameType.HEAD, this.id, encodeJsonPayload({ status: statusCode, headers: endToEndHeaders(raw) }));
      const sink = new DataSink(this.id, this.#host.frames, this.#window);
      this.#upgraded = { socket, sink };
      const outgoing = new BodyWriter(this.id, this.#credit, this.#host.frames);
      this.#responseBody = outgoing;
      bridgeSocket(socket, outgoing, sink, () => this.#release(null));
    },
    onResponseData: (controller, chunk) => {
      if (this.#responseBody && !this.#responseBody.write(chunk)) controller.pause();
    },
    onResponseEnd: (controller) => {
      const trailers = rawHeaderStrings(controller.rawTrailers);
      if (trailers && trailers.length > 0) this.#responseBody?.setTrailers(endToEndHeaders(trailers));
      this.#responseBody?.end();
    },
    onResponseError: (_controller, error) => {
      if (this.#released) return;
      const failure = error instanceof TunnelError ? error : describeLocalFailure(error, this.#upstream.label, this.#method);
      // While the breaker is open every request fails fast; the breaker logs its changes once,
      // so logging each of those failures would only cost time on the path meant to be quick.
      if (failure.code === 'LOCAL_UNREACHABLE') this.#log.debug({ streamId: this.id, code: failure.code }, 'local request failed');
      else this.#log.warn({ streamId: this.id, code: failure.code, err: error }, 'local request failed');
      this.#reset(failure);
    },
  };

  #grant(bytes: number): void {
    if (this.#released) return;
    const increment = this.#window.consume(bytes);
    if (increment > 0) this.#host.frames.write(FrameType.WINDOW, this.id, encodeWindowIncrement(increment));
  }

  #reset(error: TunnelError): void {
    if (this.#released) return;
    this.#host.frames.write(FrameType.RESET, this.id, encodeJsonPayload({ code: error.code, message: error.message.slice(0, 1024) }));
    this.#release(error);
  }

  #release(reason: TunnelError | null): void {
    if (this.#released) return;
    this.#released = true;
    this.#credit.close(reason ?? STREAM_OVER);
    if (this.#responseBody && !this.#responseBody.writableFinished) this.#responseBody.destroy();
    if (this.#requestBody && !this.#requestBody.readableEnded) this.#requestBody.destroy();
    if (this.#upgraded) {
      this.#upgraded.sink.close();
      this.#upgraded.socket.destroy();
    }
    this.#host.release(this.id);
  }
}
