import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { hostname as osHostname } from 'node:os';
import { type Session, type SessionOptions, type SessionReply, type SessionStore, sessionMiddleware, withSession } from '@tiergate/session';
import { newCaptchaCode, type RandomInt, renderCaptchaSvg } from './captcha.ts';
import { clientAddress, parseTrustedProxies } from './client-address.ts';
import { renderHomePage } from './home-page.ts';
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle.ts';
import { DemoServer, download } from './long-lived.ts';
import { HttpError, readFields, stringField } from './request-body.ts';
import { describeServerSpan } from './server-span.ts';

/**
 * A fixed secret so that several demo instances sign cookies alike out of the box. It is public (it
 * is in this file): anything beyond a local demo must pass its own `secrets`.
 */
export const DEMO_SECRET = 'tiergate-demo-secret-not-for-production!';

export interface DemoAppOptions {
  /** Shown on every page and in the X-Instance-Id header, so you can see the balancer at work. */
  instanceId: string;
  /** Where sessions live: a RedisSessionStore shared by all instances, or a MemoryStore to show the bug. */
  store: SessionStore;
  /** Cookie signing secrets, newest first (default: DEMO_SECRET). */
  secrets?: readonly string[];
  /**
   * Demo mode (default false): the built-in users (alice/wonderland, bob/builder) and the captcha's
   * answer as JSON (`GET /captcha` with Accept: application/json), both for scripts and tests of a
   * throwaway stack. Off, the app knows no users unless `users` names some, and /captcha is an image
   * only: a deployed app that anybody can reach must not log in with published passwords or hand
   * its captcha to a script.
   */
  demo?: boolean;
  /** user → password (default: the built-in users in demo mode, none otherwise). */
  users?: Readonly<Record<string, string>>;
  /** Limits on failed logins (LoginThrottle's defaults: 5 per user, 20 per address, per 5 minutes). */
  loginThrottle?: LoginThrottleOptions;
  /** CIDRs whose X-Real-IP header is believed (default: none). */
  trustedProxies?: readonly string[];
  /**
   * The session cookie and renewal, as `sessions` configures them (sessionOptionsFromConfig): name,
   * attributes, rolling, absolute lifetime. Default: `tg.sid`, HttpOnly, SameSite=Lax, rolling, and
   * Secure unless `secure` says otherwise (createDemoApp does not know where it will listen;
   * startDemoApp turns Secure off by default only on a loopback address).
   */
  session?: Pick<SessionOptions, 'cookieName' | 'cookie' | 'rolling' | 'absoluteTtlSeconds'>;
  /** Shown on the page (default: os.hostname()). */
  hostname?: string;
  /** Randomness for captcha codes (tests pin it). */
  randomInt?: RandomInt;
}

const DEFAULT_USERS = { alice: 'wonderland', bob: 'builder' };
const ITEM_PATTERN = /^[\w .-]{1,64}$/;
/**
 * Each cart line is its own top-level session key (`cart:<item>`), not one `cart` object: the store
 * merges concurrent saves per top-level key, so two app servers adding different items to one
 * session at the same moment both keep theirs.
 */
const CART_PREFIX = 'cart:';
/** The session routes: what a SERVER span's `http.route` may be. */
const ROUTES: ReadonlySet<string> = new Set(['/', '/captcha', '/login', '/logout', '/cart']);
/** The demo mode's long-lived routes for failover drills (long-lived.ts), outside the session; also span routes. */
const DRILL_ROUTES: ReadonlySet<string> = new Set(['/download', '/ws']);

interface Context {
  options: DemoAppOptions;
  hostname: string;
  trusted: ReturnType<typeof parseTrustedProxies>;
  users: Readonly<Record<string, string>>;
  demo: boolean;
  /** The session cookie carries Secure: what a login without it most likely ran into. */
  secureCookie: boolean;
  throttle: LoginThrottle;
}

/**
 * The demo application server (not listening yet). Routes: GET / (HTML), GET /captcha (SVG, or in
 * demo mode `{ code }` as JSON for Accept: application/json — a test convenience a real captcha must
 * never offer), POST /login, POST /logout, GET and POST /cart, GET /healthz; in demo mode also GET /download
 * and the WebSocket echo /ws, long-lived exchanges for failover drills that never touch the session store
 * (long-lived.ts). Bad input is 400, too many failed logins 429, a session store outage 503, never a stack
 * trace. Tracing is the process's OpenTelemetry SDK's: its HTTP instrumentation makes each request a SERVER
 * span continuing the incoming traceparent, and the app adds the route and the client address it believes
 * (describeServerSpan).
 */
