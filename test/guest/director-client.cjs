// Guest client. `seq URL N OUT`: N requests, each on a new connection, answers (without the padding, with the
// byte count) as JSON to OUT. `many OUT URL N [URL N]…`: the same for several URLs in one process (Node's startup
// under QEMU's software CPU costs seconds), as JSON `{ URL: answers }` to OUT
// (a failed request is an `{ error }` entry). `hold URL`: one keep-alive connection: request, wait for /tg-scratch/hold.go,
// request again on the same socket, wait for /tg-scratch/hold.close; results in hold.json.
const http = require('node:http');
const fs = require('node:fs');

function get(url, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => {
        const j = JSON.parse(body);
        resolve({
          status: res.statusCode,
          name: j.name,
          port: j.port,
          peer: j.peer,
          local: j.local,
          bytes: body.length,
          localPort: req.socket.localPort,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
const waitFile = async (f) => {
  for (let i = 0; i < 1200 && !fs.existsSync(f); i++) await new Promise((r) => setTimeout(r, 100));
};

const [mode, url, arg, out] = process.argv.slice(2);
(async () => {
  if (mode === 'many') {
    const pairs = process.argv.slice(4);
    const result = {};
    for (let i = 0; i < pairs.length; i += 2) {
      result[pairs[i]] = [];
      // A failed request is recorded, not fatal: the other URLs' evidence still reaches the test.
      for (let n = 0; n < Number(pairs[i + 1]); n++) result[pairs[i]].push(await get(pairs[i], false).catch((e) => ({ error: String(e) })));
    }
    fs.writeFileSync(url, JSON.stringify(result));
  } else if (mode === 'seq') {
    const answers = [];
    for (let i = 0; i < Number(arg); i++) answers.push(await get(url, false));
    fs.writeFileSync(out, JSON.stringify(answers));
  } else {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(url, agent);
    fs.writeFileSync('/tg-scratch/hold1.json', JSON.stringify(first));
    await waitFile('/tg-scratch/hold.go');
    let second;
    try {
      second = await get(url, agent);
    } catch (err) {
      second = { error: String(err) };
    }
    fs.writeFileSync('/tg-scratch/hold.json', JSON.stringify({ first, second }));
    await waitFile('/tg-scratch/hold.close');
    agent.destroy();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
