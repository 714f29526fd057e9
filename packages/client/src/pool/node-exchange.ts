import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { TunnelError } from '@tunnel/protocol';
import type { Dispatcher } from 'undici';

type Handler = Dispatcher.DispatchHandler;

/** What one exchange needs: its own socket, the request as undici would take it, and a timeout. */
export interface NodeExchangeOptions {
  socket: Duplex;
  request: Dispatcher.DispatchOptions;
  handler: Handler;
  /** How long the local service may take to answer the head, and again after the body is sent. */
  headersTimeoutMs: number;
}

/** A request body that may end with trailer fields, as flat name/value pairs. */
export interface TrailingBody extends Readable {
  readonly trailers?: string[] | null;
}

/**
 * Whether a request needs node:http rather than undici, which can neither send `Expect:
 * 100-continue` on HTTP/1.1 nor request trailers (announced by a `Trailer` header).
 */
export function needsNodeHttp(options: Dispatcher.DispatchOptions): boolean {
  if (options.expectContinue === true) return true;
  if (options.body == null) return false;
  // Trailers need chunked framing; with a Content-Length they cannot be sent at all.
  const flat = flatHeaders(options.headers);
  return hasHeader(flat, 'trailer') && !hasHeader(flat, 'content-length');
}

/** A flat name/value list without the header `name` (lower case). */
function withoutHeader(flat: readonly string[], name: string): string[] {
  const kept: string[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i]!.toLowerCase() !== name) kept.push(flat[i]!, flat[i + 1]!);
  return kept;
}

/** Whether a flat name/value list has a header, by lower-case name. */
function hasHeader(flat: readonly string[], name: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase() === name) return true;
  return false;
}

/** The error a silent local service ends with; `ETIMEDOUT` is what the pool counts as a timeout. */
function answerTimeout(ms: number): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`the local service did not answer within ${ms} ms`);
  error.code = 'ETIMEDOUT';
  return error;
}

/**
 * One request that undici cannot send (see needsNodeHttp), sent with node:http over a socket of
 * its own. With `expectContinue`, the local service's 100 (and any other 1xx) reaches the
 * handler as an interim response start, so the public client sends its body only when the
 * service asks for it, and a service that refuses early never receives it. Trailers of the body
 * go out after it. The exchange speaks through the same handler interface as undici, and closes
 * its socket at the end.
 */
export function sendWithNodeHttp(options: NodeExchangeOptions): void {
  const exchange = new NodeExchange(options);
  try {
    exchange.start();
  } catch (error) {
    // node:http validates the method, path and headers as it builds the request, by throwing.
    const detail = error instanceof Error ? error.message : String(error);
    exchange.fail(new TunnelError('REQUEST_INVALID', `The request cannot be replayed to the local service: ${detail}`, { cause: error }));
  }
}

class NodeExchange implements Dispatcher.DispatchController {
  readonly #options: NodeExchangeOptions;
  readonly #handler: Handler;
  #req: ClientRequest | null = null;
  #res: IncomingMessage | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #finalHead = false;
  #aborted = false;
  #done = false;
  #paused = false;
  #reason: Error | null = null;
  rawHeaders: string[] | null = null;
  rawTrailers: string[] | null = null;

