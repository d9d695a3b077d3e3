import { createHash } from 'node:crypto';
import type { AdminAccess } from './admin-access.ts';

/**
 * The live status page both admin listeners serve at `/` (HAProxy's stats page is the model): static HTML
 * with one inline script that polls the listener's own `GET /status` and redraws a table, without a
 * reload. Shared here because the proxy and the director may import only config (scripts/check-imports.ts).
 *
 * The page holds no data, so it is served without the bearer token; `/status` still needs it. When
 * `/status` answers 401 the page asks for the token, keeps it in sessionStorage (this tab only, gone when
 * it closes) and sends it as `Authorization: Bearer`. Its fetches are same-origin GETs, which carry no
 * Origin header, so checkAdminRequest lets them through as it does curl.
 */

/** One table row: `cells` by column key, `state` drives its colour, `key` names it (`data-key`) for tests and scripts. */
export interface StatusPageRow {
  readonly key: string;
  /** `up`, `down`, `backup`, `draining` or `mixed` (anything else is shown uncoloured). */
  readonly state: string;
  readonly cells: Readonly<Record<string, string>>;
}

/** What a page's `render` makes of one /status body: summary lines above the table, and its rows. */
export interface StatusPageView {
  readonly summary: readonly string[];
  readonly rows: readonly StatusPageRow[];
}

export interface StatusPageSpec {
  readonly title: string;
  /** `numeric` columns are right-aligned. */
  readonly columns: readonly { readonly key: string; readonly label: string; readonly numeric?: boolean }[];
  /**
   * /status JSON → view. Its source text is embedded in the page (Function#toString), so it must be
   * self-contained: no imports, no names from its module, only what a browser has. Pure, so a Node test
   * runs the very function the page runs.
   */
  // biome-ignore lint/suspicious/noExplicitAny: the page passes whatever JSON /status answered.
  readonly render: (status: any) => StatusPageView;
}

/** The page: its body and the headers to send it with. */
export interface StatusPage {
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Default seconds between polls; `?refresh=N` (0.2 to 3600) overrides it. */
export const STATUS_PAGE_REFRESH_S = 2;

const STYLE = `
body{font:13px/1.4 system-ui,sans-serif;margin:1em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}
#summary{margin:.3em 0;color:#444}
#summary span{margin-right:1.5em}
#error{color:#a00;font-weight:bold}
table{border-collapse:collapse;margin-top:.5em}
th,td{border:1px solid #bbb;padding:2px 8px;text-align:left;white-space:nowrap}
th{background:#dde}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.up td{background:#c8f0c8}
tr.backup td{background:#c8dcf0}
tr.down td{background:#f4b8b8}
tr.draining td{background:#f6e3a8}
tr.mixed td{background:#f0d8f0}
#stale{color:#a00}
form[hidden],#stale[hidden]{display:none}
`;

/** The script around `render`: poll, ask for the token on 401, rebuild the table with textContent only. */
function script(spec: StatusPageSpec): string {
  return `"use strict";
(() => {
const render = (${spec.render.toString()});
const columns = ${JSON.stringify(spec.columns)};
const numeric = new Set(${JSON.stringify(spec.columns.filter((c) => c.numeric).map((c) => c.key))});
const KEY = 'tiergate-admin-token';
const asked = Number(new URLSearchParams(location.search).get('refresh'));
const refreshMs = 1000 * (asked >= 0.2 && asked <= 3600 ? asked : ${STATUS_PAGE_REFRESH_S});
const $ = (id) => document.getElementById(id);
const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); return e; };
const head = $('head');
for (const c of columns) head.append(el('th', c.label));
$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $('token').value);
  $('token').value = '';
  $('token-form').hidden = true;
  poll();
});
function draw(view) {
  const summary = $('summary');
  summary.replaceChildren(...view.summary.map((s) => el('span', s)));
  const body = $('rows');
  body.replaceChildren(...view.rows.map((r) => {
    const tr = el('tr');
    tr.className = r.state;
    tr.dataset.key = r.key;
    tr.dataset.state = r.state;
    for (const c of columns) {
      const td = el('td', r.cells[c.key] ?? '');
      if (numeric.has(c.key)) td.className = 'num';
      tr.append(td);
    }
    return tr;
  }));
}
let timer;
async function poll() {
  clearTimeout(timer);
  const token = sessionStorage.getItem(KEY);
  try {
    const res = await fetch('status', { cache: 'no-store', headers: token ? { authorization: 'Bearer ' + token } : {} });
    if (res.status === 401) {
      sessionStorage.removeItem(KEY);
      $('token-form').hidden = false;
      $('error').textContent = token ? 'wrong token' : 'this admin listener needs its token';
      return;
    }
    if (!res.ok) throw new Error('GET /status: HTTP ' + res.status);
    draw(render(await res.json()));
    $('error').textContent = '';
    $('stale').hidden = true;
    $('updated').textContent = new Date().toLocaleTimeString();
  } catch (err) {
    $('error').textContent = String(err && err.message || err);
    $('stale').hidden = false;
  }
  timer = setTimeout(poll, refreshMs);
}
$('interval').textContent = String(refreshMs / 1000);
poll();
})();
`;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * Builds the page once (the admin servers keep it). The Content-Security-Policy allows exactly the inline
 * script and style by hash, fetches to this origin and nothing else: even a value that slipped into markup
 * could not run. Values reach the DOM only through textContent.
 */
export function statusPage(spec: StatusPageSpec): StatusPage {
  const js = script(spec);
  // The HTML parser would end the script at `</script` (and `<!--` changes how it reads on): a render
  // function containing either could not run, so refuse it at build time.
  if (/<\/script|<!--/i.test(js)) throw new Error(`status page ${spec.title}: the script contains </script or <!--`);
  const htmlText = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const body = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>${htmlText(spec.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${htmlText(spec.title)}</h1>
<form id="token-form" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label> <button type="submit">Show status</button></form>
<div id="summary"></div>
<div>Updated <span id="updated">never</span>, every <span id="interval"></span> s <span id="stale" hidden>(stale)</span> <span id="error"></span></div>
<table><thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table>
<script>${js}</script>
</body>
</html>
`;
  return {
    body,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'content-security-policy': [
        "default-src 'none'",
        `script-src ${sha256(js)}`,
        `style-src ${sha256(STYLE)}`,
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join('; '),
    },
  };
}

/**
 * The access rules for one request when the listener serves a status page: `GET /` (the page, which holds
 * no data) is checked without the token, so a browser can load it and then ask for the token; the Host and
 * Origin checks still apply to it. Every other path keeps the listener's rules.
 */
export function statusPageAccess(method: string | undefined, url: string | undefined, admin: AdminAccess): AdminAccess {
  const path = (url ?? '/').split('?')[0];
  return path === '/' && (method === 'GET' || method === 'HEAD') ? { address: admin.address } : admin;
}
