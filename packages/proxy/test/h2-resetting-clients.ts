/**
 * Child process of h2-helpers.ts resettingClients: `node h2-resetting-clients.ts PORT PATH CLIENTS STREAMS`.
 * One TLS h2 client after another, each with STREAMS requests for PATH; a millisecond after the first response
 * bytes it resets its TCP connection (SO_LINGER 0: RST). Prints `reset N` when done. Loopback only.
 */
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const [port, path, clients, streams] = [Number(process.argv[2]), process.argv[3]!, Number(process.argv[4]), Number(process.argv[5])];
let reset = 0;
for (let i = 0; i < clients; i++) {
  await new Promise<void>((resolve) => {
    const tcp = netConnect({ port, host: '127.0.0.1' });
    tcp.on('error', () => {});
    const secure = tlsConnect({ socket: tcp, ALPNProtocols: ['h2'], rejectUnauthorized: false, servername: 'localhost' });
    secure.on('error', () => {});
    const session = h2connect(`https://localhost:${port}`, { createConnection: () => secure });
    session.on('error', () => {});
    session.once('close', resolve);
    for (let k = 0; k < streams; k++) {
      const stream = session.request({ ':path': path });
      stream.on('error', () => {});
      // A millisecond after the first bytes: the proxy is then mid-way through writing the responses.
      stream.once('data', () =>
        setTimeout(() => {
          if (tcp.destroyed) return;
          tcp.resetAndDestroy();
          reset++;
          resolve();
        }, 1),
      );
    }
  });
}
process.stdout.write(`reset ${reset}\n`);
