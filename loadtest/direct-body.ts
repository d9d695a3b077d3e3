/**
 * What the bare loops (bare-undici-proxy.ts, bare-lean-proxy.ts) answer without upstream ports (proxy-bench's
 * `-direct` targets): GET /bN gets N bytes, anything else `ok`. The server side alone, without undici and the
 * upstream's load on the other core. At most 16 bodies are kept.
 */
const bodies = new Map<string, Buffer>();
export function directBody(url: string): Buffer {
  let b = bodies.get(url);
  if (b === undefined) {
    const m = /^\/b(\d+)$/.exec(url);
    b = Buffer.from(m ? 'x'.repeat(Number(m[1])) : 'ok\n');
    if (bodies.size < 16) bodies.set(url, b);
  }
  return b;
}
