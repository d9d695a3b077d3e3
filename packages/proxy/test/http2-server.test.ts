import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { createHttp2Listener, http1RawHeaders } from '../src/http2-server.ts';
import { listenerTlsOptions } from '../src/listener-tls.ts';
import { certFiles } from './h2-helpers.ts';
import { proxySection } from './helpers.ts';

/** node:net keeps whether setNoDelay(true) was applied under this symbol (net.js kSetNoDelay). */
function noDelayOf(socket: Socket): unknown {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay');
  return sym ? (socket as unknown as Record<symbol, unknown>)[sym] : undefined;
}

function noop(): void {}

describe('createHttp2Listener', () => {
  it('disables Nagle on accepted sockets, as node:http(s) does (a chunked response would wait for delayed ACKs)', async () => {
    await using tls = await certFiles();
    // The listener as the schema gives it (TLS defaults filled in: protocols, ciphers, tickets).
    const section = proxySection({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key } }],
      pools: { a: { servers: [{ address: '127.0.0.1:1' }] } },
    });
    const server = createHttp2Listener(listenerTlsOptions(section.listeners[0]!), section.limits, noop, noop);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // The TCP socket (the TLS socket wraps it): where TCP_NODELAY is set.
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    });
    client.on('error', () => {});
    const [socket] = await accepted;
    expect(noDelayOf(socket)).toBe(true);
    client.destroy();
    await new Promise((r) => server.close(r));
  });
});

describe('http1RawHeaders', () => {
  it('turns :authority into the first Host, drops pseudo-headers and joins cookies', () => {
    expect(
      http1RawHeaders([':method', 'GET', ':authority', 'a.example', ':path', '/', 'cookie', 'a=1', 'x', '1', 'cookie', 'b=2']),
    ).toEqual(['host', 'a.example', 'x', '1', 'cookie', 'a=1; b=2']);
  });

  it('keeps a Host that disagrees with :authority (so the request is refused as a repeated Host), one agreeing Host only', () => {
    expect(http1RawHeaders([':authority', 'a.example', 'host', 'b.example'])).toEqual(['host', 'a.example', 'host', 'b.example']);
    expect(http1RawHeaders([':authority', 'a.example', 'host', 'A.EXAMPLE'])).toEqual(['host', 'a.example']);
  });

  it('keeps the Host of a request without :authority; with neither, an empty Host (refused, as nginx answers 400)', () => {
    expect(http1RawHeaders([':path', '/', 'host', 'h.example'])).toEqual(['host', 'h.example']);
    expect(http1RawHeaders([':path', '/'])).toEqual(['host', '']);
  });
});
