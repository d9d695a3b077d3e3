/**
 * Header rewriting in both directions, on raw (case-preserving, repeated) header lists.
 * Rules are compiled once per route at startup (`compileHeaderRules`); per request there is one
 * pass over the incoming list and no intermediate objects.
 */
import type { ClientCertFacts } from './listener-tls.ts';

/** RFC 9110 §7.6.1 connection-specific fields, plus the ones proxies have used (Proxy-Connection). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/**
 * Request fields the proxy owns. Expect is answered here (undici cannot send it: the proxy sends
 * `100 Continue` itself, as nginx does); the forwarding headers are rebuilt below. W3C trace context
 * (`traceparent`, `tracestate`) is forwarded only when `keepTraceContext` says so: otherwise any client
 * could pick the trace id and sampled flag of the app's spans (tracing.ts adds the proxy's own).
 * `Forwarded` (RFC 7239) says the same as X-Forwarded-*, so it is believed on the same terms: only from a
 * trusted peer (an application preferring it would otherwise take a client's word for its address).
 */
const MANAGED = [
  'expect',
  'x-request-id',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'forwarded',
  'traceparent',
  'tracestate',
  // Client-certificate facts (listener-tls.ts): set only by the proxy, so a client cannot claim a certificate.
  'x-ssl-client-verify',
  'x-ssl-client-s-dn',
  'x-ssl-client-fingerprint',
];

/**
 * The managed names spelled with `_` for some `-` (`X_Forwarded_For`, `X-Real_IP`): CGI-style gateways (WSGI,
 * PHP-FPM, Rack) map `-` and `_` alike to `HTTP_X_FORWARDED_FOR`, so such a field from a client would stand in
 * for the one the proxy rebuilt. Dropped from everyone, trusted or not (nginx drops every name with `_` by
 * default, `underscores_in_headers off`; tiergate only these).
 */
const MANAGED_DASHED: ReadonlySet<string> = new Set(MANAGED.filter((n) => n.includes('-')));

/** What to drop from a list: 1 = hop-by-hop/managed, 2 = removed or replaced by a header rule. */
type DropTable = ReadonlyMap<string, 1 | 2>;

