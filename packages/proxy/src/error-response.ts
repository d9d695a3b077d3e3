import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { type ErrorCode, httpStatusOf, TgError } from '@tiergate/errors';
import { http } from './node-http.ts';

/**
 * Answers a request with a short plain-text error (`502 Bad Gateway (TG_PROXY_UPSTREAM_RESET)`) and
 * the code in `x-tiergate-error`; never a stack trace. `close` ends the connection afterwards (the
 * request body was not read). When the response has already started, the only honest signal left is
 * to cut the connection, so the client cannot take a truncated response for a complete one. `extra` is a
 * flat name/value list added to the answer (X-Request-Id, Retry-After). Returns the body bytes sent.
 */
export function sendError(res: ServerResponse, code: ErrorCode, close = false, extra: readonly string[] = [], pages?: ErrorPages): number {
  const status = httpStatusOf(code);
  const page = pages?.get(status);
  const fields = ['x-tiergate-error', code, ...extra];
  if (page) return sendBody(res, status, page.body, page.contentType, fields, close);
  return sendText(res, status, `${status} ${http.STATUS_CODES[status] ?? 'Error'} (${code})\n`, fields, close);
}

/** `error_pages`, read: the body and type of the proxy's own answer per status. */
export type ErrorPages = ReadonlyMap<number, { readonly body: Buffer; readonly contentType: string }>;

/** The largest error page read: the answer is sent whole from memory. */
const MAX_ERROR_PAGE_BYTES = 1024 * 1024;

/** Reads `error_pages` (at start and on reload): an unreadable or oversized file rejects with its path. */
export function loadErrorPages(pages: readonly { status: readonly number[]; file: string; content_type: string }[]): ErrorPages {
  const out = new Map<number, { body: Buffer; contentType: string }>();
  pages.forEach((p, i) => {
    const path = ['proxy', 'error_pages', i, 'file'];
    let body: Buffer;
    try {
      body = readFileSync(p.file);
    } catch (cause) {
      throw new TgError('TG_CONFIG_INVALID', `error page ${p.file}: cannot read it: ${(cause as Error).message}`, {
        details: { path },
        cause,
      });
    }
    if (body.length > MAX_ERROR_PAGE_BYTES)
      throw new TgError('TG_CONFIG_INVALID', `error page ${p.file}: ${body.length} bytes; at most ${MAX_ERROR_PAGE_BYTES}`, {
        details: { path },
      });
    for (const status of p.status) out.set(status, { body, contentType: p.content_type });
  });
  return out;
}

/**
 * Answers a request with a redirect to `location`: a one-line plain-text body naming it (nginx sends a small
 * HTML page; clients follow the Location either way). `close` ends the connection afterwards (an unread body).
 * Returns the body bytes sent.
 */
export function sendRedirect(res: ServerResponse, status: number, location: string, close: boolean, extra: readonly string[]): number {
  return sendText(
    res,
    status,
    `${status} ${http.STATUS_CODES[status] ?? 'Redirect'}: ${location}\n`,
    ['location', location, ...extra],
    close,
  );
}

/** The proxy's own answer: `body` as text/plain with `fields` (a flat name/value list); see sendError for the rest. */
function sendText(res: ServerResponse, status: number, body: string, fields: readonly string[], close: boolean): number {
  return sendBody(res, status, body, 'text/plain; charset=utf-8', fields, close);
}

function sendBody(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  type: string,
  fields: readonly string[],
  close: boolean,
): number {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return 0;
  }
  const length = Buffer.byteLength(body);
  const headers = ['content-type', type, 'content-length', String(length), ...fields];
  if (close) headers.push('connection', 'close');
  res.writeHead(status, headers);
  res.end(body);
  return length;
}
