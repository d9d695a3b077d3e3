import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpServer extends AsyncDisposable {
  server: Server;
  url: string;
}

/** A real HTTP server on 127.0.0.1 and port 0, closed on dispose. */
export async function listen(server: Server): Promise<HttpServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    [Symbol.asyncDispose]: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function startHttp(handler: RequestListener): Promise<HttpServer> {
  return listen(createServer(handler));
}

/** The `name=value` pair of a Set-Cookie header, ready for a Cookie header. */
export function cookiePair(setCookie: string | string[] | undefined, name: string): string | undefined {
  const lines = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie];
  const line = lines.find((l) => l.startsWith(`${name}=`));
  return line?.split(';')[0];
}

export const SECRET_A = 'a'.repeat(32);
export const SECRET_B = 'b'.repeat(32);
