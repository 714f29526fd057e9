import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { patternBytes, sha256 } from './helpers/local-server.js';
import { startAgentProcess } from './helpers/processes.js';

/** A local app with a WebSocket echo on /echo, and a refusal (403) for upgrades on /forbidden. */
async function startWebSocketApp(): Promise<{ port: number; closes: number[] }> {
  const closes: number[] = [];
  const server = createServer((_req, res) => res.end('plain http'));
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (req.url === '/forbidden') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nno ws 4u');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', (code) => closes.push(code));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => {
    for (const client of wss.clients) client.terminate();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as { port: number }).port, closes };
}

/** Opens a WebSocket to a tunnel URL through 127.0.0.1, with the tunnel's Host header. */
function openVia(url: URL, path: string): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${url.port}${path}`, { headers: { host: url.host } });
  // A refused handshake also ends in 'error'; the tests read 'unexpected-response' instead.
  ws.on('error', () => undefined);
  onTestFinished(() => ws.terminate());
  return ws;
}

describe('WebSockets through the tunnel', () => {
  it('carries text and a 1 MiB binary message both ways, and closes cleanly', async () => {
    const app = await startWebSocketApp();
    const agent = await startAgentProcess(['--port', String(app.port), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const ws = openVia(agent.url, '/echo');
    await once(ws, 'open');

    ws.send('hello through the tunnel');
    const [text, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
    expect(isBinary).toBe(false);
    expect(text.toString()).toBe('hello through the tunnel');

    const big = patternBytes(1024 * 1024, 5);
    ws.send(big);
    const [echoed] = (await once(ws, 'message')) as [Buffer];
    expect(sha256(echoed)).toBe(sha256(big));

    ws.close(1000, 'done');
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1000);
    await expect.poll(() => app.closes).toEqual([1000]);
  });

  it('passes a refusal of the upgrade through as an ordinary response', async () => {
    const app = await startWebSocketApp();
    const agent = await startAgentProcess(['--port', String(app.port), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const ws = openVia(agent.url, '/forbidden');
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(response.statusCode).toBe(403);
    let body = '';
    for await (const chunk of response) body += chunk;
    expect(body).toBe('no ws 4u');
  });

  it('answers 404 to an upgrade for a name no tunnel holds', async () => {
    const app = await startWebSocketApp();
    const agent = await startAgentProcess(['--port', String(app.port), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const ws = openVia(new URL(`http://nobody.localhost:${agent.url.port}`), '/echo');
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(response.statusCode).toBe(404);
    expect(response.headers['x-tunnel-error']).toBe('TUNNEL_NOT_FOUND');
    response.resume();
  });
});
