import { BlockList } from 'node:net';
import { Client } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

describe('the client connection peer', () => {
  it('is checked against trusted_proxies once per connection, and again after a reload changes the list', async () => {
    await using up = await startUpstream((req, res) => res.end(String(req.headers['x-real-ip'])));
    const pools = { app: { servers: [server(up)] } };
    await using p = await startTestProxy({ pools, trusted_proxies: ['10.0.0.0/8'] });
    // As configured (reloads compare the configured listeners, port 0 included).
    const trustLoopback = proxySection({ listeners: [{ address: '127.0.0.1', port: 0 }], pools, trusted_proxies: ['127.0.0.0/8'] });
    const check = vi.spyOn(BlockList.prototype, 'check');
    const client = new Client(p.url, { pipelining: 1 });
    try {
      const get = async () => (await client.request({ path: '/', method: 'GET', headers: { 'x-real-ip': '203.0.113.9' } })).body.text();
      // 127.0.0.1 is not in 10.0.0.0/8: its X-Real-IP is not believed, on any request of the connection.
      for (let i = 0; i < 5; i++) expect(await get()).toBe('127.0.0.1');
      expect(check).toHaveBeenCalledTimes(1);
      // Same connection, a list that holds the peer: believed from the next request on.
      await p.proxy.reload(trustLoopback);
      for (let i = 0; i < 3; i++) expect(await get()).toBe('203.0.113.9');
      expect(check).toHaveBeenCalledTimes(2);
    } finally {
      check.mockRestore();
      await client.close();
    }
  });
});
