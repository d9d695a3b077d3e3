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
  const status = httpStatusOf(code);
  return sendText(res, status, `${status} ${STATUS_CODES[status] ?? 'Error'} (${code})\n`, ['x-tiergate-error', code, ...extra], close);
}

/**
 * Answers a request with a redirect to `location`: a one-line plain-text body naming it (nginx sends a small
 * HTML page; clients follow the Location either way). `close` ends the connection afterwards (an unread body).
 * Returns the body bytes sent.
 */
export function sendRedirect(res: ServerResponse, status: number, location: string, close: boolean, extra: readonly string[]): number {
  return sendText(res, status, `${status} ${STATUS_CODES[status] ?? 'Redirect'}: ${location}\n`, ['location', location, ...extra], close);
}

/** The proxy's own answer: `body` as text/plain with `fields` (a flat name/value list); see sendError for the rest. */
function sendText(res: ServerResponse, status: number, body: string, fields: readonly string[], close: boolean): number {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return 0;
  }
  const length = Buffer.byteLength(body);
  const headers = ['content-type', 'text/plain; charset=utf-8', 'content-length', String(length), ...fields];
  if (close) headers.push('connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
  return length;
}
