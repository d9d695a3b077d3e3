import { execFileSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Server } from 'node:net';
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { connectionLimit, openFileLimit } from '../src/connection-limit.ts';
import { type AdminSource, startAdminServer } from '../src/index.ts';
import { fetchText, named, startTestProxy, startUpstream } from './helpers.ts';

/** Collects the servers that start listening while `fn` runs (node's `net.server.listen` tracing channel). */
async function listening<T>(fn: () => Promise<T>): Promise<{ value: T; servers: Server[] }> {
  const servers: Server[] = [];
  const onEnd = (m: unknown) => servers.push((m as { server: Server }).server);
  subscribe('tracing:net.server.listen:asyncEnd', onEnd);
  try {
    return { value: await fn(), servers };
  } finally {
    unsubscribe('tracing:net.server.listen:asyncEnd', onEnd);
  }
}

/**
 * What libuv does when accept() fails and it cannot drop the connection with its reserve descriptor
 * (uv__server_io → connection_cb(stream, err)): node's own onconnection then emits 'error' on the server.
 */
function failAccept(server: Server, errno = constants.errno.EMFILE): void {
  (server as unknown as { _handle: { onconnection(err: number): void } })._handle.onconnection(-errno);
}

function recordingLogger() {
  const warnings: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
  return { warnings, info: () => {}, warn: (obj: object, msg?: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }) };
}

describe('accept errors after listen()', () => {
  it('the proxy listener logs them and keeps serving (a second one was an uncaught exception)', async () => {
    await using up = await startUpstream(named('A'));
    const log = recordingLogger();
    const { value: p, servers } = await listening(() =>
      startTestProxy({ pools: { app: { servers: [{ address: up.address }] } } }, undefined, { logger: log }),
    );
    await using _ = p;
    expect(servers).toHaveLength(1);
    failAccept(servers[0]!);
    failAccept(servers[0]!, constants.errno.ENOBUFS);
    failAccept(servers[0]!);
    expect((await fetchText(`${p.url}/`)).body).toBe('A');
    const logged = log.warnings.filter((w) => w.msg === 'accept failed; still listening');
    // At most one line a second per listener; the ones held back are counted in the next.
    expect(logged.map((w) => (w.obj.error as { code: string }).code)).toEqual(['EMFILE']);
  });

  it('the admin listener logs them and keeps answering', async () => {
    const source: AdminSource = {
      snapshots: async () => [],
      metrics: async () => ({ contentType: 'text/plain', text: '' }),
      draining: () => false,
    };
    const log = recordingLogger();
    const { value: admin, servers } = await listening(() => startAdminServer({ address: '127.0.0.1', port: 0 }, source, log));
    await using _ = admin;
    failAccept(servers[0]!);
    failAccept(servers[0]!);
    const { port } = admin.address();
    expect((await fetchText(`http://127.0.0.1:${port}/healthz`)).body).toBe('ok\n');
    expect(log.warnings.map((w) => w.msg)).toEqual(['accept failed; still listening']);
  });
});

describe('max_connections', () => {
  it('auto is half of the descriptors left after a reserve of 128; numbers are taken as given, 0 = unlimited', () => {
    expect(connectionLimit('auto', 1024)).toBe(448);
    expect(connectionLimit('auto', 200)).toBe(36);
    expect(connectionLimit('auto', 100)).toBe(1);
    expect(connectionLimit('auto', Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
    expect(connectionLimit(500, 200)).toBe(500);
    expect(connectionLimit(0, 200)).toBe(Number.POSITIVE_INFINITY);
  });

  it('reads the soft RLIMIT_NOFILE of this process (a child shell inherits it)', () => {
    const shell = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    expect(openFileLimit()).toBe(shell === 'unlimited' ? Number.POSITIVE_INFINITY : Number(shell));
    expect(openFileLimit('/nonexistent/limits')).toBe(Number.POSITIVE_INFINITY);
  });
});
