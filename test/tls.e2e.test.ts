import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { describe, expect, it } from 'vitest';
import { makeCertificate } from './helpers/certificate.js';
import { startLocalServer } from './helpers/local-server.js';
import { freePort } from './helpers/ports.js';
import { RELAY_BIN, TUNNEL_BIN, runCli, startCli } from './helpers/processes.js';

describe('HTTPS relay', () => {
  it('serves tunnels over HTTPS, takes agents over wss://, and redirects plain HTTP', async () => {
    const certificate = makeCertificate(['tunnel.test', '*.tunnel.test', 'IP:127.0.0.1']);
    const seen: Array<string | undefined> = [];
    const local = await startLocalServer((req, res) => {
      seen.push(req.headers['x-forwarded-proto'] as string | undefined);
      res.end('over tls');
    });
    const redirectPort = await freePort();
    const relay = await startCli(RELAY_BIN, [
      '--port', '0', '--domain', 'tunnel.test', '--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath,
      '--redirect-http', String(redirectPort), '--log-level', 'warn',
    ]);
    const relayUrl = new URL(relay.firstLine);
    expect(relayUrl.protocol).toBe('https:');

    const untrusted = await runCli(TUNNEL_BIN, ['--port', String(local.port), '--server', `https://127.0.0.1:${relayUrl.port}`]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/Cannot reach the relay at wss:\/\/127\.0\.0\.1:\d+\/_tunnel: .*self[- ]signed/i);

    const agent = await startCli(
      TUNNEL_BIN,
      ['--port', String(local.port), '--local-host', '127.0.0.1', '--server', `https://127.0.0.1:${relayUrl.port}`, '--subdomain', 'secure', '--log-level', 'warn'],
      { NODE_EXTRA_CA_CERTS: certificate.certPath },
    );
    expect(agent.firstLine).toBe(`https://secure.tunnel.test:${relayUrl.port}`);

    const req = httpsRequest({
      host: '127.0.0.1', port: relayUrl.port, path: '/', servername: 'secure.tunnel.test', ca: certificate.cert,
      headers: { host: `secure.tunnel.test:${relayUrl.port}` },
    });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    let body = '';
    for await (const chunk of res) body += chunk;
    expect(res.statusCode).toBe(200);
    expect(body).toBe('over tls');
    expect(seen).toEqual(['https']);

    const plain = httpRequest({ host: '127.0.0.1', port: redirectPort, path: '/page?x=1', headers: { host: `secure.tunnel.test:${redirectPort}` } });
    plain.end();
    const [redirect] = (await once(plain, 'response')) as [IncomingMessage];
    redirect.resume();
    expect(redirect.statusCode).toBe(308);
    expect(redirect.headers.location).toBe(`https://secure.tunnel.test:${relayUrl.port}/page?x=1`);
  });

  it('refuses to start with a certificate but no key, or files it cannot read', async () => {
    const certificate = makeCertificate(['tunnel.test']);
    const noKey = await runCli(RELAY_BIN, ['--port', '0', '--tls-cert', certificate.certPath]);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/needs both --tls-cert and --tls-key/);
    const missing = await runCli(RELAY_BIN, ['--port', '0', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', certificate.keyPath]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Cannot read the TLS certificate \/nonexistent\/cert\.pem/);
  });
});