export function createDemoApp(options: DemoAppOptions): Server {
  const demo = options.demo ?? false;
  const context: Context = {
    options,
    hostname: options.hostname ?? osHostname(),
    trusted: parseTrustedProxies(options.trustedProxies ?? []),
    users: options.users ?? (demo ? DEFAULT_USERS : {}),
    demo,
    secureCookie: options.session?.cookie?.secure ?? true,
    throttle: new LoginThrottle(options.loginThrottle),
  };
  const sessions = sessionMiddleware({
    ...options.session,
    store: options.store,
    secrets: options.secrets ?? [DEMO_SECRET],
  });
  const withSessionRoutes = withSession(sessions, (req, session) => route(context, req, session));
  return new DemoServer((req, res) => {
    res.setHeader('x-instance-id', options.instanceId);
    res.setHeader('cache-control', 'no-store');
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
    if (path === '/healthz') return healthz(context, req, res);
    // The drill routes skip the session middleware: a drill restarts Redis while they run.
    const drillRoute = demo && DRILL_ROUTES.has(path);
    describeServerSpan(ROUTES.has(path) || drillRoute ? path : undefined, clientAddress(req, context.trusted));
    if (drillRoute) return path === '/download' ? download(req, res) : upgradeRequired(res);
    withSessionRoutes(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  }, demo);
}

/** GET /ws without an Upgrade header: the echo speaks WebSocket only. */
function upgradeRequired(res: ServerResponse): void {
  res.writeHead(426, { upgrade: 'websocket', connection: 'upgrade', 'content-type': 'text/plain; charset=utf-8' });
  res.end('/ws is a WebSocket echo: connect with Upgrade: websocket\n');
}

function healthz(context: Context, req: IncomingMessage, res: ServerResponse): void {
  // Does not touch the session store: liveness of this process, not of Redis.
  const body = JSON.stringify({ status: 'ok', instance: context.options.instanceId });
  res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 200 : 405, { 'content-type': 'application/json' });
  res.end(body);
}

async function route(context: Context, req: IncomingMessage, session: Session): Promise<SessionReply> {
  const path = new URL(req.url ?? '/', 'http://demo').pathname;
  const key = `${req.method} ${path}`;
  try {
    switch (key) {
      case 'GET /':
        return html(200, homePage(context, req, session));
      case 'GET /captcha':
        return captcha(context, req, session);
      case 'POST /login':
        return await login(context, req, session);
      case 'POST /logout':
        session.destroy();
        return wantsJson(req) ? json(200, { ok: true }) : redirectHome();
      case 'GET /cart':
        return json(200, { user: session.data.user ?? null, items: cartOf(session) });
      case 'POST /cart':
        return await addToCart(req, session);
      default:
        return ROUTES.has(path) ? text(405, 'method not allowed') : text(404, 'not found');
    }
  } catch (err) {
    if (err instanceof HttpError) return failure(req, err.status, 'bad-request', err.message);
    throw err;
  }
}

function homePage(context: Context, req: IncomingMessage, session: Session): string {
  return renderHomePage({
    instanceId: context.options.instanceId,
    hostname: context.hostname,
    clientAddress: clientAddress(req, context.trusted),
    user: typeof session.data.user === 'string' ? session.data.user : undefined,
    cart: cartOf(session),
  });
}

function captcha(context: Context, req: IncomingMessage, session: Session): SessionReply {
  const code = newCaptchaCode(context.options.randomInt);
  session.data.captcha = code;
  if (context.demo && wantsJson(req)) return json(200, { code });
  return { status: 200, headers: { 'content-type': 'image/svg+xml' }, body: renderCaptchaSvg(code) };
}

