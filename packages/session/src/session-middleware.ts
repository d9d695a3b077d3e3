import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TgError } from '@tiergate/errors';
import { parseCookie, stringifySetCookie } from 'cookie';
import { readStoredSession, Session, type SessionContext } from './session.ts';
import { newSessionId, type RandomBytes, signSessionId, verifySignedSessionId } from './session-id.ts';
import { inSessionSpan } from './session-span.ts';
import { DEFAULT_ABSOLUTE_TTL_SECONDS, type SessionStore } from './session-store.ts';

export interface SessionCookieOptions {
  /** Default true: scripts cannot read the session id. */
  httpOnly?: boolean;
  /**
   * Default true (also when given as undefined): only sent over HTTPS. A browser drops a Secure cookie
   * set over plain HTTP, so a plain-HTTP stack loses every session: tiergate.yaml turns it off by
   * itself only when every listener is plain HTTP on loopback (sessionCookieSecure in @tiergate/config).
   */
  secure?: boolean;
  /** Default 'lax'. */
  sameSite?: 'lax' | 'strict' | 'none';
  /** Default '/'. */
  path?: string;
  domain?: string;
}

export interface SessionOptions {
  store: SessionStore;
  /**
   * Cookie signing secrets, newest first: the first signs new cookies, all verify, so a secret can be
   * rotated without logging everybody out. Each at least 16 characters (as tiergate.yaml requires).
   */
  secrets: readonly string[];
  /** Default 'tg.sid'. */
  cookieName?: string;
  cookie?: SessionCookieOptions;
  /** Renew the TTL and the cookie's Max-Age on every request that saves (default true). */
  rolling?: boolean;
  /**
   * Longest life of a session from its creation (or its last regenerate), however often `rolling`
   * renews it: each write's TTL is cut to what is left of it (default one day, DEFAULT_ABSOLUTE_TTL_SECONDS;
   * 0 = none). Without it a session used at least once per TTL, or a stolen cookie replayed that
   * often, never ends.
   */
  absoluteTtlSeconds?: number;
  /** Clock in milliseconds for the absolute lifetime (tests move it). */
  now?: () => number;
  /** Source of randomness for ids (tests pin it). */
  randomBytes?: RandomBytes;
}

/** Anything that can take a response header: node:http's ServerResponse, or a framework's wrapper of it. */
export interface HeaderSink {
  getHeader(name: string): number | string | string[] | undefined;
  setHeader(name: string, value: string | string[]): unknown;
}

/** Loads sessions for requests. */
export interface SessionManager {
  readonly cookieName: string;
  readonly store: SessionStore;
  /**
   * The request's session: the stored one its signed cookie names, else a new empty one. Traced as an
   * INTERNAL span `session load` with `tiergate.session.hit` (docs/telemetry.md).
   */
  load(req: Pick<IncomingMessage, 'headers'>, res: HeaderSink): Promise<Session>;
}

const MIN_SECRET_LENGTH = 16;

/**
 * Framework-free sessions for node:http. Usage: `const s = await sessions.load(req, res)`, change
 * `s.data`, then `await s.save()` before writing the response (or let withSession do it).
 * A cookie with a bad signature, a malformed id or an id the store does not know yields a new
 * session with a fresh random id; a client can never choose its session id.
 */
export function sessionMiddleware(options: SessionOptions): SessionManager {
  validateSecrets(options.secrets);
  const cookieName = options.cookieName ?? 'tg.sid';
  const randomBytes = options.randomBytes ?? cryptoRandomBytes;
  const { store } = options;
  // `??` per attribute, not a spread: `{ secure: undefined }` (an unset config key) must not turn Secure off.
  const given = options.cookie ?? {};
  const cookie = {
    httpOnly: given.httpOnly ?? true,
    secure: given.secure ?? true,
    sameSite: given.sameSite ?? ('lax' as const),
    path: given.path ?? '/',
    domain: given.domain,
  };
  const signer = options.secrets[0]!;
  const absoluteTtlMs = (options.absoluteTtlSeconds ?? DEFAULT_ABSOLUTE_TTL_SECONDS) * 1000;
  const now = options.now ?? Date.now;

  const setCookieFor = (res: HeaderSink) => (id: string | undefined, maxAgeSeconds: number) => {
    const value = stringifySetCookie({
      name: cookieName,
      value: id === undefined ? '' : signSessionId(id, signer),
      maxAge: id === undefined ? 0 : maxAgeSeconds,
      ...cookie,
    });
    appendSetCookie(res, cookieName, value);
  };

  return {
    cookieName,
    store,
    load(req, res) {
      return inSessionSpan('session load', async (span) => {
        const context: SessionContext = {
          store,
          rolling: options.rolling ?? true,
          randomBytes,
          absoluteTtlMs,
          now,
          sendCookie: setCookieFor(res),
        };
        const header = req.headers.cookie;
        const signed = header === undefined ? undefined : parseCookie(header)[cookieName];
        const id = signed === undefined ? undefined : verifySignedSessionId(signed, options.secrets);
        const stored = id === undefined ? null : await store.get(id);
        const loaded = stored === null ? undefined : readStoredSession(context, stored);
        span.setAttribute('tiergate.session.hit', loaded !== undefined);
        if (id !== undefined && loaded !== undefined) return new Session(context, id, loaded, true);
        return new Session(context, newSessionId(randomBytes), undefined, signed !== undefined);
      });
    },
  };
}

function validateSecrets(secrets: readonly string[]): void {
  if (secrets.length === 0 || secrets.some((s) => s.length < MIN_SECRET_LENGTH)) {
    throw new TgError('TG_CONFIG_INVALID', `session secrets: need at least one, each at least ${MIN_SECRET_LENGTH} characters`);
  }
}

/** Replaces an earlier Set-Cookie of the session cookie in this response and keeps other cookies. */
function appendSetCookie(res: HeaderSink, name: string, value: string): void {
  const existing = res.getHeader('set-cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  const others = list.filter((line) => !line.startsWith(`${name}=`));
  res.setHeader('set-cookie', [...others, value]);
}

/** withSession publishes `{ error, request }` here for every request it ends with an error (for logs). */
export const sessionErrorChannel = channel('tiergate:session:error');

/** What a handler run by withSession answers. */
export interface SessionReply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export type SessionHandler = (req: IncomingMessage, session: Session) => Promise<SessionReply> | SessionReply;

/**
 * Wraps a handler so the session is loaded before it and saved after it but before the response is
 * written (a save after the headers left could no longer set the cookie, and a failed save must turn
 * into an error response, not a silently lost write). TgErrors become their status with a one-line
 * body (503 when the store is down); any other error becomes 500; never a stack trace.
 */
export function withSession(
  sessions: SessionManager,
  handler: SessionHandler,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    let reply: SessionReply;
    try {
      const session = await sessions.load(req, res);
      reply = await handler(req, session);
      await session.save();
    } catch (err) {
      if (sessionErrorChannel.hasSubscribers) sessionErrorChannel.publish({ error: err, request: req });
      reply = errorReply(err);
      res.removeHeader('set-cookie');
    }
    if (res.headersSent) return;
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body);
  };
}

/** The short, stack-free reply for an error that ends a request. */
export function errorReply(err: unknown): SessionReply {
  const tg = err instanceof TgError ? err : undefined;
  const status = tg?.status ?? 500;
  const text = tg?.code === 'TG_SESSION_STORE_UNAVAILABLE' ? 'session store unavailable' : tg ? tg.code : 'internal error';
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: `${text}\n` };
}
