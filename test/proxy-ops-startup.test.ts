import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { configDir, proxyYaml, runCli } from './proxy-ops-helpers.ts';

describe('tiergate proxy startup failures', () => {
  it.each([1, 2])('workers: %i — a listener port in use ends the command with exit 1 and TG_PROXY_LISTEN', async (workers) => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const port = (taken.address() as { port: number }).port;
      using cfg = configDir(proxyYaml({ workers, servers: ['127.0.0.1:9'] }).replace('port: 0 }]', `port: ${port} }]`));
      const r = await runCli(['proxy', '-c', cfg.file], 30_000);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/\[TG_PROXY_LISTEN\]/);
      expect(r.stdout).not.toContain('listening on');
    } finally {
      taken.close();
    }
  });
});
