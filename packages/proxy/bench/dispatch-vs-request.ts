// Quick local comparison behind the choice of undici's low-level dispatch() over request() for the
// data plane: same Pool, same loopback upstream, N requests at concurrency C, bodies drained.
// Run: node packages/proxy/bench/dispatch-vs-request.ts  (bounded: 20k requests per variant)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type Dispatcher, Pool } from 'undici';

const N = 20_000;
const C = 50;
// The upstream runs in its own process so that client CPU per request, the figure compared, is ours alone.
const server = spawn(
  process.execPath,
  ['-e', "const s=require('http').createServer((q,r)=>r.end('hello world')).listen(0,'127.0.0.1',()=>console.log(s.address().port))"],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const [line] = (await once(server.stdout, 'data')) as [Buffer];
const origin = `http://127.0.0.1:${line.toString().trim()}`;

function viaDispatch(pool: Pool): Promise<void> {
  return new Promise((resolve, reject) => {
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart() {},
      onResponseData() {},
      onResponseEnd: () => resolve(),
      onResponseError: (_c, err) => reject(err),
    };
    pool.dispatch({ method: 'GET', path: '/', headers: ['host', 'x'] }, handler);
  });
}

async function viaRequest(pool: Pool): Promise<void> {
  const res = await pool.request({ method: 'GET', path: '/', headers: ['host', 'x'] });
  for await (const _ of res.body);
}

async function run(name: string, one: (pool: Pool) => Promise<void>): Promise<void> {
  const pool = new Pool(origin, { connections: C });
  let next = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next++ < N) await one(pool);
    }),
  );
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  console.log(`${name}: ${Math.round((N / ms) * 1000)} req/s, client CPU ${((used.user + used.system) / N).toFixed(1)} µs/request`);
  await pool.close();
}

for (let round = 0; round < 2; round++) {
  await run('dispatch', viaDispatch);
  await run('request ', viaRequest);
}
server.kill();
