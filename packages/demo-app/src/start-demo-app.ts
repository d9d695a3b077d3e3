import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopbackAddress } from '@tiergate/config';
import { createDemoApp, type DemoAppOptions } from './demo-app.ts';

export interface StartDemoAppOptions extends DemoAppOptions {
  /** Default 0: a free port, read it back from `port`/`url`. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

/** A listening demo app; dispose (or close()) stops it and closes its connections. */
export interface RunningDemoApp extends AsyncDisposable {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * Creates the demo app and listens; the caller owns (and closes) the store. The session cookie is
 * Secure unless `session.cookie.secure` says otherwise or the app listens on a loopback address (plain
 * HTTP only this host reaches: the rule of sessionCookieSecure in @tiergate/config).
 */
export async function startDemoApp(options: StartDemoAppOptions): Promise<RunningDemoApp> {
  const host = options.host ?? '127.0.0.1';
  const cookie = options.session?.cookie;
  const secure = cookie?.secure ?? !isLoopbackAddress(host);
  const server = createDemoApp({ ...options, session: { ...options.session, cookie: { ...cookie, secure } } });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    server,
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
