import { describe, expect, it } from 'vitest';
import { TcpChecker } from '../src/index.ts';
import { closedPort, httpServer, waitFor } from './helpers.ts';

describe('TcpChecker', () => {
  it('is ok when the connection is established, and closes it at once', async () => {
    await using srv = await httpServer((_req, res) => res.end());
    let opened = 0;
    let closed = 0;
    srv.server.on('connection', (s) => {
      opened += 1;
      s.on('close', () => {
        closed += 1;
      });
    });
    const r = await new TcpChecker().check({ host: '127.0.0.1', port: srv.port }, 1000);
    expect(r).toMatchObject({ ok: true, detail: 'connected' });
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    await waitFor(() => opened === 1 && closed === 1, 'the server to see the connection closed');
  });

  it('fails with ECONNREFUSED on a closed port', async () => {
    const port = await closedPort();
    const r = await new TcpChecker().check({ host: '127.0.0.1', port }, 1000);
    expect(r.ok).toBe(false);
    expect(r.detail).toContain('ECONNREFUSED');
  });

  it('fails as aborted when the signal is already aborted', async () => {
    await using srv = await httpServer((_req, res) => res.end());
    const r = await new TcpChecker().check({ host: '127.0.0.1', port: srv.port }, 1000, AbortSignal.abort());
    expect(r).toMatchObject({ ok: false, detail: 'aborted' });
  });
});
