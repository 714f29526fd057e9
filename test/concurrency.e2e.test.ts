import { Agent as HttpAgent, type IncomingMessage, type ServerResponse } from 'node:http';
import { AGENT_DEFAULTS, PoolRegistry, poolOptionsFor, startAgent, type Agent, type AgentConfig } from '@tunnel/client';
import { createLogger } from '@tunnel/server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { patternBytes, sha256, startLocalServer } from './helpers/local-server.js';
import { startAgentProcess } from './helpers/processes.js';
import { agentStatus, relayStatus, residentKiB, settle, startRelayWithStatus } from './helpers/process-status.js';
import { seededRandom } from '../packages/protocol/src/seeded-random.test-helper.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Runs `task` over `items` with at most `limit` in flight. */
async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next]!;
      next += 1;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

describe('many streams on one tunnel', () => {
  it('carries 1,000 concurrent streams of 0 B to 1 MiB, each body intact, up to the relay’s limit of 1,000', async () => {
    const STREAMS = 1000;
    const random = seededRandom(0xc0c0);
    // A tenth empty, a few of exactly 1 MiB, the rest log-uniform from 1 B to 1 MiB; half
    // downloads of a known pattern, half uploads echoed back.
    const plans = Array.from({ length: STREAMS }, (_, index) => {
      const size = index % 10 === 0 ? 0 : index % 50 === 1 ? MiB : Math.min(MiB, Math.floor(2 ** (random() * 20)));
      const isUpload = index % 2 === 1;
      const body = patternBytes(size, index + 1);
      return { index, size, isUpload, body: isUpload ? body : undefined, sha256: sha256(body) };
    });

    // Every response waits at the local service until the relay holds all 1,000 streams at
    // once, so they are truly concurrent; the agent's pool (64 sockets) queues the rest.
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    const local = await startLocalServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://local');
      void gate.then(() => {
        if (url.pathname === '/echo') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          req.pipe(res);
          return;
        }
        req.resume();
        const body = patternBytes(Number(url.searchParams.get('size')), Number(url.searchParams.get('seed')));
        res.writeHead(200, { 'content-length': body.length });
        res.end(body);
      });
    });
    // Every public connection here comes from 127.0.0.1, and so does the agent's: the relay's
    // per-address cap (256 by default, a defence against one client hogging it) must make room.
    const relay = await startRelayWithStatus(['--port', '0', '--max-connections-per-ip', String(STREAMS + 100)]);
    const agent = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relay.url.href, '--log-level', 'info']);
    // One socket per stream: the public side must not be what limits concurrency.
    const client = new HttpAgent({ keepAlive: true, maxSockets: STREAMS });
    onTestFinished(() => client.destroy());

    const started = performance.now();
    const responses = plans.map((plan) =>
      fetchVia(agent.url, plan.isUpload
        ? { method: 'POST', path: '/echo', body: plan.body!, agent: client, timeoutMs: 60_000 }
        : { path: `/bytes?size=${plan.size}&seed=${plan.index + 1}`, agent: client, timeoutMs: 60_000 }),
    );
    const outcomes = Promise.allSettled(responses);

    const peak = await settle(() => relayStatus(relay), (status) => status.relay.streams === STREAMS, 30_000, 200);
    const agentPeak = await agentStatus(agent);
    // The relay's per-tunnel limit is 1,000 streams: one more is refused while all are open.
    const extra = await fetchVia(agent.url, { path: '/bytes?size=1&seed=1', headers: { accept: 'application/json' } });
    openGate();
    const settled = await outcomes;
    const elapsedMs = performance.now() - started;

    const failures = settled.flatMap((outcome, index) => {
      const plan = plans[index]!;
      if (outcome.status === 'rejected') return [`#${index} (${plan.size} B): ${String(outcome.reason)}`];
      const { status, sha256: got, body } = outcome.value;
      if (status !== 200 || got !== plan.sha256) return [`#${index} (${plan.size} B): status ${status}, ${body.length} B, hash ${got === plan.sha256 ? 'ok' : 'wrong'}`];
      return [];
    });
    const relayAfter = await settle(() => relayStatus(relay), (status) => status.relay.streams === 0);
    const agentAfter = await settle(() => agentStatus(agent), (status) => status.streams === 0);
    console.log(JSON.stringify({
      streams: STREAMS, totalBytes: plans.reduce((sum, plan) => sum + plan.size, 0), elapsedMs: Math.round(elapsedMs),
      relayPeak: peak.relay, agentPeak: { streams: agentPeak.streams, pool: { active: agentPeak.pool.active, waiting: agentPeak.pool.waiting } },
      extra: { status: extra.status, code: extra.headers['x-tunnel-error'] }, failures: failures.length,
    }));

    expect(peak.relay.streams).toBe(STREAMS);
    expect(agentPeak.streams).toBe(STREAMS);
    expect(extra.status).toBe(503);
    expect(extra.headers['x-tunnel-error']).toBe('TOO_MANY_STREAMS');
    expect(failures.slice(0, 10)).toEqual([]);
    expect(relayAfter.relay.streams).toBe(0);
    expect(agentAfter.streams).toBe(0);
  });
});