/** nginx `proxy_set_header`-like operations (one direction) of a pool or a route. */
export interface HeaderOps {
  readonly add: Readonly<Record<string, string>>;
  readonly set: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

/** A pool's or a route's header operations: `headers` on the request, `response_headers` on the response. */
export interface HeaderSections {
  readonly headers: HeaderOps;
  readonly response_headers: HeaderOps;
}

/** Compiled rules for one route (its pool's ops, then its own). */
export interface HeaderRules {
  readonly requestDrop: DropTable;
  /** Names (lowercase) the operator removed or set: the proxy's own forwarding headers yield to them. */
  readonly overridden: ReadonlySet<string>;
  /** `set` then `add` pairs, flat, in config order. */
  readonly append: readonly string[];
  readonly responseDrop: DropTable;
  /** Response names (lowercase) removed or set by a rule: the proxy's own X-Request-Id yields to them. */
  readonly responseOverridden: ReadonlySet<string>;
  /** The response's `set` then `add` pairs, flat, in config order. */
  readonly responseAppend: readonly string[];
}

/**
 * Pool then route operations of one direction, merged: a route's `remove` drops the pool's `set`/`add` of that
 * name, and a route's `set` replaces them (within one section, `set` and `add` of one name both apply).
 */
function mergeOps(all: readonly HeaderOps[]): { overridden: Set<string>; append: string[] } {
  const set = new Map<string, [string, string]>();
  const add: [string, string][] = [];
  const removed = new Set<string>();
  const dropAdded = (lower: string) => {
    for (let i = add.length - 1; i >= 0; i--) if (add[i]![0].toLowerCase() === lower) add.splice(i, 1);
  };
  for (const ops of all) {
    for (const name of ops.remove) {
      const lower = name.toLowerCase();
      removed.add(lower);
      set.delete(lower);
      dropAdded(lower);
    }
    for (const [name, value] of Object.entries(ops.set)) {
      set.set(name.toLowerCase(), [name, value]);
      dropAdded(name.toLowerCase());
    }
    for (const [name, value] of Object.entries(ops.add)) add.push([name, value]);
  }
  return { overridden: new Set<string>([...removed, ...set.keys()]), append: [...set.values(), ...add].flat() };
}

/** Merges pool then route operations into one table per direction. */
export function compileHeaderRules(pool: HeaderSections, route: HeaderSections | undefined): HeaderRules {
  const sections = route ? [pool, route] : [pool];
  const { overridden, append } = mergeOps(sections.map((s) => s.headers));
  const requestDrop = new Map<string, 1 | 2>();
  for (const name of HOP_BY_HOP) requestDrop.set(name, 1);
  for (const name of MANAGED) requestDrop.set(name, 1);
  for (const name of overridden) requestDrop.set(name, 2);
  const response = mergeOps(sections.map((s) => s.response_headers));
  // The proxy answers with its own X-Request-Id (the one it logged and sent upstream), unless a rule says otherwise.
  const responseDrop = new Map<string, 1 | 2>([...HOP_BY_HOP, 'x-request-id'].map((n) => [n, 1]));
  for (const name of response.overridden) responseDrop.set(name, 2);
  return {
    requestDrop,
    overridden,
    append,
    responseDrop,
    responseOverridden: response.overridden,
    responseAppend: response.append,
  };
}

/** Tokens of every Connection header (RFC 9110 §7.6.1: each names a field to remove), lowercase. */
function connectionTokens(raw: readonly (string | Buffer)[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 || name.toString().toLowerCase() !== 'connection') continue;
    const value = raw[i + 1]!.toString();
    // What nearly every keep-alive peer sends names only Keep-Alive, which is hop-by-hop anyway: no set to build.
    if (value.length === 10 && value.toLowerCase() === 'keep-alive') continue;
    tokens ??= new Set();
    for (const t of value.split(',')) {
      const token = t.trim().toLowerCase();
      if (token) tokens.add(token);
    }
  }
  return tokens;
}

/** Per-request facts the forwarding headers carry. */
export interface ForwardContext {
  /** The client as determined by trusted-proxy processing. */
  readonly clientAddress: string;
  /** The TCP peer. */
  readonly peerAddress: string;
  readonly peerTrusted: boolean;
  readonly scheme: 'http' | 'https';
  readonly listenerPort: number;
  readonly requestId: string;
  /** `ssl_verify_client` on/optional: sent as X-SSL-Client-Verify, -S-DN and -Fingerprint (SHA-256). */
  readonly clientCert?: ClientCertFacts | undefined;
  /**
   * Forward the client's `traceparent`/`tracestate` as they came: true when the proxy makes no spans of its
   * own and the sender is trusted (a trusted proxy, or `tracing.trust_incoming`), so the proxy is transparent
   * to a trace someone trusted started. False drops them.
   */
  readonly keepTraceContext: boolean;
}

/**
 * The request header list to send upstream: the client's headers (case, order and repeats kept)
 * minus hop-by-hop and managed fields, then X-Real-IP, X-Forwarded-For/-Proto/-Host/-Port, then the
 * route's `set` and `add` fields. From an untrusted peer, incoming X-Forwarded-* and X-Real-IP are
 * discarded (nothing the client wrote survives); from a trusted peer, X-Forwarded-For gets the peer
 * appended and X-Forwarded-Proto/-Host/-Port are kept when present. `Forwarded` from an untrusted peer is
 * dropped (the proxy does not originate it: X-Forwarded-* carry the same facts); from a trusted peer it is
 * kept and this hop's element (`for=<peer>;proto=<scheme>`) appended, as RFC 7239 §4 asks of a proxy.
 */
