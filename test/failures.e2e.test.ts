import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '@tunnel/protocol';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer } from './helpers/local-server.js';
import { eventually, freePort } from './helpers/ports.js';
import { startAgentProcess, startRelayProcess } from './helpers/processes.js';

const MiB = 1024 * 1024;

/** Starts a GET through the tunnel and resolves with the response as soon as its head arrives. */
async function openResponse(url: URL, path: string): Promise<IncomingMessage> {
  const req = request({ host: '127.0.0.1', port: url.port, path, headers: { host: url.host }, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  return res;
}

/** Reads a response to its end or its error; says whether it completed and how much arrived. */
function drain(res: IncomingMessage): Promise<{ complete: boolean; bytes: number }> {
  return new Promise((resolve) => {
    let bytes = 0;
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    res.on('error', () => resolve({ complete: false, bytes }));
    res.on('close', () => resolve({ complete: res.complete, bytes }));
  });
}

describe('when things go wrong', () => {
  it('answers 404 with a page naming the host when no tunnel has that name', async () => {
    const relay = await startRelayProcess();
    const url = new URL(`http://nobody-here.localhost:${relay.url.port}`);
    const html = await fetchVia(url, { headers: { accept: 'text/html' } });
    expect(html.status).toBe(404);
    expect(html.headers['content-type']).toContain('text/html');
    expect(html.body.toString()).toContain(`No tunnel is online at nobody-here.localhost:${relay.url.port}`);
    const json = await fetchVia(url, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(404);
    expect(JSON.parse(json.body.toString())).toMatchObject({ error: { code: 'TUNNEL_NOT_FOUND' } });
  });

  it('answers 502 naming host:port when the local service refuses connections', async () => {
    const deadPort = await freePort();
    const tunnel = await startAgentProcess(['--port', String(deadPort), '--local-host', '127.0.0.1', '--relay-port', '0']);
    const html = await fetchVia(tunnel.url);
    expect(html.status).toBe(502);
    expect(html.body.toString()).toContain(`127.0.0.1:${deadPort}`);
    const json = await fetchVia(tunnel.url, { headers: { accept: 'application/json' } });
    const error = (JSON.parse(json.body.toString()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('LOCAL_UNREACHABLE');
    expect(error.message).toContain(`127.0.0.1:${deadPort}`);
  });

  it('cuts a download when the agent is killed mid-body, so it never looks complete', async () => {
    const local = await startLocalServer((req, res) => {
      const chunked = req.url === '/chunked';
      res.writeHead(200, chunked ? {} : { 'content-length': 100 * MiB });
      // Send 4 MiB, then hold the rest back: the response is mid-body when the agent dies.
      res.write(Buffer.alloc(4 * MiB, 1));
    });
    const relay = await startRelayProcess();
    for (const path of ['/length', '/chunked']) {
      const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href]);
      const res = await openResponse(agent.url, path);
      await once(res, 'data');
      agent.kill('SIGKILL');
      const outcome = await drain(res);
      expect(outcome.complete).toBe(false);
      expect(outcome.bytes).toBeLessThan(100 * MiB);
      await agent.exited;
    }
  });

  it('answers 502 AGENT_DISCONNECTED when the agent dies before the response starts', async () => {
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const local = await startLocalServer(() => arrived());
    const relay = await startRelayProcess();
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href]);
    const pending = fetchVia(agent.url, { headers: { accept: 'application/json' } });
    await requestArrived;
    agent.kill('SIGKILL');
    const response = await pending;
    expect(response.status).toBe(502);
    expect(JSON.parse(response.body.toString())).toMatchObject({ error: { code: 'AGENT_DISCONNECTED' } });
  });

  it('reconnects with the same URL after the relay restarts', async () => {
    const local = await startLocalServer((_req, res) => res.end('alive'));
    const port = await freePort();
    const first = await startRelayProcess(['--port', String(port)]);
    const agent = await startAgentProcess([
      '--port', String(local.port), '--local-host', '127.0.0.1', '--server', first.url.href, '--ping-interval', '500',
    ]);
    expect((await fetchVia(agent.url)).body.toString()).toBe('alive');
    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await startRelayProcess(['--port', String(port)]);
    const back = await eventually(async () => (await fetchVia(agent.url)).status === 200);
    expect(back).toBe(true);
    expect(agent.stderr()).toContain('reconnecting');
  });

  it('lets an open request finish after SIGTERM, then exits 0', async () => {
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const local = await startLocalServer((_req, res) => {
      arrived();
      setTimeout(() => res.end('finished'), 700);
    });
    const relay = await startRelayProcess();
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href]);
    const pending = fetchVia(agent.url);
    await requestArrived;
    relay.kill('SIGTERM');
    const response = await pending;
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('finished');
    expect(await relay.exited).toBe(0);
  });

  it('closes an agent that speaks another protocol version with a message naming the side to upgrade', async () => {
    const relay = await startRelayProcess();
    const ws = new WebSocket(`ws://127.0.0.1:${relay.url.port}/_tunnel`);
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'hello', protocol: 99, clientVersion: 'future' }));
    const [data] = (await once(ws, 'message')) as [Buffer];
    const message = JSON.parse(data.toString()) as { type: string; code: string; message: string };
    expect(message).toMatchObject({ type: 'error', code: 'VERSION_MISMATCH' });
    expect(message.message).toContain('upgrade the relay');
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(4000);
  });

  it('closes an agent that sends garbage frames, and keeps serving other tunnels', async () => {
    const local = await startLocalServer((_req, res) => res.end('still here'));
    const relay = await startRelayProcess();
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href]);
    const ws = new WebSocket(`ws://127.0.0.1:${relay.url.port}/_tunnel`);
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, clientVersion: 'test' }));
    await once(ws, 'message');
    ws.send(Buffer.from([9, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
    const [data] = (await once(ws, 'message')) as [Buffer];
    expect(JSON.parse(data.toString())).toMatchObject({ type: 'error', code: 'FRAME_UNKNOWN_TYPE' });
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(1002);
    expect((await fetchVia(agent.url)).body.toString()).toBe('still here');
  });
});