describe('many tunnels on one relay', () => {
  it('serves 200 tunnels at once, each answering a request, and reports the relay’s memory per idle tunnel', async () => {
    const TUNNELS = 200;
    const local = await startLocalServer((req, res) => {
      req.resume();
      res.end(`hello ${req.headers.host}`);
    });
    const relay = await startRelayWithStatus();
    const relayPid = relay.child.pid!;

    // The 200 agents live in this process: the real agent code, one WebSocket each, sharing one
    // pool to the local service as tunnels of one process do.
    const log = createLogger('silent');
    const config: AgentConfig = { ...AGENT_DEFAULTS, port: local.port, localHost: '127.0.0.1', server: relay.url.href, logLevel: 'silent' };
    const upstream = new PoolRegistry().acquire(poolOptionsFor(config, log));
    const agents: Agent[] = [];
    onTestFinished(async () => {
      await Promise.all(agents.map((agent) => agent.close()));
      await upstream.close();
    });
    const connect = async (): Promise<Agent> => {
      const agent = await startAgent({
        server: relay.url.href,
        upstream,
        log,
        pingIntervalMs: config.pingIntervalMs,
        handshakeTimeoutMs: 10_000,
        reconnect: { minDelayMs: config.reconnectMinMs, maxDelayMs: config.reconnectMaxMs },
      });
      agents.push(agent);
      return agent;
    };

    const freshKiB = residentKiB(relayPid);
    // Warm the relay up with one tunnel and one request, so code loaded on first use (ws, the
    // stream path) is not charged to the 200.
    const warm = await connect();
    expect((await fetchVia(new URL(warm.url))).status).toBe(200);
    await warm.close();
    agents.splice(agents.indexOf(warm), 1);
    await settle(() => relayStatus(relay), (status) => status.relay.tunnels === 0);
    const beforeKiB = residentKiB(relayPid);

    await forEachLimited(Array.from({ length: TUNNELS }, (_, index) => index), 25, async () => {
      await connect();
    });
    const online = await relayStatus(relay);
    const connectedKiB = residentKiB(relayPid);

    const answers: string[] = [];
    await forEachLimited(agents, 25, async (agent) => {
      const response = await fetchVia(new URL(agent.url));
      answers.push(response.status === 200 && response.body.toString() === `hello ${new URL(agent.url).host}` ? 'ok' : `${agent.name}: ${response.status}`);
    });
    const idle = await settle(() => relayStatus(relay), (status) => status.relay.streams === 0 && status.relay.publicConnections === TUNNELS);
    const servedKiB = residentKiB(relayPid);

    const perTunnelKiB = (servedKiB - beforeKiB) / TUNNELS;
    console.log(JSON.stringify({
      tunnels: TUNNELS,
      relayRssKiB: { fresh: freshKiB, before: beforeKiB, connected: connectedKiB, afterOneRequestEach: servedKiB },
      perIdleTunnelKiB: { connected: Math.round(((connectedKiB - beforeKiB) / TUNNELS) * 10) / 10, afterOneRequestEach: Math.round(perTunnelKiB * 10) / 10 },
      relay: idle.relay, resources: idle.resources,
    }));

    expect(online.relay).toMatchObject({ tunnels: TUNNELS, streams: 0 });
    expect(new Set(agents.map((agent) => agent.name)).size).toBe(TUNNELS);
    expect(answers.filter((answer) => answer !== 'ok')).toEqual([]);
    expect(answers).toHaveLength(TUNNELS);
    expect(idle.relay).toMatchObject({ tunnels: TUNNELS, streams: 0, publicConnections: TUNNELS });
    // Loose: the figure is reported, not pinned; this only catches a tunnel costing megabytes.
    expect(perTunnelKiB).toBeLessThan(1024);

    await Promise.all(agents.splice(0).map((agent) => agent.close()));
    const closed = await settle(() => relayStatus(relay), (status) => status.relay.tunnels === 0 && status.relay.publicConnections === 0);
    expect(closed.relay).toMatchObject({ tunnels: 0, streams: 0, publicConnections: 0 });
  });
});
