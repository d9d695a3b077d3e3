import { type ServerResponse, STATUS_CODES } from 'node:http';
import { type ErrorCode, httpStatusOf } from '@tiergate/errors';

/**
 * Answers a request with a short plain-text error (`502 Bad Gateway (TG_PROXY_UPSTREAM_RESET)`) and
 * the code in `x-tiergate-error`; never a stack trace. `close` ends the connection afterwards (the
 * request body was not read). When the response has already started, the only honest signal left is
 * to cut the connection, so the client cannot take a truncated response for a complete one. `extra` is a
 * flat name/value list added to the answer (X-Request-Id, Retry-After). Returns the body bytes sent.
 */
export function sendError(res: ServerResponse, code: ErrorCode, close = false, extra: readonly string[] = []): number {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return 0;
  }
  const status = httpStatusOf(code);
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'} (${code})\n`;
  const headers = [
    'content-type',
    'text/plain; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
    'x-tiergate-error',
    code,
  ];
  for (const h of extra) headers.push(h);
  if (close) headers.push('connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
  return Buffer.byteLength(body);
}

/**
 * Answers a request with a redirect to `location`: a one-line plain-text body naming it (nginx sends a small
 * HTML page; clients follow the Location either way). `close` ends the connection afterwards (an unread body).
 * Returns the body bytes sent.
 */
export function sendRedirect(res: ServerResponse, status: number, location: string, close: boolean, extra: readonly string[]): number {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return 0;
  }
  const body = `${status} ${STATUS_CODES[status] ?? 'Redirect'}: ${location}\n`;
  const headers = ['location', location, 'content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(body))];
  for (const h of extra) headers.push(h);
  if (close) headers.push('connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
  return Buffer.byteLength(body);
}
