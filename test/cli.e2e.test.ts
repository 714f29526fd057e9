import { describe, expect, it } from 'vitest';
import { RELAY_BIN, TUNNEL_BIN, runCli, startAgentProcess, startRelayProcess } from './helpers/processes.js';

describe('command line', () => {
  it.each([
    [['--port', '0'], /--port.*1 to 65535/],
    [['--port', '70000'], /--port.*1 to 65535/],
    [['--port', 'http'], /--port.*1 to 65535/],
    [[], /required option.*--port/],
    [['--port', '8080', '--server', 'not a url'], /not a URL/],
    [['--port', '8080', '--server', 'ftp://relay.example.com'], /http\(s\) or ws\(s\) URL/],
    [['--port', '8080', '--subdomain', 'Bad_Name'], /subdomain.*DNS label/],
    [['--port', '8080', '--relay-port', '-1'], /--relay-port.*0 to 65535/],
    [['--port', '8080', '--bogus'], /unknown option '--bogus'/],
    [['--port', '8080', '--log-level', 'loud'], /logLevel \(from flags\)/],
    [['--port', '8080', '--pool-min-idle', '100'], /poolMinIdle.*poolMaxSockets/],
  ])('tunnel %j exits 2 with one clear line', async (args, pattern) => {
    const result = await runCli(TUNNEL_BIN, args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tunnel: /);
    expect(lines[0]).toMatch(pattern);
  });

  it.each([
    [['--port', '99999'], /--port.*0 to 65535/],
    [['--domain', 'not a domain'], /domain.*hostname/],
    [['--log-level', 'loud'], /logLevel \(from flags\)/],
  ])('tunnel-server %j exits non-zero with one clear line', async (args, pattern) => {
    const result = await runCli(RELAY_BIN, args);
    expect(result.code).not.toBe(0);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tunnel-server: /);
    expect(lines[0]).toMatch(pattern);
  });

  it('prints only the relay base URL as its first stdout line', async () => {
    const relay = await startRelayProcess();
    expect(relay.firstLine).toMatch(/^http:\/\/localhost:\d+$/);
  });

  it('exits 1 with the relay reason when the requested name is taken', async () => {
    const relay = await startRelayProcess();
    await startAgentProcess(['--port', '9', '--server', relay.url.href, '--subdomain', 'taken-name']);
    const second = await runCli(TUNNEL_BIN, ['--port', '9', '--server', relay.url.href, '--subdomain', 'taken-name']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/SUBDOMAIN_TAKEN.*"taken-name" is in use/);
  });

  it('gives the requested subdomain when it is free', async () => {
    const relay = await startRelayProcess();
    const agent = await startAgentProcess(['--port', '9', '--server', relay.url.href, '--subdomain', 'my-app']);
    expect(agent.firstLine).toBe(`http://my-app.localhost:${relay.url.port}`);
  });

  it('exits 1 with a clear message when the relay cannot be reached', async () => {
    const result = await runCli(TUNNEL_BIN, ['--port', '9', '--server', 'http://127.0.0.1:9']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Cannot reach the relay at ws:\/\/127\.0\.0\.1:9\/_tunnel/);
  });

  it('reads the relay from TUNNEL_SERVER when --server is absent', async () => {
    const relay = await startRelayProcess();
    const result = await runCli(TUNNEL_BIN, ['--port', '9', '--subdomain', 'from-env'], { TUNNEL_SERVER: relay.url.href }, 3_000);
    expect(result.stdout.split('\n')[0]).toBe(`http://from-env.localhost:${relay.url.port}`);
  });
});
