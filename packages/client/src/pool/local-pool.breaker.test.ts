// LocalPool failing fast while the local service is down, and the health probe that feeds the same breaker.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { TunnelError } from '@tunnel/protocol';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './fake-clock.test-helper.js';
import { answerOk, closedPort, createPool, send, startLocalServer, watchClientSockets } from './local-pool.test-helper.js';

describe('LocalPool', () => {
  describe('circuit breaker', () => {
    it('fails fast after the threshold without dialing, then closes after a successful trial', async () => {
      const port = await closedPort();
      const clock = new FakeClock();
      const pool = createPool(port, { clock, breaker: { failureThreshold: 3, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      for (let i = 0; i < 3; i++) {
        await expect(send(pool)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      }
      expect(pool.figures()).toMatchObject({ connectAttempts: 3, connectFailures: 3, breakerState: 'open' });

      let failure: unknown;
      pool.dispatch({ method: 'GET', path: '/' }, {
        onResponseError: (_controller, error) => {
          failure = error;
        },
      });
      // Failed before dispatch returned: no socket, no timer, no tick.
      expect(failure).toBeInstanceOf(TunnelError);
      expect(failure).toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect((failure as Error).message).toContain(`127.0.0.1:${port}`);
      expect((failure as Error).message).toContain('1.0 s');
      expect(pool.figures()).toMatchObject({ connectAttempts: 3, fastFailures: 1 });

      await startLocalServer(answerOk, port);
      clock.advance(999);
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      clock.advance(1);
      expect(pool.figures().breakerState).toBe('half-open');
      const trial = send(pool);
      // Only the trial goes through while half-open.
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect((await trial).body).toBe('ok');
      expect(pool.figures()).toMatchObject({ breakerState: 'closed', breakerTransitions: 3, connectAttempts: 4, fastFailures: 3 });
      expect((await send(pool)).status).toBe(200);
    });

    it('reopens when the trial cannot connect either', async () => {
      const port = await closedPort();
      const clock = new FakeClock();
      const pool = createPool(port, { clock, breaker: { failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      await expect(send(pool)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      clock.advance(1_000);
      await expect(send(pool)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(pool.figures()).toMatchObject({ breakerState: 'open', breakerTransitions: 3, connectAttempts: 2 });
      // The cooldown grew (about doubled), so the old one is no longer enough.
      clock.advance(1_000);
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
      expect(pool.figures().connectAttempts).toBe(2);
    });

    it('does not count failed warm-up dials toward the breaker', async () => {
      const port = await closedPort();
      const clientSockets = watchClientSockets();
      const pool = createPool(port, { minIdle: 4, breaker: { failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      expect(clientSockets).toHaveLength(4);
      await Promise.all(clientSockets.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
      await nextTurn();
      expect(pool.figures()).toMatchObject({ connectAttempts: 4, connectFailures: 4, breakerState: 'closed' });
    });
  });

  describe('probe', () => {
    it('reports a status below 500 as healthy without counting it as traffic', async () => {
      const local = await startLocalServer((request, response) => {
        response.statusCode = request.url === '/health' ? 204 : 404;
        response.end();
      });
      const pool = createPool(local.port);
      expect(await pool.probe('/health')).toBe(true);
      expect(await pool.probe('/missing')).toBe(true);
      expect(pool.figures().requests).toBe(0);
    });

    it('reports a 5xx answer or a refused connection as unhealthy', async () => {
      const local = await startLocalServer((_request, response) => {
        response.statusCode = 503;
        response.end();
      });
      expect(await createPool(local.port).probe('/health')).toBe(false);
      expect(await createPool(await closedPort()).probe('/health')).toBe(false);
    });

    it('opens the breaker after failureThreshold probes in a row answer 5xx', async () => {
      const local = await startLocalServer((_request, response) => {
        response.statusCode = 503;
        response.end();
      });
      const pool = createPool(local.port, { breaker: { failureThreshold: 2, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      await pool.probe('/health');
      expect(pool.figures().breakerState).toBe('closed');
      await pool.probe('/health');
      expect(pool.figures().breakerState).toBe('open');
      await expect(send(pool)).rejects.toMatchObject({ code: 'LOCAL_UNREACHABLE' });
    });

    it('counts a 5xx answer to an ordinary request as the service answering', async () => {
      const local = await startLocalServer((_request, response) => {
        response.statusCode = 500;
        response.end('app error');
      });
      const pool = createPool(local.port, { breaker: { failureThreshold: 1, cooldownMs: 1_000, maxCooldownMs: 10_000 } });
      for (let i = 0; i < 3; i++) expect((await send(pool)).status).toBe(500);
      expect(pool.figures().breakerState).toBe('closed');
    });
  });
});