export function upstreamRequestHeaders(raw: readonly string[], rules: HeaderRules, ctx: ForwardContext): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | undefined;
  let proto: string | undefined;
  let fwdHost: string | undefined;
  let fwdPort: string | undefined;
  let forwarded: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    const drop = rules.requestDrop.get(lower);
    if (drop === undefined && lower.includes('_') && MANAGED_DASHED.has(lower.replaceAll('_', '-'))) continue;
    if (lower === 'host') host ??= value;
    if (drop === 1 && ctx.peerTrusted) {
      if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
      else if (lower === 'x-forwarded-proto') proto ??= value;
      else if (lower === 'x-forwarded-host') fwdHost ??= value;
      else if (lower === 'x-forwarded-port') fwdPort ??= value;
      else if (lower === 'forwarded') forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
    }
    if (drop === 1 && ctx.keepTraceContext && (lower === 'traceparent' || lower === 'tracestate')) {
      out.push(name, value);
      continue;
    }
    if (drop !== undefined || named?.has(lower)) continue;
    out.push(name, value);
  }
  pushManaged(out, rules.overridden, 'X-Request-Id', 'x-request-id', ctx.requestId);
  pushManaged(out, rules.overridden, 'X-Real-IP', 'x-real-ip', ctx.clientAddress);
  pushManaged(
    out,
    rules.overridden,
    'X-Forwarded-For',
    'x-forwarded-for',
    xff === undefined ? ctx.peerAddress : `${xff}, ${ctx.peerAddress}`,
  );
  pushManaged(out, rules.overridden, 'X-Forwarded-Proto', 'x-forwarded-proto', proto ?? ctx.scheme);
  if (host !== undefined || fwdHost !== undefined)
    pushManaged(out, rules.overridden, 'X-Forwarded-Host', 'x-forwarded-host', (fwdHost ?? host)!);
  pushManaged(out, rules.overridden, 'X-Forwarded-Port', 'x-forwarded-port', fwdPort ?? String(ctx.listenerPort));
  if (forwarded !== undefined)
    pushManaged(out, rules.overridden, 'Forwarded', 'forwarded', `${forwarded}, ${forwardedElement(ctx.peerAddress, ctx.scheme)}`);
  const cert = ctx.clientCert;
  if (cert) {
    pushManaged(out, rules.overridden, 'X-SSL-Client-Verify', 'x-ssl-client-verify', cert.verify);
    if (cert.subject !== undefined) pushManaged(out, rules.overridden, 'X-SSL-Client-S-DN', 'x-ssl-client-s-dn', cert.subject);
    if (cert.fingerprint !== undefined)
      pushManaged(out, rules.overridden, 'X-SSL-Client-Fingerprint', 'x-ssl-client-fingerprint', cert.fingerprint);
  }
  for (let i = 0; i < rules.append.length; i++) out.push(rules.append[i]!);
  return out;
}

/** RFC 7239 §6: an IPv6 node is a quoted `"[addr]"`; an IPv4 one is a token. */
function forwardedElement(peer: string, scheme: string): string {
  return peer.includes(':') ? `for="[${peer}]";proto=${scheme}` : `for=${peer};proto=${scheme}`;
}

function pushManaged(out: string[], overridden: ReadonlySet<string>, name: string, lower: string, value: string): void {
  if (overridden.size === 0 || !overridden.has(lower)) out.push(name, value);
}

/**
 * The response header list for the client from undici's raw list: latin1 strings, case and repeats
 * (Set-Cookie) kept, hop-by-hop fields and those the upstream's Connection names removed, and those response
 * rules remove or set; then X-Request-Id (unless a rule removed or set it) and the rules' `set` and `add`.
 */
export function clientResponseHeaders(raw: readonly Buffer[], rules: HeaderRules, requestId: string): string[] {
  const named = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (rules.responseDrop.has(lower) || named?.has(lower)) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  pushManaged(out, rules.responseOverridden, 'X-Request-Id', 'x-request-id', requestId);
  for (let i = 0; i < rules.responseAppend.length; i++) out.push(rules.responseAppend[i]!);
  return out;
}

/** Trailer fields as a flat list for `res.addTrailers`. */
export function trailerPairs(raw: readonly Buffer[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!.toString('latin1'), raw[i + 1]!.toString('latin1')]);
  return out;
}
