// Runs inside the QEMU guest, in the client namespace: N requests to URL, each on a new TCP connection
// (agent: false) so IPVS schedules every one; prints one JSON array of what the servers answered.
const http = require('node:http');

const [url, count] = [process.argv[2], Number(process.argv[3])];

function get() {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const { name, peer, local } = JSON.parse(body.toString('utf8'));
        resolve({ status: res.statusCode, name, peer, local, bytes: body.length });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
  });
}

(async () => {
  const answers = [];
  for (let i = 0; i < count; i++) answers.push(await get());
  process.stdout.write(`${JSON.stringify(answers)}\n`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
