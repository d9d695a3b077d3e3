// Runs inside the QEMU guest, in a real-server namespace: answers every request with its own name and
// the TCP peer it saw, padded so a response is much larger than a request (the DR evidence compares
// the director's TX bytes against the response bytes). Signals readiness with a file in the scratch share.
const http = require('node:http');
const fs = require('node:fs');

const [name, padBytes] = [process.argv[2], Number(process.argv[3] ?? 0)];
const pad = 'x'.repeat(padBytes);
http
  .createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name, peer: req.socket.remoteAddress, local: req.socket.localAddress, pad }));
  })
  .listen(80, '0.0.0.0', () => fs.writeFileSync(`/tg-scratch/${name}.ready`, ''));
