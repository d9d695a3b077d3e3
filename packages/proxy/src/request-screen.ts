import type { IncomingMessage } from 'node:http';

/**
 * Requests node's parser (llhttp) lets through that the proxy refuses with 400 before routing, as nginx
 * does: node already refuses a missing Host in HTTP/1.1, Content-Length with Transfer-Encoding, repeated or
 * malformed Content-Length, unknown transfer codings, bare CR/LF and control bytes (docs/proxy.md,
 * "Hostile requests"); these are the remaining framing and Host checks.
 *
 * - More than one `Host`, or a `Host` nginx would call invalid (RFC 9112 §3.2: 400 for both). Routing reads
 *   the first `Host` and the upstream gets them all: an application reading the last one would see another
 *   site than the one routing chose.
 * - HTTP/1.0 with `Transfer-Encoding` (RFC 9112 §6.1: the framing is faulty). llhttp reads such a body as
 *   chunked, while an HTTP/1.0 hop in front may not: that difference is what request smuggling exploits.
 */
export function refusedRequest(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) return true;
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (++hosts > 1 || !validHost(raw[i + 1]!)) return true;
  }
  return false;
}

/**
 * nginx's ngx_http_validate_host: no control bytes, space, DEL or `/`; no `..`; something before the port
 * (a bare trailing dot does not count). Upper case and bytes above 0x7F are allowed, as nginx allows them.
 */
export function validHost(host: string): boolean {
  let end = host.length;
  let literal = false;
  let dot = -2;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c === 0x2e) {
      if (dot === i - 1) return false;
      dot = i;
    } else if (c === 0x3a) {
      if (end === host.length && !literal) end = i;
    } else if (c === 0x5b) {
      if (i === 0) literal = true;
    } else if (c === 0x5d) {
      if (literal && end === host.length) {
        end = i + 1;
        literal = false;
      }
    } else if (c <= 0x20 || c === 0x7f || c === 0x2f) return false;
  }
  if (dot === end - 1) end--;
  return end > 0;
}
