// Guest real server of the HA drill (test/director-ha-vm.test.ts), on port 80:
//   GET /        a short answer: { name, peer }.
//   GET /slow    a long download: a 1 KiB chunk every 100 ms until /tg-scratch/dl.finish exists, then 20 more and
//                the end; what it sent goes to /tg-scratch/NAME-slow.json when the response ends or breaks.
// Writes /tg-scratch/NAME.ready when listening.
const http = require('node:http');
const fs = require('node:fs');

const name = process.argv[2];
const chunk = 'y'.repeat(1024);
const server = http.createServer((req, res) => {
  if (req.url !== '/slow') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name, peer: req.socket.remoteAddress }));
    return;
  }
  let sent = 0;
  let left = -1;
  const record = (outcome) =>
    fs.writeFileSync(`/tg-scratch/${name}-slow.json`, JSON.stringify({ sent, outcome, peer: req.socket.remoteAddress }));
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  const timer = setInterval(() => {
    if (left < 0 && fs.existsSync('/tg-scratch/dl.finish')) left = 20;
    if (left === 0) {
      clearInterval(timer);
      res.end(() => record('ended'));
      return;
    }
    if (left > 0) left--;
    res.write(chunk);
    sent += chunk.length;
  }, 100);
  res.on('close', () => {
    clearInterval(timer);
    if (!res.writableFinished) record('broken');
  });
});
server.keepAliveTimeout = 300_000;
server.listen(80, '0.0.0.0', () => fs.writeFileSync(`/tg-scratch/${name}.ready`, ''));
