// Guest client of the HA drill (test/director-ha-vm.test.ts): one process (Node's startup under QEMU's software
// CPU costs seconds) that opens, through the VIP:
//   - a long download (GET /slow), kept reading across the failover;
//   - a keep-alive connection: one request now, a second one on the same socket once /tg-scratch/hold.go exists;
//   - short requests, one new connection each, one after the other, from /tg-scratch/short.go until
//     /tg-scratch/short.stop exists (at most 3000 requests or 240 s), each with a 5 s timeout; every one is recorded
//     with its time and outcome.
// Writes /tg-scratch/client.ready once the download's headers and the first held answer are in, and the results
// to /tg-scratch/client.json when all three are done.
const http = require('node:http');
const fs = require('node:fs');

const base = `http://${process.argv[2]}`;
const exists = (f) => fs.existsSync(`/tg-scratch/${f}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const waitFile = async (f) => {
  for (let i = 0; i < 2400 && !exists(f); i++) await sleep(100);
};

function get(path, agent, timeout = 5_000) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${path}`, { agent, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, localPort: req.socket.localPort }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function download() {
  return new Promise((resolve) => {
    let bytes = 0;
    let localPort;
    let headers;
    const req = http.get(`${base}/slow`, { agent: false }, (res) => {
      localPort = req.socket.localPort;
      headers.resolve();
      res.on('data', (d) => (bytes += d.length));
      res.on('end', () => resolve({ bytes, localPort, complete: res.complete }));
      res.on('error', (err) => resolve({ bytes, localPort, error: String(err) }));
    });
    req.on('error', (err) => resolve({ bytes, localPort, error: String(err) }));
    download.headers = new Promise((ok) => (headers = { resolve: ok }));
  });
}

async function held() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await get('/', agent);
  held.first = first;
  await waitFile('hold.go');
  const second = await get('/', agent).catch((err) => ({ error: String(err) }));
  agent.destroy();
  return { first: { ...first, body: JSON.parse(first.body) }, second: second.body ? { ...second, body: JSON.parse(second.body) } : second };
}

async function shortLoop() {
  await waitFile('short.go');
  const out = [];
  const end = Date.now() + 240_000;
  while (!exists('short.stop') && out.length < 3000 && Date.now() < end) {
    const t = Date.now();
    const r = await get('/', false).then(
      (x) => ({ t, ms: Date.now() - t, name: JSON.parse(x.body).name }),
      (err) => ({ t, ms: Date.now() - t, error: String(err.code ?? err.message) }),
    );
    out.push(r);
    // A pause, so the loop leaves CPU to the directors under emulation; the count stays exact.
    await sleep(50);
  }
  return out;
}

(async () => {
  const dl = download();
  await download.headers;
  const hold = held();
  for (let i = 0; i < 600 && !held.first; i++) await sleep(50);
  fs.writeFileSync('/tg-scratch/client.ready', '');
  const short = shortLoop();
  const result = { download: await dl, hold: await hold, short: await short };
  fs.writeFileSync('/tg-scratch/client.json', JSON.stringify(result));
})();