  constructor(options: NodeExchangeOptions) {
    this.#options = options;
    this.#handler = options.handler;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  /**
   * Stops the exchange and closes the socket. As with undici, the handler then hears the reason
   * once through onResponseError, which is where the pool settles a half-open trial.
   */
  abort(reason: Error): void {
    if (this.#done) return;
    this.#aborted = true;
    this.#reason = reason;
    this.fail(reason);
  }

  /** Stops reading the response body until resume. */
  pause(): void {
    this.#paused = true;
    this.#res?.pause();
  }

  /** Reads the response body again. */
  resume(): void {
    this.#paused = false;
    this.#res?.resume();
  }

  start(): void {
    const { request: options, socket } = this.#options;
    let headers = flatHeaders(options.headers);
    if (options.expectContinue === true) headers.push('Expect', '100-continue');
    if (hasHeader(headers, 'content-length')) {
      // A body with a length has no room for trailers; node:http refuses to announce them.
      headers = withoutHeader(headers, 'trailer');
    } else if (options.body != null) {
      // The relay drops Transfer-Encoding (hop-by-hop). A body without a length must be chunked,
      // which node:http does not do by itself for GET, DELETE or OPTIONS: say so, or it goes unframed.
      headers.push('Transfer-Encoding', 'chunked');
    }
    // The raw array keeps order and repeats; setHost off, as the public Host is already in it.
    const req = request({ method: options.method, path: options.path, headers, setHost: false, createConnection: () => socket });
    this.#req = req;
    // Listen first: the handler may abort at once, and the destroyed request then emits an error.
    req.on('information', (info) => this.#onInformation(info.statusCode, info.statusMessage, info.rawHeaders));
    req.on('response', (res) => this.#onResponse(res));
    req.on('error', (error) => this.fail(error));
    // Like undici's headers timeout, the wait for an answer starts once the request is sent:
    // a slow upload, or a client holding its body until a 100, is not the service's silence.
    req.on('finish', () => {
      if (!this.#finalHead && !this.#done) this.#armTimer();
    });
    this.#handler.onRequestStart?.(this, {});
    if (this.#done) return;
    req.flushHeaders();
    const body = options.body as TrailingBody | null | undefined;
    if (!body) {
      req.end();
      return;
    }
    // Before pipe's own 'end' listener, which ends the request: trailers must be set by then.
    body.once('end', () => this.#addTrailers(req, body.trailers));
    // While the service does not take the body, pipe pauses it: that silence is timed as
    // undici times it, so a service that stops reading an upload is cut after the timeout.
    body.on('pause', () => {
      // pipe also pauses the body when it ends, and the answer may already be here: only a
      // service that has not answered is being waited for.
      if (!this.#done && !this.#finalHead) this.#armTimer();
    });
    body.on('resume', () => {
      if (!req.writableFinished) this.#clearTimer();
    });
    body.pipe(req);
  }

  #addTrailers(req: ClientRequest, trailers: string[] | null | undefined): void {
    if (!trailers || trailers.length === 0) return;
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i + 1 < trailers.length; i += 2) pairs.push([trailers[i]!, trailers[i + 1]!]);
    try {
      req.addTrailers(pairs);
    } catch {
      // Fields node:http refuses are dropped; the body itself is complete and still goes out.
    }
  }

  #onInformation(status: number, message: string, raw: string[]): void {
    if (this.#done) return;
    // An interim answer shows the service is alive: once the request is sent, the wait starts over.
    if (this.#req?.writableFinished) this.#armTimer();
    this.rawHeaders = raw;
    this.#handler.onResponseStart?.(this, status, {}, message);
  }

  #onResponse(res: IncomingMessage): void {
    if (this.#done) return;
    this.#clearTimer();
    this.#finalHead = true;
    this.#res = res;
    this.rawHeaders = res.rawHeaders;
    res.on('data', (chunk: Buffer) => {
      if (!this.#done) this.#handler.onResponseData?.(this, chunk);
    });
    res.on('end', () => {
      if (this.#done) return;
      this.rawTrailers = res.rawTrailers;
      this.#finish();
      this.#handler.onResponseEnd?.(this, res.trailers);
    });
    res.on('aborted', () => this.fail(Object.assign(new Error('the local service closed the connection mid-response'), { code: 'ECONNRESET' })));
    res.on('error', (error) => this.fail(error));
    this.#handler.onResponseStart?.(this, res.statusCode ?? 0, res.headers, res.statusMessage);
    if (this.#paused) res.pause();
  }

  /** Ends the exchange with `error`, reported once to the handler. */
  fail(error: Error): void {
    if (this.#done) return;
    this.#finish();
    this.#handler.onResponseError?.(this, error);
  }

  #armTimer(): void {
    this.#clearTimer();
    const ms = this.#options.headersTimeoutMs;
    if (ms > 0) this.#timer = setTimeout(() => this.fail(answerTimeout(ms)), ms);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** The exchange is over one way or another: stop the timer, unpipe the body, close the socket. */
  #finish(): void {
    this.#done = true;
    this.#clearTimer();
    const body = this.#options.request.body as Readable | null | undefined;
    if (body && this.#req) body.unpipe(this.#req);
    this.#req?.destroy();
    this.#options.socket.destroy();
  }
}

/** undici's header forms as one flat name/value array for node:http. */
function flatHeaders(headers: Dispatcher.DispatchOptions['headers']): string[] {
  if (!headers) return [];
  if (Array.isArray(headers)) return headers.map(String);
  const flat: string[] = [];
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) flat.push(name, one);
  }
  return flat;
}
