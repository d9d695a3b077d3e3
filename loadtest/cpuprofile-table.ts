/**
 * Where a proxy's CPU goes, from a V8 `.cpuprofile` (`node --cpu-prof`): self time summed by category (node:http
 * parsing and writing, sockets and streams, undici, each part of tiergate's hot path, metrics, access log,
 * tracing, timers, GC), as a Markdown table, then the functions with the most self time.
 *
 *   node loadtest/cpuprofile-table.ts PROFILE.cpuprofile [--requests N] [--top 25]
 *
 * `--requests`: the requests served while profiling, to print µs per request. A native function (a frame
 * without a URL: a binding such as `writev` or `writeUtf8String`) counts in the category of the JS that called
 * it. `(idle)` is left out of the total. loadtest/proxy-bench.ts `--targets tiergate-prof` writes profiles.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A server side on net.Socket + llhttp WASM instead of node:http (loadtest/bare-lean-proxy.ts; issue #19). */
const LEAN = 'lean server side (llhttp WASM request parsing, response writing: bare-lean-proxy.ts, http1-server.ts)';
const LEAN_URL = /bare-lean-proxy\.ts|proxy\/src\/http1-server\.ts/;

/** Categories in table order: the first rule whose test matches a frame names its category. */
const RULES: [string, (f: CallFrame) => boolean][] = [
  ['GC', (f) => f.functionName === '(garbage collector)'],
  ['VM/native, unattributed ((program))', (f) => f.functionName === '(program)'],
  ['idle', (f) => f.functionName === '(idle)'],
  [
    'tiergate: access log (access-log.ts, pino)',
    (f) => /proxy\/src\/access-log\.ts|\/pino|sonic-boom|fast-redact|thread-stream/.test(f.url),
  ],
  ['tiergate: tracing hooks (tracing.ts, OpenTelemetry)', (f) => /proxy\/src\/tracing\.ts|@opentelemetry/.test(f.url)],
  ['tiergate: metrics (metrics.ts, prom-client)', (f) => /proxy\/src\/metrics\.ts|prom-client/.test(f.url)],
  ['tiergate: header building (forward-headers.ts)', (f) => /proxy\/src\/forward-headers\.ts/.test(f.url)],
  [
    'tiergate: routing and request checks (route-table, request-target, request-screen, client-address, request-id)',
    (f) => /proxy\/src\/(route-table|request-target|request-screen|client-address|request-id|key-vars)\.ts/.test(f.url),
  ],
  ['tiergate: balancer (packages/balancer)', (f) => /balancer\/src\//.test(f.url)],
  [
    'tiergate: pools (upstream-pool.ts, pool-health.ts, health)',
    (f) => /proxy\/src\/(upstream-pool|pool-health)\.ts|health\/src\//.test(f.url),
  ],
  [LEAN, (f) => LEAN_URL.test(f.url)],
  ['tiergate: exchange (exchange.ts, proxy-server.ts, client-request.ts)', (f) => /proxy\/src\//.test(f.url)],
  ['diagnostics_channel publish', (f) => /node:diagnostics_channel/.test(f.url)],
  ['undici (client dispatch, llhttp response parsing)', (f) => /\/undici\//.test(f.url)],
  ['node:http2 compatibility API (Http2ServerRequest/Response)', (f) => /node:internal\/http2\/compat/.test(f.url)],
  ['node:http2 core (sessions, streams, header lists)', (f) => /node:internal\/http2\/(core|util)|node:http2$/.test(f.url)],
  ['TLS (node:tls, _tls_wrap)', (f) => /node:_tls_|node:tls$|node:internal\/tls/.test(f.url)],
  [
    'node:http server (request parsing, response writing)',
    (f) => /node:_http_(server|common|incoming|outgoing)|node:http$/.test(f.url) || f.functionName === 'parserOnHeadersComplete',
  ],
  [
    'sockets and streams (node:net, streams, stream_base)',
    (f) => /node:net|node:internal\/streams|node:stream|node:internal\/stream_base_commons|node:buffer|node:events/.test(f.url),
  ],
  ['timers and ticks (timers, nextTick, promises)', (f) => /node:internal\/(timers|process\/task_queues)|node:timers/.test(f.url)],
  ['undici (client dispatch, llhttp response parsing)', (f) => f.url.startsWith('wasm://')],
  [
    'tiergate: routing and request checks (route-table, request-target, request-screen, client-address, request-id)',
    (f) => /node:internal\/blocklist/.test(f.url),
  ],
  ['startup (module loading)', (f) => /node:internal\/(bootstrap|modules)|compileForInternalLoader/.test(f.url + f.functionName)],
];
const SOCKETS = 'sockets and streams (node:net, streams, stream_base)';
/** Socket and stream work split by the side it serves: the nearest caller in node:http or in undici. */
const CLIENT_SIDE = 'sockets and streams: client side (node:http, node:http2 or lean server socket reads and writes)';
const UPSTREAM_SIDE = 'sockets and streams: upstream side (undici socket reads and writes)';
const OTHER = 'other';

/** Profile nodes by id, each with its parent. */
function index(p: Profile): { byId: Map<number, ProfileNode>; parent: Map<number, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  return { byId, parent };
}

/** A frame's category; a frame without a URL (native) takes its nearest caller's with one. */
function categoryOf(id: number, byId: Map<number, ProfileNode>, parent: Map<number, number>, memo: Map<number, string>): string {
  const known = memo.get(id);
  if (known !== undefined) return known;
  const f = byId.get(id)!.callFrame;
  let cat = RULES.find(([, test]) => test(f))?.[0];
  if (f.url.startsWith('wasm://')) {
    // llhttp's WASM runs for undici (responses) and for a lean server side (requests): the caller says which.
    for (let up = parent.get(id); up !== undefined; up = parent.get(up)) {
      const u = byId.get(up)!.callFrame.url;
      if (u === '' || u.startsWith('wasm://')) continue;
      if (LEAN_URL.test(u)) cat = LEAN;
      break;
    }
  }
  if (cat === SOCKETS || (cat === undefined && f.url === '')) {
    // Which side: the nearest caller that is node:http's server or undici (a read is attributed by who consumes it).
    for (let up = parent.get(id); up !== undefined; up = parent.get(up)) {
      const u = byId.get(up)!.callFrame.url;
      if (/node:_http_|node:internal\/http2\//.test(u) || LEAN_URL.test(u)) {
        cat = CLIENT_SIDE;
        break;
      }
      if (/\/undici\//.test(u)) {
        cat = UPSTREAM_SIDE;
        break;
      }
      if (/proxy\/src\//.test(u)) break;
    }
  }
  if (cat === undefined) {
    const up = parent.get(id);
    cat =
      f.url === '' && up !== undefined && byId.get(up)!.callFrame.functionName !== '(root)' ? categoryOf(up, byId, parent, memo) : OTHER;
  }
  memo.set(id, cat);
  return cat;
}

export interface ProfileTable {
  /** Sampled time without (idle), ms. */
  totalMs: number;
  rows: { category: string; ms: number; share: number }[];
  top: { name: string; where: string; category: string; ms: number }[];
}

export function profileTable(p: Profile, topN = 25): ProfileTable {
  const { byId, parent } = index(p);
  const memo = new Map<number, string>();
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attributing it to sample i is what Chrome DevTools does.
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const byCat = new Map<string, number>();
  const byFn = new Map<string, { name: string; where: string; category: string; us: number }>();
  for (const [id, us] of selfUs) {
    const cat = categoryOf(id, byId, parent, memo);
    byCat.set(cat, (byCat.get(cat) ?? 0) + us);
    const f = byId.get(id)!.callFrame;
    const where =
      f.url === '' ? '(native)' : `${f.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/packages\//, 'packages/')}:${f.lineNumber + 1}`;
    const key = `${f.functionName}@${where}`;
    const e = byFn.get(key) ?? { name: f.functionName || '(anonymous)', where, category: cat, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  byCat.delete('idle');
  const total = [...byCat.values()].reduce((a, b) => a + b, 0);
  const order = [...RULES.map(([c]) => c), CLIENT_SIDE, UPSTREAM_SIDE, OTHER];
  const rows = [...byCat]
    .sort((a, b) => b[1] - a[1] || order.indexOf(a[0]) - order.indexOf(b[0]))
    .map(([category, us]) => ({ category, ms: us / 1000, share: us / total }));
  const top = [...byFn.values()]
    .filter((e) => e.category !== 'idle')
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map(({ name, where, category, us }) => ({ name, where, category, ms: us / 1000 }));
  return { totalMs: total / 1000, rows, top };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { requests: { type: 'string' }, top: { type: 'string', default: '25' } },
  });
  const file = positionals[0];
  if (!file) {
    console.error('usage: node loadtest/cpuprofile-table.ts PROFILE.cpuprofile [--requests N] [--top 25]');
    process.exit(2);
  }
  const t = profileTable(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top));
  const requests = values.requests === undefined ? undefined : Number(values.requests);
  const perReq = (ms: number) => (requests ? ` | ${((ms * 1000) / requests).toFixed(1)}` : '');
  console.log(`| category | self time ms | share${requests ? ' | µs per request' : ''} |`);
  console.log(`| --- | ---: | ---: |${requests ? ' ---: |' : ''}`);
  for (const r of t.rows) console.log(`| ${r.category} | ${r.ms.toFixed(0)} | ${(r.share * 100).toFixed(1)} %${perReq(r.ms)} |`);
  console.log(`| **total (without idle)** | ${t.totalMs.toFixed(0)} | 100 %${perReq(t.totalMs)} |`);
  console.log(`\n| function | where | category | self ms |\n| --- | --- | --- | ---: |`);
  for (const f of t.top) console.log(`| ${f.name} | ${f.where} | ${f.category.replace(/ \(.*/, '')} | ${f.ms.toFixed(0)} |`);
}
