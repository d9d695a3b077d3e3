import { randomUUID } from 'node:crypto';

/** Longest client-sent X-Request-Id kept (longer ones are replaced, so logs and headers stay bounded). */
export const MAX_REQUEST_ID_LENGTH = 200;

/**
 * The request id of one request: the client's `X-Request-Id` when it is one header of 1–200 visible
 * ASCII characters (0x21–0x7E: no spaces, controls or non-ASCII that could forge log lines), else a
 * new random UUID. A repeated header is not sane (which one would be the id?).
 */
export function requestIdOf(header: string | string[] | undefined, newId: () => string = randomUUID): string {
  if (typeof header !== 'string' || header.length === 0 || header.length > MAX_REQUEST_ID_LENGTH) return newId();
  for (let i = 0; i < header.length; i++) {
    const c = header.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return newId();
  }
  return header;
}
