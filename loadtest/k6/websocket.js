// websocket: connect, echo, close, through the proxy (its Upgrade tunnel, docs/proxy.md "WebSocket"). Needs an
// echo endpoint behind the proxy at WS_URL: the demo app has no WebSocket route, so point WS_URL at a pool that
// serves one (the runner's test starts a `ws` echo server behind a real proxy).
//   k6 run -e WS_URL=ws://127.0.0.1:8080/echo loadtest/k6/websocket.js
import { check } from 'k6';
import ws from 'k6/ws';
import { BASE_URL, envNumber, TREND_STATS } from './lib.js';

const WS_URL = __ENV.WS_URL || `${BASE_URL.replace(/^http/, 'ws')}/echo`;
const MESSAGES = envNumber('MESSAGES', 5);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    echo: { executor: 'constant-vus', vus: envNumber('VUS', 5), duration: __ENV.DURATION || '10s' },
  },
  thresholds: {
    checks: ['rate==1'],
    // Handshake through the proxy (connect + 101) on loopback.
    ws_connecting: ['p(95)<50'],
  },
  summaryTrendStats: TREND_STATS,
};

export default function () {
  let echoed = 0;
  const res = ws.connect(WS_URL, {}, (socket) => {
    socket.on('open', () => socket.send('ping 0'));
    socket.on('message', (data) => {
      if (data === `ping ${echoed}`) echoed++;
      if (echoed < MESSAGES) socket.send(`ping ${echoed}`);
      else socket.close();
    });
    // A socket that stops answering must not hold the VU forever.
    socket.setTimeout(() => socket.close(), 5000);
  });
  check(res, { 'ws: 101 switching protocols': (r) => Boolean(r) && r.status === 101 });
  check(echoed, { 'ws: every message echoed in order': (n) => n === MESSAGES });
}
