import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  BodyWriter,
  FrameType,
  DataSink,
  EndPayload,
  HeaderList,
  ResetReason,
  ResponseHead,
  SendCredit,
  TunnelError,
  decodeJsonPayload,
  encodeJsonPayload,
  type ErrorCode,
  type Frame,
  type FrameWriter,
  type InboundState,
  type RequestHead,
} from '@tunnel/protocol';
import { dispatchAgentFrame, type AgentFrameHandlers } from './agent-frames.js';
import { earlyHints } from './early-hints.js';
import type { Logger } from './logger.js';
import { pageFor, sendPage } from './pages.js';
import { flattenHeaders, forwardedTrailers } from './proxy-headers.js';

/** Queued bytes toward the public client above which interim answers are dropped. */
export const INTERIM_BACKLOG_BYTES = 64 * 1024;
/** Interim answers passed on per response; real services send one or two (a 100, a 103). */
export const MAX_INTERIM_PER_STREAM = 32;

/** Shared, so the normal end of a stream builds no error object (and captures no stack). */
const STREAM_OVER = new TunnelError('STREAM_CANCELLED', 'The stream is over.');

/** What a stream needs from its session. */
export interface StreamHost {
  readonly frames: FrameWriter;
  /** Called exactly once, when the stream is over, so the session can forget it. */
  release(streamId: number): void;
}

/**
 * One public request carried over the tunnel: OPEN + DATA + END out, HEAD + DATA + END back.
 * The response is written to the public client as frames arrive; WINDOW credit is granted back
 * only once the public socket has taken the bytes, so a slow reader slows only this stream.
 */
export class RelayStream {
  readonly id: number;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #host: StreamHost;
  readonly #log: Logger;
  readonly #credit = new SendCredit();
  readonly #sink: DataSink;
  readonly #inbound: InboundState = { headReceived: false, remoteEnded: false };
  #body: BodyWriter | null = null;
  #interimCount = 0;
  /** The public client waits for a 100 Continue before it sends its body. */
  #awaitingContinue = false;
  #released = false;