async function login(context: Context, req: IncomingMessage, session: Session): Promise<SessionReply> {
  const fields = await readFields(req);
  const user = stringField(fields, 'user');
  const password = stringField(fields, 'password');
  const given = stringField(fields, 'captcha', 32);
  const address = clientAddress(req, context.trusted);
  const wait = context.throttle.retryAfterMs(user, address);
  if (wait > 0) {
    const seconds = Math.ceil(wait / 1000);
    const reply = failure(req, 429, 'throttled', `too many failed logins; try again in ${seconds} s`);
    return { ...reply, headers: { ...reply.headers, 'retry-after': String(seconds) } };
  }
  // One-time, and atomic in the store: a captcha is consumed by any attempt, right or wrong, and of
  // parallel attempts with one captcha only one gets it (a read of session.data would let all pass).
  const expected = await session.take('captcha');
  if (typeof expected !== 'string') return noCaptcha(context, req, session);
  if (given.trim().toUpperCase() !== expected) return failure(req, 401, 'captcha', 'the captcha is wrong; load a new one');
  if (!passwordMatches(context.users, user, password)) {
    context.throttle.fail(user, address);
    return failure(req, 401, 'credentials', 'unknown user or wrong password');
  }
  context.throttle.succeed(user);
  session.regenerate();
  session.data.user = user;
  return wantsJson(req) ? json(200, { user }) : redirectHome();
}

/**
 * A login finding no captcha to check. When the request brought no session cookie at all the captcha
 * is not wrong: the client never sent back the cookie of the session holding it. The usual cause is a
 * Secure cookie on a plain-HTTP site, which the client keeps for HTTPS; saying "wrong captcha" there
 * sends people retyping captchas forever.
 */
function noCaptcha(context: Context, req: IncomingMessage, session: Session): SessionReply {
  if (!session.isNew) return failure(req, 401, 'captcha', 'the captcha was already used or never loaded; load a new one');
  if (session.cookieReceived) {
    // Also the memory-store bug: the captcha's session lives in another app server's memory.
    const message =
      'this app server does not know the session holding the captcha: it expired, or another app server keeps it in its own memory (sessions.store: memory behind a balancer); load a new captcha';
    return failure(req, 401, 'session-unknown', message);
  }
  const why = context.secureCookie
    ? 'the cookie is Secure (sessions.cookie.secure), so a client sends it back only over HTTPS: use https://, or set sessions.cookie.secure: false on a plain-HTTP site'
    : 'the client did not keep it (cookies blocked?)';
  return failure(
    req,
    401,
    'session-cookie',
    `the session cookie did not come back with this login, so there is no captcha to check: ${why}`,
  );
}

/** Constant-time over equal-length digests, and the same work for unknown users. */
function passwordMatches(users: Readonly<Record<string, string>>, user: string, password: string): boolean {
  const known = Object.hasOwn(users, user);
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const same = timingSafeEqual(digest(known ? users[user]! : '\0unknown'), digest(password));
  return known && same;
}

async function addToCart(req: IncomingMessage, session: Session): Promise<SessionReply> {
  const fields = await readFields(req);
  const item = stringField(fields, 'item', 64);
  const qty = Number(fields.qty ?? 1);
  if (!ITEM_PATTERN.test(item)) throw new HttpError(400, "'item' may hold letters, digits, space, '.', '_' and '-'");
  if (!Number.isInteger(qty) || qty < 1 || qty > 99) throw new HttpError(400, "'qty' must be an integer from 1 to 99");
  const key = CART_PREFIX + item;
  const current = typeof session.data[key] === 'number' ? (session.data[key] as number) : 0;
  session.data[key] = Math.min(current + qty, 999);
  return wantsJson(req) ? json(200, { items: cartOf(session) }) : redirectHome();
}

function cartOf(session: Session): Record<string, number> {
  const items: Record<string, number> = {};
  for (const [key, value] of Object.entries(session.data)) {
    if (key.startsWith(CART_PREFIX) && typeof value === 'number') items[key.slice(CART_PREFIX.length)] = value;
  }
  return items;
}

function wantsJson(req: IncomingMessage): boolean {
  return (req.headers.accept ?? '').includes('application/json') || (req.headers['content-type'] ?? '').startsWith('application/json');
}

/** `{ error, message }` for JSON clients, the message as text for browsers. */
function failure(req: IncomingMessage, status: number, error: string, message: string): SessionReply {
  return wantsJson(req) ? json(status, { error, message }) : text(status, message);
}

function json(status: number, value: unknown): SessionReply {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}

function html(status: number, body: string): SessionReply {
  return { status, headers: { 'content-type': 'text/html; charset=utf-8' }, body };
}

function text(status: number, body: string): SessionReply {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `${body}\n` };
}

function redirectHome(): SessionReply {
  return { status: 303, headers: { location: '/' }, body: '' };
}
