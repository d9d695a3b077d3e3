import { describe, expect, it } from 'vitest';
import { fetchText, named, server, startTestProxy, startUpstream } from './helpers.ts';

describe('smoke', () => {
  it('proxies a GET and a POST', async () => {
    await using a = await startUpstream(named('a'), 'a');
    await using p = await startTestProxy({ pools: { app: { servers: [server(a)] } } });
    const r = await fetchText(`${p.url}/x?y=1`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('a');
    const post = await fetchText(`${p.url}/post`, { method: 'POST', body: 'hello' });
    expect(post.status).toBe(200);
    expect(a.seen.map((r) => r.url)).toEqual(['/x?y=1', '/post']);
  });
});