  constructor(id: number, req: IncomingMessage, res: ServerResponse, host: StreamHost, log: Logger) {
    this.id = id;
    this.#req = req;
    this.#res = res;
    this.#host = host;
    this.#log = log;
    this.#sink = new DataSink(id, host.frames);
    this.#sink.attach(res);
    res.once('close', () => this.#onPublicClose());
  }

  /** Sends OPEN and starts streaming the request body, if any. */
  start(head: RequestHead): void {
    this.#awaitingContinue = head.expectContinue === true;
    this.#host.frames.write(FrameType.OPEN, this.id, encodeJsonPayload(head));
    if (!head.hasBody) {
      this.#host.frames.write(FrameType.END, this.id);
      this.#req.resume();
      return;
    }
    const body = new BodyWriter(this.id, this.#credit, this.#host.frames);
    this.#body = body;
    // pipe rather than pipeline: when the response ends before the upload, the request must be
    // unpiped and drained, not destroyed, or its socket (and the finished response) would go too.
    body.on('error', (error: Error) => this.#log.debug({ streamId: this.id, err: error }, 'request body stopped'));
    // Trailers are known at 'end', before the body writer's END goes out. Any the agent's schema
    // would refuse are dropped here rather than let them end the whole tunnel there.
    this.#req.once('end', () => {
      const trailers = HeaderList.safeParse(forwardedTrailers(this.#req.rawTrailers));
      if (trailers.success) body.setTrailers(trailers.data);
      else this.#log.debug({ streamId: this.id }, 'dropped request trailers the protocol cannot carry');
    });
    this.#req.pipe(body);
  }

  /** Handles one frame from the agent for this stream; throws TunnelError on a protocol violation. */
  onFrame(frame: Frame): void {
    if (this.#released) return;
    dispatchAgentFrame(frame, this.#inbound, this.id, this.#on);
  }

  readonly #on: AgentFrameHandlers = {
    informational: (head) => this.#onInformational(head),
    head: (head) => this.#onHead(head),
    data: (payload) => this.#sink.write(payload),
    end: (payload) => this.#onEnd(payload),
    reset: (reason) => this.#onReset(reason),
    window: (bytes) => this.#credit.grant(bytes),
  };

  /**
   * Ends the stream because of `code`: a page if nothing was sent yet, else the public
   * connection is cut, so a client never mistakes a partial body for a complete one.
   */
  fail(code: ErrorCode, detail?: string): void {
    if (this.#released) return;
    sendPage(this.#req, this.#res, pageFor(code, detail));
    this.#release();
  }

  /**
   * Passes on the interim answers Node can write: 100 only to a client that asked for it (and
   * once), 102, and 103 Early Hints. Others are dropped: clients must ignore 1xx they don't know.
   */
  #onInformational(head: ResponseHead): void {
    // Interim answers carry no credit: beyond a few per response, or past a small backlog toward
    // a client that is not reading, an agent sending them without end could grow the relay's
    // memory. HTTP/1.0 clients must never see one (RFC 9110 §15.2).
    // The one 100 a waiting client needs is never dropped: without it the upload would stall.
    const http10 = this.#req.httpVersionMajor === 1 && this.#req.httpVersionMinor === 0;
    const neededContinue = head.status === 100 && this.#awaitingContinue;
    if (!neededContinue) this.#interimCount += 1;
    if (!neededContinue && (http10 || this.#interimCount > MAX_INTERIM_PER_STREAM || this.#res.writableLength > INTERIM_BACKLOG_BYTES)) {
      this.#log.debug({ streamId: this.id, status: head.status }, 'dropped an informational answer');
      return;
    }
    try {
      if (head.status === 100 && this.#awaitingContinue) {
        this.#awaitingContinue = false;
        this.#res.writeContinue();
      } else if (head.status === 102) {
        this.#res.writeProcessing();
      } else if (head.status === 103) {
        this.#res.writeEarlyHints(earlyHints(head.headers));
      } else {
        this.#log.debug({ streamId: this.id, status: head.status }, 'dropped an informational answer');
      }
    } catch (cause) {
      this.#log.warn({ streamId: this.id, status: head.status, err: cause }, 'local service sent an informational answer Node cannot write');
    }
  }

  #onHead(head: ResponseHead): void {
    if (head.status === 101) {
      // Only an upgrade stream may switch protocols; here it would leave the client hanging.
      this.#resetAgent('LOCAL_ERROR');
      this.fail('LOCAL_ERROR', 'The local service answered 101 to a request that did not ask to switch protocols.');
      return;
    }
    try {
      if (head.statusMessage) this.#res.writeHead(head.status, head.statusMessage, flattenHeaders(head.headers));
      else this.#res.writeHead(head.status, flattenHeaders(head.headers));
    } catch (cause) {
      this.#log.warn({ streamId: this.id, err: cause }, 'local service sent a response head Node cannot write');
      // writeHead keeps what it was given before it threw; clear it so the error page can be written.
      this.#res.statusMessage = '';
      for (const name of this.#res.getHeaderNames()) this.#res.removeHeader(name);
      this.#resetAgent('LOCAL_ERROR');
      this.fail('LOCAL_ERROR', 'The local service sent a response head that cannot be passed on.');
    }
  }

  #onEnd(payload: Uint8Array): void {
    if (payload.length > 0) {
      const { trailers } = decodeJsonPayload(EndPayload, payload, 'trailers');
      try {
        this.#res.addTrailers(trailers);
      } catch {
        // Trailers Node refuses are dropped; the body itself is complete and is not lost.
        this.#log.warn({ streamId: this.id }, 'dropped response trailers Node cannot write');
      }
    }
    this.#res.end();
    this.#release();
  }

  #onReset(reason: ResetReason): void {
    this.#log.debug({ streamId: this.id, code: reason.code }, 'agent reset the stream');
    this.fail(reason.code, reason.message);
  }

  #onPublicClose(): void {
    if (this.#released) return;
    // The response did not finish: the public client went away mid-stream.
    this.#resetAgent('STREAM_CANCELLED');
    this.#release();
  }

  #resetAgent(code: ErrorCode): void {
    this.#host.frames.write(FrameType.RESET, this.id, encodeJsonPayload({ code }));
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#credit.close(STREAM_OVER);
    this.#sink.close();
    if (this.#body && !this.#body.writableFinished) {
      // The response is complete while the upload is not: the agent no longer wants it.
      this.#req.unpipe(this.#body);
      this.#body.destroy();
      this.#req.resume();
      if (this.#inbound.remoteEnded) this.#resetAgent('STREAM_CANCELLED');
    }
    this.#host.release(this.id);
  }
}
