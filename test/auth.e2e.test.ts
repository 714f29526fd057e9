import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchVia } from './helpers/http-client.js';
import { startLocalServer } from './helpers/local-server.js';
import { eventually } from './helpers/ports.js';
import { RELAY_BIN, TUNNEL_BIN, runCli, startAgentProcess, startRelayProcess } from './helpers/processes.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdef';

function writeTokens(content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tunnel-tokens-')), 'tokens.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const tokensFile = (): string =>
  writeTokens({
    tokens: [
      { token: ALICE, names: ['alice', 'alice-*'], maxTunnels: 2 },
      { token: BOB, names: ['*'] },
    ],
  });

describe('tokens and names', () => {
  it('refuses a wrong or missing token with a clear message, and accepts the right one', async () => {
    const relay = await startRelayProcess(['--port', '0', '--tokens', tokensFile()]);
    const wrong = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--token', 'not-the-token-at-all']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/AUTH_FAILED.*refused the token/);
    expect(wrong.stderr).not.toContain('not-the-token-at-all');
    const none = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/AUTH_FAILED.*needs a token/);
    const right = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--token', ALICE, '--subdomain', 'alice']);
    expect(right.firstLine).toBe(`http://alice.localhost:${relay.url.port}`);
    expect(relay.stderr()).not.toContain(ALICE);
  });

  it('never gives a name one token holds to another token', async () => {
    const relay = await startRelayProcess(['--port', '0', '--tokens', tokensFile()]);
    for (const name of ['alice', 'alice-blog']) {
      const bob = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--token', BOB, '--subdomain', name]);
      expect(bob.code).toBe(1);
      expect(bob.stderr).toMatch(/SUBDOMAIN_TAKEN.*belongs to another token/);
    }
    const bobFree = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--token', BOB, '--subdomain', 'bobs-app']);
    expect(bobFree.firstLine).toContain('bobs-app.localhost');
    const aliceOther = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--token', ALICE, '--subdomain', 'bobs-app']);
    expect(aliceOther.code).toBe(1);
    const aliceRandom = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--token', ALICE]);
    expect(aliceRandom.url.hostname).toMatch(/^alice-[a-z0-9-]+\.localhost$/);
  });

  it('refuses a tunnel beyond the token\'s maxTunnels', async () => {
    const relay = await startRelayProcess(['--port', '0', '--tokens', tokensFile()]);
    await startAgentProcess(['--port', '9', '--server', relay.url.href, '--token', ALICE]);
    await startAgentProcess(['--port', '9', '--server', relay.url.href, '--token', ALICE]);
    const third = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--token', ALICE]);
    expect(third.code).toBe(1);
    expect(third.stderr).toMatch(/TUNNEL_LIMIT/);
  });

  it('refuses reserved names, built in and configured', async () => {
    const relay = await startRelayProcess(['--port', '0', '--reserved', 'billing', 'support']);
    for (const name of ['www', 'admin', 'billing']) {
      const result = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--subdomain', name]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/SUBDOMAIN_RESERVED/);
    }
  });

  it.each([
    ['not JSON', '{"tokens": [', /not valid JSON/],
    ['a short token', { tokens: [{ token: 'short', names: ['*'] }] }, /tokens\[0\]\.token: must be at least 16 characters/],
    ['a bad name pattern', { tokens: [{ token: ALICE, names: ['ok'] }, { token: BOB, names: ['Bad_Name'] }] }, /tokens\[1\]\.names\[0\]: must be a DNS label/],
    ['an unknown key', { tokens: [{ token: ALICE, names: ['*'] }], extra: 1 }, /invalid at \(root\)/],
  ])('names the entry and key at fault in a tokens file with %s', async (_what, content, pattern) => {
    const result = await runCli(RELAY_BIN, ['--port', '0', '--tokens', writeTokens(content)]);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(pattern);
  });
});

describe('reconnecting keeps the URL', () => {
  it('gives the same URL back after a dropped connection, and nobody else can claim it meanwhile', async () => {
    const local = await startLocalServer((_req, res) => res.end('served'));
    const relay = await startRelayProcess(['--port', '0', '--resume-grace', '60000']);
    const proxy = await startTcpProxy(Number(relay.url.port));
    const agent = await startAgentProcess([
      '--port', String(local.port), '--local-host', '127.0.0.1', '--server', `http://127.0.0.1:${proxy.port}`, '--subdomain', 'keep-me',
    ]);
    const publicUrl = new URL(`http://keep-me.localhost:${relay.url.port}`);
    expect((await fetchVia(publicUrl)).body.toString()).toBe('served');

    await proxy.cut();
    const gap = await fetchVia(publicUrl, { headers: { accept: 'application/json' } });
    expect(gap.status).toBe(502);
    expect(JSON.parse(gap.body.toString())).toMatchObject({ error: { code: 'AGENT_RECONNECTING' } });
    const stranger = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--subdomain', 'keep-me']);
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toMatch(/SUBDOMAIN_TAKEN/);

    await proxy.restore();
    expect(await eventually(async () => (await fetchVia(publicUrl)).body.toString() === 'served', 80, 250)).toBe(true);
    expect(agent.stderr()).toContain('reconnecting');
  });

  it('frees the name at once when the grace period is 0', async () => {
    const relay = await startRelayProcess(['--port', '0', '--resume-grace', '0']);
    const first = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--subdomain', 'free-me']);
    first.kill('SIGKILL');
    await first.exited;
    const next = await eventually(async () => {
      const result = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--subdomain', 'free-me'], undefined, 1500);
      return result.stdout.startsWith(`http://free-me.localhost:${relay.url.port}`);
    }, 20, 100);
    expect(next).toBe(true);
  });
});

describe('a clean goodbye', () => {
  it('frees the name at once when the agent stops cleanly, despite the grace period', async () => {
    const relay = await startRelayProcess(['--port', '0', '--resume-grace', '60000']);
    const first = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--subdomain', 'bye-now']);
    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const next = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--subdomain', 'bye-now']);
    expect(next.firstLine).toBe(`http://bye-now.localhost:${relay.url.port}`);
  });
});
