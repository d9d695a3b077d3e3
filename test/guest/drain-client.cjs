// Guest client for the L4-aware drain drill: GET URL on a new connection each time (every request is a new IPVS
// connection, scheduled afresh), one after another, until /tg-scratch/client.stop exists. Writes
// /tg-scratch/client.started after the first answer, then OUT as JSON: { ok, statuses, failed: [{ at, error }],
// servers: { name: count } } (`at`: ms since the epoch).
const http = require('node:http');
const fs = require('node:fs');

const [url, out] = process.argv.slice(2);
function get() {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
(async () => {
  const r = { ok: 0, statuses: {}, failed: [], servers: {} };
  // Bounded: at most 20,000 requests or 10 minutes, whatever the stop file says.
  const deadline = Date.now() + 600_000;
  for (let n = 0; n < 20_000 && Date.now() < deadline && !fs.existsSync('/tg-scratch/client.stop'); n++) {
    try {
      const a = await get();
      if (a.status === 200) {
        r.ok++;
        const name = JSON.parse(a.body).name;
        r.servers[name] = (r.servers[name] ?? 0) + 1;
      } else r.statuses[a.status] = (r.statuses[a.status] ?? 0) + 1;
    } catch (err) {
      r.failed.push({ at: Date.now(), error: String(err) });
    }
    if (n === 0) fs.writeFileSync('/tg-scratch/client.started', '');
  }
  fs.writeFileSync(out, JSON.stringify(r));
})();
