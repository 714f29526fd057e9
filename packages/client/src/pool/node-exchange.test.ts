import { once } from 'node:events';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { needsNodeHttp, sendWithNodeHttp } from './node-exchange.js';

/** The socket's close, whatever errors come first (a server socket cut mid-request reports one). */
function closeOf(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

interface Seen {
  starts: Array<{ status: number; message: string | undefined; raw: string[] }>;
  body: string;
  trailers: string[] | null;
  error: NodeJS.ErrnoException | null;
  controller: Dispatcher.DispatchController | null;
}

/** A local server whose checkContinue listener is `onContinue`, and a socket connected to it. */
async function serverAndSocket(onContinue: (req: IncomingMessage, res: ServerResponse) => void, onRequest?: RequestListener): Promise<{ socket: Socket; serverSockets: Socket[] }> {
  const server = createServer(onRequest ?? ((req, res) => req.pipe(res)));
  server.on('checkContinue', onContinue);
  const serverSockets: Socket[] = [];
  server.on('connection', (socket) => serverSockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => {
    for (const socket of serverSockets) socket.destroy();
    server.close(() => resolve());
  }));
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  return { socket, serverSockets };
}

/** Runs one Expect: 100-continue PUT of 5 bytes; see exchangeOf. */
function exchange(socket: Socket, body: Readable | null, headersTimeoutMs = 5000, onStart?: (seen: Seen) => void): { seen: Seen; done: Promise<Seen> } {
  const request = { method: 'PUT', path: '/up', headers: ['Host', 'app.test', 'Content-Length', '5'], body, expectContinue: true };
  return exchangeOf(socket, request, headersTimeoutMs, onStart);
}

/** Runs one exchange and resolves when the handler hears its end or its error. */
function exchangeOf(socket: Socket, request: Dispatcher.DispatchOptions, headersTimeoutMs = 5000, onStart?: (seen: Seen) => void): { seen: Seen; done: Promise<Seen> } {
  const seen: Seen = { starts: [], body: '', trailers: null, error: null, controller: null };
  const done = new Promise<Seen>((resolve) => {
    sendWithNodeHttp({
      socket,
      headersTimeoutMs,
      request,
      handler: {
        onRequestStart: (controller) => {
          seen.controller = controller;
        },
        onResponseStart: (controller, status, _headers, message) => {
          seen.starts.push({ status, message, raw: (controller.rawHeaders as string[] | null) ?? [] });
          onStart?.(seen);
        },
        onResponseData: (_controller, chunk) => {
          seen.body += chunk.toString();
        },
        onResponseEnd: (controller) => {
          seen.trailers = (controller.rawTrailers as string[] | null) ?? null;
          resolve(seen);
        },
        onResponseError: (_controller, error) => {
          seen.error = error;
          resolve(seen);
        },
      },
    });
  });
  return { seen, done };
}

describe('needsNodeHttp', () => {
  it('takes what undici cannot send: Expect: 100-continue, and a body with announced trailers', () => {
    const body = Readable.from([]);
    expect(needsNodeHttp({ method: 'PUT', path: '/', body, expectContinue: true })).toBe(true);
    expect(needsNodeHttp({ method: 'POST', path: '/', body, headers: ['Host', 'a', 'TRAILER', 'x-sum'] })).toBe(true);
    expect(needsNodeHttp({ method: 'GET', path: '/', headers: ['Trailer', 'x-sum'] })).toBe(false);
    expect(needsNodeHttp({ method: 'POST', path: '/', body, headers: ['Host', 'a'] })).toBe(false);
    // With a Content-Length there is no chunked framing to carry trailers: undici sends it as before.
    expect(needsNodeHttp({ method: 'POST', path: '/', body, headers: ['Trailer', 'x-sum', 'Content-Length', '3'] })).toBe(false);
  });

  it('drops a Trailer announcement a body with a length cannot honour, instead of failing the request', async () => {
    const { socket } = await serverAndSocket((req, res) => {
      res.writeContinue();
      req.resume();
      req.on('end', () => res.end(String(req.headers.trailer)));
    });
    const request = { method: 'PUT', path: '/', headers: ['Host', 'app.test', 'Trailer', 'x-sum', 'Content-Length', '1'], body: Readable.from([Buffer.from('x')]), expectContinue: true };
    const seen = await exchangeOf(socket, request).done;
    expect(seen.error).toBeNull();
    expect(seen.body).toBe('undefined');
  });
});

