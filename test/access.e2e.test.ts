import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer } from './helpers/local-server.js';
import { startAgentProcess } from './helpers/processes.js';

/** A GET through the tunnel from a chosen loopback source address. */
async function getFrom(url: URL, localAddress: string): Promise<number> {
  const req = request({ host: '127.0.0.1', port: url.port, path: '/', localAddress, headers: { host: url.host }, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.resume();
  return res.statusCode ?? 0;
}

describe('access control at the relay', () => {
  it('asks for the tunnel password with 401 and WWW-Authenticate, and lets the right one through without forwarding it', async () => {
    const seen: Array<string | undefined> = [];
    const local = await startLocalServer((req, res) => {
      seen.push(req.headers.authorization);
      res.end('secret page');
    });
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--basic-auth', 'ann:s3cret']);
    const none = await fetchVia(agent.url);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Basic realm="tunnel", charset="UTF-8"');
    const wrong = await fetchVia(agent.url, { headers: { authorization: `Basic ${Buffer.from('ann:guess').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    expect(seen).toEqual([]);
    const right = await fetchVia(agent.url, { headers: { authorization: `Basic ${Buffer.from('ann:s3cret').toString('base64')}` } });
    expect(right.status).toBe(200);
    expect(right.body.toString()).toBe('secret page');
    expect(seen).toEqual([undefined]);
  });

  it('answers 403 to addresses outside --allow-ip, for requests and WebSocket upgrades alike', async () => {
    let reached = 0;
    const local = await startLocalServer((_req, res) => {
      reached += 1;
      res.end('inside');
    });
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--relay-port', '0', '--allow-ip', '127.0.0.2/32', '--allow-ip', '10.0.0.0/8']);
    expect(await getFrom(agent.url, '127.0.0.1')).toBe(403);
    const ws = new WebSocket(`ws://127.0.0.1:${agent.url.port}/`, { headers: { host: agent.url.host }, localAddress: '127.0.0.1' });
    ws.on('error', () => undefined);
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(response.statusCode).toBe(403);
    response.resume();
    expect(reached).toBe(0);
    expect(await getFrom(agent.url, '127.0.0.2')).toBe(200);
    expect(reached).toBe(1);
  });
});
