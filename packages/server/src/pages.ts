import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode } from '@tunnel/protocol';

/** What an error page says: the code, a title, and the detail for this request. */
export interface PageContent {
  code: ErrorCode;
  title: string;
  detail: string;
}

const TITLES: Partial<Record<ErrorCode, string>> = {
  TUNNEL_NOT_FOUND: 'No tunnel here',
  AGENT_DISCONNECTED: 'Tunnel agent disconnected',
  AGENT_RECONNECTING: 'Tunnel reconnecting',
  LOCAL_UNREACHABLE: 'Local service unreachable',
  LOCAL_TIMEOUT: 'Local service timed out',
  LOCAL_ERROR: 'Local service error',
  RELAY_SHUTTING_DOWN: 'Relay shutting down',
  TOO_MANY_STREAMS: 'Too many requests',
  REQUEST_INVALID: 'Bad request',
  AUTH_REQUIRED: 'Sign in required',
  ACCESS_DENIED: 'Access denied',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Whether the client asked for JSON rather than a page. */
function wantsJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

/** Builds page content for `code` with a request-specific detail sentence. */
export function pageFor(code: ErrorCode, detail: string = ERRORS[code].message): PageContent {
  return { code, title: TITLES[code] ?? 'Tunnel error', detail };
}

/** Writes an error page (HTML, or JSON for `Accept: application/json`) and ends the response. */
export function sendPage(req: IncomingMessage, res: ServerResponse, page: PageContent, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = ERRORS[page.code].status;
  const json = wantsJson(req);
  const body = json
    ? JSON.stringify({ error: { code: page.code, message: page.detail } })
    : `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(page.title)}</title>` +
      '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}' +
      'code{background:#f3f3f3;padding:0 .3em}</style></head>' +
      `<body><h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.detail)}</p>` +
      `<p><small>Error code <code>${page.code}</code> (HTTP ${status})</small></p></body></html>\n`;
  res.writeHead(status, {
    'content-type': json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-tunnel-error': page.code,
    ...extraHeaders,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
