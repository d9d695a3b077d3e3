#!/usr/bin/env node
/**
 * Runs inside a guest whose kernel has IPVS (as root, in a fresh network namespace): applyBatch through the
 * netlink driver and through the ipvsadm driver. Prints one JSON line with each op's result, the netlink
 * socket's syscall counts, and `ipvsadm -Ln` of the table each batch left; the test asserts on them.
 */
import { execFileSync } from 'node:child_process';
import { isTgError } from '@tiergate/errors';
import {
  IpvsadmDriver,
  type IpvsDestination,
  type IpvsDriver,
  type IpvsOp,
  type IpvsOpResult,
  type IpvsService,
  NetlinkIpvsDriver,
} from '../../src/index.ts';

const flags = { persistent: false, onePacket: false, schedFlags: [] };
const service = (address: string): IpvsService => ({
  family: 'inet',
  protocol: 'tcp',
  address,
  port: 80,
  scheduler: 'wrr',
  flags,
  timeout: 0,
  netmask: '255.255.255.255',
});
const dest = (address: string, weight = 1): IpvsDestination => ({
  address,
  port: 80,
  family: 'inet',
  forward: 'route',
  weight,
  upperThreshold: 0,
  lowerThreshold: 0,
});
const A = service('10.97.0.1');
const B = service('10.97.0.2'); // never created

/** Three ops fail in the middle of the batch, each differently; the ones after each must still land. */
const MIXED: IpvsOp[] = [
  { kind: 'add-service', service: A },
  { kind: 'add-destination', service: A, destination: dest('10.97.1.1') },
  { kind: 'add-destination', service: B, destination: dest('10.97.1.2') },
  { kind: 'add-destination', service: A, destination: dest('10.97.1.3') },
  { kind: 'add-service', service: A },
  { kind: 'add-destination', service: A, destination: dest('10.97.1.4', 2 ** 31) },
  { kind: 'add-destination', service: A, destination: dest('10.97.1.5') },
];

/** 300 services × 10 destinations in one applyBatch: 3,300 ACKs, ~2.5 MB of truesize, 12× net.core.rmem_default. */
function bigTable(): IpvsOp[] {
  const svcs = Array.from({ length: 300 }, (_, s) => service(`10.96.${s >> 8}.${s & 255}`));
  const dests = svcs.flatMap((svc, s) =>
    Array.from({ length: 10 }, (_, d): IpvsOp => {
      const i = s * 10 + d;
      return { kind: 'add-destination', service: svc, destination: dest(`10.95.${i >> 8}.${i & 255}`) };
    }),
  );
  return [...svcs.map((svc): IpvsOp => ({ kind: 'add-service', service: svc })), ...dests];
}

const describe = (r: IpvsOpResult) =>
  r.ok
    ? { ok: true }
    : {
        ok: false,
        code: isTgError(r.error) ? r.error.code : 'not a TgError',
        message: (r.error as Error).message,
        reason: isTgError(r.error) ? (r.error.details as { reason?: string } | undefined)?.reason : undefined,
      };

const ipvsadmLn = () => execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' });

async function run(driver: IpvsDriver, ops: IpvsOp[]) {
  await driver.flush();
  const results = await driver.applyBatch(ops);
  return { results: results.map(describe), ln: ipvsadmLn() };
}

async function main() {
  // NEW_DEST of an IPv4 address fails with EINVAL while the netns has no IPv4 address (see ipvs-roundtrip.ts).
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  await using nl = await NetlinkIpvsDriver.open();
  const before = nl.socketStats;
  const mixed = await run(nl, MIXED);
  const mixedSends = nl.socketStats.sendCalls - before.sendCalls - 1; // minus the flush
  const adm = await run(await IpvsadmDriver.open(), MIXED);
  const ops = bigTable();
  const beforeBig = nl.socketStats;
  const big = await run(nl, ops);
  const bigSends = nl.socketStats.sendCalls - beforeBig.sendCalls - 1;
  const failures = big.results.filter((r) => !r.ok);
  const summary = {
    mixed: { ...mixed, sendCalls: mixedSends },
    ipvsadm: adm,
    big: { ops: ops.length, failures: failures.slice(0, 5), failureCount: failures.length, sendCalls: bigSends, ln: big.ln },
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

await main();
