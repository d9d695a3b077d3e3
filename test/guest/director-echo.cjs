// Guest real server: answers on each given port with its name, the port, the TCP peer and local address,
// padded so responses dwarf requests. Writes /tg-scratch/NAME.ready when listening on every port.
const http = require('node:http');
const fs = require('node:fs');

const [name, ports, padBytes] = [process.argv[2], process.argv[3].split(',').map(Number), Number(process.argv[4] ?? 0)];
const pad = 'x'.repeat(padBytes);
let listening = 0;
for (const port of ports) {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name, port, peer: req.socket.remoteAddress, local: req.socket.localAddress, pad }));
  });
  server.keepAliveTimeout = 300_000;
  server.listen(port, '0.0.0.0', () => {
    if (++listening === ports.length) fs.writeFileSync(`/tg-scratch/${name}.ready`, '');
  });
}
