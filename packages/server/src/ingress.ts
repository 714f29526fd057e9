import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AgentEndpoint } from './agent-endpoint.js';
import { pageFor, sendPage } from './pages.js';
import { writeRawError } from './raw-http.js';
import { checkPublicRequest } from './request-guard.js';
import { forwardedRequestHeaders, requestHasBody } from './proxy-headers.js';
import type { Registry } from './registry.js';
import { routeHost } from './router.js';

/** The path on the apex host where agents connect. */
export const AGENT_PATH = '/_tunnel';

export interface IngressOptions {
  domain: string;
  registry: Registry;
  endpoint: AgentEndpoint;
  proto: 'http' | 'https';
  /** A request body silent for this long is cut. */
  bodyIdleTimeoutMs: number;
  isShuttingDown(): boolean;
}

/**
 * Handles one public HTTP request: route by Host, then hand it to the tunnel's session.
 * `expectsContinue` marks a request whose client waits for 100 Continue (Node's checkContinue):
 * the relay's own refusals then go out without it, so the client never sends that body, and
 * for a tunnel the local service decides.
 */
export function createRequestHandler(options: IngressOptions): (req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean) => void {
  return (req, res, expectsContinue = false) => {
    const checked = checkPublicRequest(req);
    if (!checked.ok) {
      // Refused requests also end the connection: what follows on it cannot be trusted.
      return sendPage(req, res, pageFor('REQUEST_INVALID', checked.reason), { connection: 'close' });
    }
    const { host, target } = checked;
    const route = routeHost(host, options.domain);
    if (route.kind === 'apex') return answerApex(req, res, options);
    const session = route.kind === 'tunnel' ? options.registry.get(route.name) : undefined;
    if (!session) {
      if (route.kind === 'tunnel' && options.registry.isReconnecting(route.name)) {
        return sendPage(req, res, pageFor('AGENT_RECONNECTING', `The tunnel at ${host} is reconnecting; try again in a few seconds.`), { 'retry-after': '2' });
      }
      return sendPage(req, res, pageFor('TUNNEL_NOT_FOUND', `No tunnel is online at ${host}. Check the address, or start the agent again.`));
    }
    const verdict = session.access?.check(req.socket.remoteAddress, req.headers.authorization) ?? 'allowed';
    if (verdict === 'forbidden') return sendPage(req, res, pageFor('ACCESS_DENIED'));
    if (verdict === 'unauthorized') {
      return sendPage(req, res, pageFor('AUTH_REQUIRED'), { 'www-authenticate': 'Basic realm="tunnel", charset="UTF-8"' });
    }
    const hasBody = requestHasBody(req);
    const head = {
      method: req.method ?? 'GET',
      target,
      headers: forwardedRequestHeaders(req, options.proto, session.access?.usesCredentials),
      hasBody,
      ...(expectsContinue && hasBody ? { expectContinue: true } : {}),
    };
    // Nothing to wait for: let the client go on, and keep its connection reusable.
    if (expectsContinue && !hasBody) res.writeContinue();
    if (head.hasBody) {
      // Only while the body arrives: once it is complete, silence (a long poll, SSE) is fine.
      req.setTimeout(options.bodyIdleTimeoutMs, () => req.destroy());
      req.once('end', () => req.setTimeout(0));
    }
    const refusal = session.openStream(req, res, head);
    if (refusal === 'TOO_MANY_STREAMS') {
      sendPage(req, res, pageFor(refusal, `The tunnel at ${host} has too many requests in flight; retry shortly.`), { 'retry-after': '1' });
    } else if (refusal) {
      sendPage(req, res, pageFor(refusal));
    }
  };
}

function answerApex(req: IncomingMessage, res: ServerResponse, options: IngressOptions): void {
  if (req.url?.split('?')[0] === AGENT_PATH) {
    res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket', connection: 'upgrade' });
    res.end('Agents connect here with a WebSocket upgrade.\n');
    return;
  }
  const body = JSON.stringify({ relay: 'tunnel', tunnels: options.registry.size, shuttingDown: options.isShuttingDown() });
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${body}\n`);
}

/** Handles an HTTP upgrade: agents on `/_tunnel`, anything else is carried to its tunnel. */
export function createUpgradeHandler(options: IngressOptions): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, early) => {
    socket.on('error', () => socket.destroy());
    const checked = checkPublicRequest(req);
    if (!checked.ok) {
      writeRawError(socket, 'REQUEST_INVALID', checked.reason);
      return;
    }
    const { host, target } = checked;
    const route = routeHost(host, options.domain);
    // Agents may dial the relay by IP or any name that is not a tunnel's own, so /_tunnel answers
    // on every host except `<name>.<domain>`, where the path belongs to the tunnelled app.
    if (route.kind !== 'tunnel' && req.url?.split('?')[0] === AGENT_PATH) {
      if (options.isShuttingDown()) writeRawError(socket, 'RELAY_SHUTTING_DOWN');
      else options.endpoint.handleUpgrade(req, socket, early);
      return;
    }
    const session = route.kind === 'tunnel' ? options.registry.get(route.name) : undefined;
    if (!session && route.kind === 'tunnel' && options.registry.isReconnecting(route.name)) {
      writeRawError(socket, 'AGENT_RECONNECTING', `The tunnel at ${host} is reconnecting; try again in a few seconds.`);
      return;
    }
    if (!session) {
      writeRawError(socket, 'TUNNEL_NOT_FOUND', `No tunnel is online at ${host}. Check the address, or start the agent again.`);
      return;
    }
    const verdict = session.access?.check(req.socket.remoteAddress, req.headers.authorization) ?? 'allowed';
    if (verdict !== 'allowed') {
      writeRawError(socket, verdict === 'forbidden' ? 'ACCESS_DENIED' : 'AUTH_REQUIRED');
      return;
    }
    const upgrade = req.headers.upgrade ?? 'websocket';
    const head = { method: req.method ?? 'GET', target, headers: forwardedRequestHeaders(req, options.proto, session.access?.usesCredentials), hasBody: false, upgrade };
    const refusal = session.openUpgrade(socket, early, head);
    if (refusal) writeRawError(socket, refusal);
  };
}
