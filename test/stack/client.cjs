// Client of the deployed-stack drills (test/stack-vm.test.ts), run in the `client` host's namespace. Logs in once through
// the VIP (GET /captcha as JSON, POST /login as alice; the demo app runs with --demo), then sends GET / with that
// session cookie on a new connection each time (every request a new IPVS connection, scheduled afresh), one after
// another, until DIR/client.stop exists. Every request is recorded: start time, status or error, and what
// the app's page says (which app instance served it, the client address the app believes, the logged-in user).
// Files go to DIR (the test's scratch dir): client.ready after the login, client.stop ends it, then client.json
// as { login, requests: [...] }. Arguments: VIP DIR.
const http = require('node:http');
const fs = require('node:fs');

const [vip, dir] = process.argv.slice(2);
const out = `${dir}/client.json`;

function request(method, path, { body, cookie } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { accept: path === '/' ? 'text/html' : 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (cookie) headers.cookie = cookie;
    const req = http.request({ host: vip, port: 80, method, path, headers, agent: false, timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const cookieOf = (res, old) => {
  const set = (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).find((c) => c.startsWith('tg.sid='));
  return set ?? old;
};
const field = (html, id) => new RegExp(`id="${id}">([^<]*)<`).exec(html)?.[1];

async function login() {
  // Retried: right after the deploy the first answers may still be 503 while the pool's checks settle.
  let last;
  for (let i = 0; i < 120; i++) {
    try {
      const c = await request('GET', '/captcha');
      if (c.status === 200) {
        const cookie = cookieOf(c);
        const l = await request('POST', '/login', {
          cookie,
          body: { user: 'alice', password: 'wonderland', captcha: JSON.parse(c.text).code },
        });
        if (l.status === 200) return { cookie: cookieOf(l, cookie), attempts: i + 1 };
        last = `login ${l.status} ${l.text}`;
      } else last = `captcha ${c.status}`;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`no login through the VIP: ${last}`);
}

(async () => {
  const result = { login: undefined, requests: [] };
  const { cookie, attempts } = await login();
  result.login = { at: Date.now(), attempts };
  fs.writeFileSync(`${dir}/client.ready`, '');
  // Bounded: at most 20,000 requests or 15 minutes, whatever the stop file says.
  const deadline = Date.now() + 900_000;
  for (let n = 0; n < 20_000 && Date.now() < deadline && !fs.existsSync(`${dir}/client.stop`); n++) {
    const t = Date.now();
    const r = { t };
    try {
      const a = await request('GET', '/', { cookie });
      r.status = a.status;
      r.instance = field(a.text, 'instance');
      r.client = field(a.text, 'client');
      r.user = field(a.text, 'user');
      if (a.status !== 200) r.error = `HTTP ${a.status}: ${a.text.slice(0, 120)}`;
    } catch (err) {
      r.error = String(err);
    }
    r.ms = Date.now() - t;
    result.requests.push(r);
    if (n % 20 === 0) fs.writeFileSync(`${dir}/client.count`, String(n));
    // A pause, so the loop leaves CPU to the directors under emulation (each request crosses the guest); the count
    // stays exact.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  fs.writeFileSync(out, JSON.stringify(result));
})().catch((err) => {
  fs.writeFileSync(out, JSON.stringify({ error: String(err?.stack ?? err) }));
  process.exitCode = 1;
});