describe('sendWithNodeHttp', () => {
  it('sends Expect once with the given headers, hands on the 100, then the final answer with its trailers', async () => {
    let received: { expect: string | undefined; hosts: number; body: string } | null = null;
    const { socket } = await serverAndSocket((req, res) => {
      res.writeContinue();
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        received = { expect: req.headers.expect, hosts: req.rawHeaders.filter((_v, i) => i % 2 === 0 && req.rawHeaders[i]!.toLowerCase() === 'host').length, body };
        res.writeHead(201, { trailer: 'x-sum' });
        res.write('stored');
        res.addTrailers({ 'x-sum': '5' });
        res.end();
      });
    });
    const seen = await exchange(socket, Readable.from([Buffer.from('hello')])).done;
    expect(seen.error).toBeNull();
    expect(seen.starts.map((start) => start.status)).toEqual([100, 201]);
    expect(seen.body).toBe('stored');
    expect(seen.trailers).toEqual(['x-sum', '5']);
    expect(received).toEqual({ expect: '100-continue', hosts: 1, body: 'hello' });
    // The exchange owns its socket and closes it at the end.
    expect(socket.destroyed).toBe(true);
  });

  it('sends the body\'s trailers after it, chunked', async () => {
    const { socket } = await serverAndSocket(() => undefined, (req, res) => {
      req.resume();
      req.on('end', () => res.end(JSON.stringify(req.trailers)));
    });
    const body = Object.assign(Readable.from([Buffer.from('abc')]), { trailers: ['X-Sum', '3', 'X-Trace', 't1'] });
    const seen = await new Promise<string>((resolve, reject) => {
      let text = '';
      sendWithNodeHttp({
        socket,
        headersTimeoutMs: 5000,
        request: { method: 'POST', path: '/', headers: ['Host', 'app.test', 'Trailer', 'X-Sum, X-Trace'], body },
        handler: {
          onResponseData: (_controller, chunk) => {
            text += chunk.toString();
          },
          onResponseEnd: () => resolve(text),
          onResponseError: (_controller, error) => reject(error),
        },
      });
    });
    expect(JSON.parse(seen)).toEqual({ 'x-sum': '3', 'x-trace': 't1' });
  });

  it('ends with ETIMEDOUT when the service does not answer in time once the request is sent, and closes the socket', async () => {
    const { socket, serverSockets } = await serverAndSocket(() => undefined);
    const started = performance.now();
    const seen = await exchange(socket, Readable.from([Buffer.from('hello')]), 200).done;
    expect(seen.error?.code).toBe('ETIMEDOUT');
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(socket.destroyed).toBe(true);
    await closeOf(serverSockets[0]!);
  });

  it('reports a service that cuts the response short as an error, not an end', async () => {
    const { socket } = await serverAndSocket((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const seen = await exchange(socket, new Readable({ read: () => undefined })).done;
    expect(seen.starts.map((start) => start.status)).toEqual([200]);
    expect(seen.body).toBe('partial');
    expect(seen.error).not.toBeNull();
  });

  it('stops at once when aborted: the handler hears the reason once, as from undici, and the service sees the socket close', async () => {
    const { socket, serverSockets } = await serverAndSocket((_req, res) => {
      res.writeHead(200);
      res.write('first');
    });
    const reason = new Error('public client went away');
    const { seen, done } = exchange(socket, new Readable({ read: () => undefined }), 5000, (current) => current.controller?.abort(reason));
    await closeOf(serverSockets[0]!);
    await done;
    expect(seen.controller?.aborted).toBe(true);
    expect(seen.controller?.reason).toBe(reason);
    expect(seen.error).toBe(reason);
    expect(seen.body).toBe('');
  });

  it('waits again after an interim answer, and times out if the service then falls silent', async () => {
    const { socket } = await serverAndSocket(() => undefined, (req, res) => {
      req.resume();
      req.on('end', () => res.writeProcessing());
    });
    const body = Readable.from([Buffer.from('hello')]);
    const seen = await exchangeOf(socket, { method: 'POST', path: '/', headers: ['Host', 'app.test', 'Content-Length', '5'], body }, 200).done;
    expect(seen.starts.map((start) => start.status)).toEqual([102]);
    expect(seen.error?.code).toBe('ETIMEDOUT');
  });

  it('times out a service that stops reading the body, as undici does', async () => {
    const { socket } = await serverAndSocket(() => undefined, (req) => req.pause());
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let pushed = 0;
    // Bounded: at most 512 MiB, far more than the socket buffers hold before the writes stall.
    const body = new Readable({ read(): void {
      pushed += 1;
      this.push(pushed <= 8192 ? chunk : null);
    } });
    const started = performance.now();
    const seen = await exchangeOf(socket, { method: 'POST', path: '/', headers: ['Host', 'app.test'], body }, 300).done;
    expect(seen.error?.code).toBe('ETIMEDOUT');
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(pushed).toBeLessThan(8192);
    body.destroy();
  });

  it('stops timing once the service has answered, even while the upload still ends', async () => {
    const { socket } = await serverAndSocket(() => undefined, (req, res) => {
      req.resume();
      res.writeHead(200);
      let sent = 0;
      const timer = setInterval(() => {
        sent += 1;
        if (sent < 8) res.write('x');
        else {
          clearInterval(timer);
          res.end('!');
        }
      }, 50);
      res.on('close', () => clearInterval(timer));
    });
    const body = new PassThrough();
    const { done } = exchangeOf(socket, { method: 'POST', path: '/', headers: ['Host', 'app.test'], body }, 150);
    body.write('a');
    setTimeout(() => body.end('b'), 100);
    const seen = await done;
    expect(seen.error).toBeNull();
    expect(seen.body).toBe('xxxxxxx!');
  });

  it('does not wait for an answer while a slow body is still being sent', async () => {
    const { socket } = await serverAndSocket(() => undefined, (req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      req.on('end', () => res.end(String(bytes)));
    });
    const body = new Readable({ read: () => undefined });
    const { done } = exchangeOf(socket, { method: 'POST', path: '/', headers: ['Host', 'app.test'], body }, 100);
    for (let i = 0; i < 3; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 80));
      body.push('x'.repeat(10));
    }
    body.push(null);
    const seen = await done;
    expect(seen.error).toBeNull();
    expect(seen.body).toBe('30');
  });

  it('frames a body without a length as chunked, whatever the method', async () => {
    const { socket } = await serverAndSocket(() => undefined, (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => res.end(`${req.headers['transfer-encoding']}:${body}`));
    });
    const body = Object.assign(Readable.from([Buffer.from('gone')]), { trailers: null });
    const seen = await exchangeOf(socket, { method: 'DELETE', path: '/', headers: ['Host', 'app.test', 'Trailer', 'x-a'], body }).done;
    expect(seen.body).toBe('chunked:gone');
  });

  it('holds the response body while paused, and goes on after resume', async () => {
    const { socket } = await serverAndSocket((_req, res) => {
      res.writeHead(200);
      res.write('one;');
      setTimeout(() => res.end('two'), 50);
    });
    const { seen, done } = exchange(socket, new Readable({ read: () => undefined }), 5000, (current) => current.controller?.pause());
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(seen.body).toBe('');
    expect(seen.controller?.paused).toBe(true);
    seen.controller?.resume();
    expect((await done).body).toBe('one;two');
  });
});
