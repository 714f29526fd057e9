import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startLocalServer } from './helpers/local-server.js';
import { RELAY_BIN, startAgentProcess, startCli, statusLine } from './helpers/processes.js';
import { timedRequests } from './helpers/timed-requests.js';

const ATTACKERS = 500;
const PER_IP_LIMIT = 256;
const BYTE_EVERY_MS = 5000;
const DURATION_MS = 12_000;
const GAP_MS = 250;
const WARM_UP = 10;
const PROBE_WARM_UP = 3;

describe('slowloris', () => {
  it('500 connections dribbling header bytes do not slow a normal request on another tunnel, and stay under the limits', async () => {
    const local = await startLocalServer((_req, res) => res.end('fine'));
    const relay = await startCli(RELAY_BIN, ['--port', '0', '--max-connections-per-ip', String(PER_IP_LIMIT), '--log-level', 'info']);
    const relayUrl = new URL(relay.firstLine);
    const victim = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relayUrl.href, '--subdomain', 'victim']);
    const other = await startAgentProcess(['--port', String(local.port), '--local-host', '127.0.0.1', '--server', relayUrl.href, '--subdomain', 'bystander']);
    // Before the attack: the first requests of new processes pay for JIT compilation.
    await timedRequests(other.url, WARM_UP, { fresh: true, accept: '*/*' });

    // The attack comes from 127.0.0.2, another loopback address, so per-address limits apply to it alone.
    const request = `GET / HTTP/1.1\r\nHost: ${victim.url.host}\r\nUser-Agent: slow\r\n`;
    const sockets: Socket[] = [];
    let refused = 0;
    onTestFinished(() => {
      for (const socket of sockets) socket.destroy();
    });
    for (let i = 0; i < ATTACKERS; i += 1) {
      const socket = connect({ host: '127.0.0.1', port: Number(relayUrl.port), localAddress: '127.0.0.2' });
      socket.on('error', () => undefined);
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        if (chunk.startsWith('HTTP/1.1 429')) refused += 1;
      });
      sockets.push(socket);
    }
    let offset = 0;
    const dribble = setInterval(() => {
      offset += 1;
      for (const socket of sockets) if (!socket.destroyed) socket.write(request.slice(offset - 1, offset));
    }, BYTE_EVERY_MS);
    onTestFinished(() => clearInterval(dribble));
    await new Promise((resolve) => setTimeout(resolve, 500));

    // Each request opens a new connection, as a new visitor would, from a process of its own;
    // the probe's first few pay for its own start, so they must succeed but are not timed.
    const answers = await timedRequests(other.url, PROBE_WARM_UP + Math.floor(DURATION_MS / GAP_MS), { gapMs: GAP_MS, fresh: true, accept: '*/*' });
    for (const answer of answers) expect(answer.body).toBe('fine');
    const latenciesMs = answers.slice(PROBE_WARM_UP).map((answer) => answer.ms);
    const status = (await statusLine(relay, 'relay status')).relay as { publicConnections: number };
    expect(refused).toBeGreaterThanOrEqual(ATTACKERS - PER_IP_LIMIT);
    // The attacker's share, plus the two agents and at most one normal client connection.
    expect(status.publicConnections).toBeLessThanOrEqual(PER_IP_LIMIT + 3);
    expect(Math.max(...latenciesMs)).toBeLessThan(100);
  }, 60_000);
});
