import type { Duplex } from 'node:stream';

/**
 * Joins two sockets after a `101 Switching Protocols` (WebSocket or any Upgrade) in both directions
 * with backpressure (`pipe`). A half-close is passed on (`pipe` ends the other side), and when either
 * side closes, errors or stays idle for `idleMs` (0 = never), both are destroyed, so no socket can
 * outlive its peer; `onClose` runs once, after both are gone.
 *
 * Hand-written instead of http-proxy (last release 2020, known socket leaks on upgrade errors) or
 * http-proxy-3: the request side of the upgrade already goes through undici like any request, so
 * only this join is left, and two pipes plus a teardown are smaller than adopting either library.
 */
export function joinSockets(
  client: Duplex,
  upstream: Duplex & { setTimeout?(ms: number): unknown },
  idleMs: number,
  onClose: () => void,
): () => void {
  let open = 2;
  let torn = false;
  const teardown = () => {
    if (torn) return;
    torn = true;
    client.destroy();
    upstream.destroy();
  };
  const closed = () => {
    teardown();
    if (--open === 0) onClose();
  };
  for (const s of [client, upstream]) {
    s.on('error', teardown);
    if (s.closed) queueMicrotask(closed);
    else s.once('close', closed);
  }
  if (idleMs > 0 && upstream.setTimeout) {
    upstream.setTimeout(idleMs);
    upstream.on('timeout', teardown);
  }
  client.pipe(upstream);
  upstream.pipe(client);
  return teardown;
}
