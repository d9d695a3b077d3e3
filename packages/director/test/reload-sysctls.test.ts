import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { validateConfig } from '@tiergate/config';
import { afterEach, describe, expect, it } from 'vitest';
import type { VirtualService } from '../src/desired.ts';
import type { Logger } from '../src/logger.ts';
import { Director } from '../src/reconciler.ts';
import { MemoryStateStore } from '../src/state-store.ts';
import { FakeIpvs } from './fake-ipvs.ts';

// The sysctls a reload needs, written to a directory standing in for /proc/sys (this kernel has no
// net/ipv4/vs, and a test must not turn on the host's forwarding). The IPVS side is the in-memory table.

const dr = { address: '10.0.0.100', port: 80, scheduler: 'rr', real_servers: [{ address: '10.0.0.11' }] };
const nat = { address: '10.0.0.101', port: 80, scheduler: 'rr', forwarding: 'nat', real_servers: [{ address: '10.1.0.11', port: 8080 }] };

function parse(services: unknown[]) {
  const c = validateConfig({ version: 1, directors: [{ name: 'd1', interface: 'eth0' }], virtual_services: services });
  return { director: c.directors[0] as NonNullable<(typeof c.directors)[number]>, services: c.virtual_services as VirtualService[] };
}

/** A /proc/sys stand-in holding the director's sysctls at the kernel's defaults. */
async function sysctlTree(values: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tg-sysctl-'));
  for (const [path, value] of Object.entries(values)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), `${value}\n`);
  }
  return root;
}

const DEFAULTS = {
  'net/ipv4/vs/expire_nodest_conn': '1',
  'net/ipv4/vs/expire_quiescent_template': '1',
  'net/ipv4/vs/conntrack': '0',
  'net/ipv4/ip_forward': '0',
};

function recordingLogger(lines: string[]): Logger {
  const log = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

describe('Director.reload applies the host sysctls the new services need', () => {
  let root = '';
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
    root = '';
  });
  const read = (path: string) => readFile(join(root, path), 'utf8');

  it('a NAT service added by a reload turns on ip_forward and conntrack before it is created', async () => {
    root = await sysctlTree(DEFAULTS);
    const first = parse([dr]);
    const forwardingAtWrite: string[] = [];
    // What ip_forward is when each batch reaches the kernel.
    const driver = new (class extends FakeIpvs {
      override async applyBatch(ops: Parameters<FakeIpvs['applyBatch']>[0]) {
        forwardingAtWrite.push((await read('net/ipv4/ip_forward')).trim());
        return super.applyBatch(ops);
      }
    })();
    const lines: string[] = [];
    await using d = new Director({
      name: 'd1',
      services: first.services,
      driver,
      state: new MemoryStateStore(),
      intervalMs: 3_600_000,
      logger: recordingLogger(lines),
      host: { director: first.director, sysctlRoot: root },
    });
    await d.start();
    expect(await read('net/ipv4/ip_forward')).toBe('0\n');
    forwardingAtWrite.length = 0;

    await d.reload(parse([dr, nat]).services);
    expect(forwardingAtWrite).toEqual(['1', '1']); // add-service, add-destination: both after the sysctl
    expect(await read('net/ipv4/ip_forward')).toBe('1\n');
    expect(await read('net/ipv4/vs/conntrack')).toBe('1\n');
    expect(driver.table.has('tcp/10.0.0.101:80')).toBe(true);
    expect(lines.filter((l) => l.startsWith('info host setup'))).toEqual([
      'info host setup {"change":"sysctl net.ipv4.vs.conntrack=1 (was 0)"}',
      'info host setup {"change":"sysctl net.ipv4.ip_forward=1 (was 0)"}',
    ]);

    // A reload that needs nothing new writes nothing.
    lines.length = 0;
    await d.reload(parse([dr, nat]).services);
    expect(lines.filter((l) => l.includes('host setup'))).toEqual([]);
  });

  it('a sysctl it cannot set is logged and the reload goes on', async () => {
    root = await sysctlTree({ 'net/ipv4/ip_forward': '0' }); // no net/ipv4/vs: as without ip_vs loaded
    const first = parse([dr]);
    const driver = new FakeIpvs();
    const lines: string[] = [];
    await using d = new Director({
      name: 'd1',
      services: first.services,
      driver,
      state: new MemoryStateStore(),
      intervalMs: 3_600_000,
      logger: recordingLogger(lines),
      host: { director: first.director, sysctlRoot: root },
    });
    await d.start();
    await d.reload(parse([dr, nat]).services);
    expect(driver.table.has('tcp/10.0.0.101:80')).toBe(true);
    expect(lines.some((l) => l.startsWith('error host sysctls not applied on reload') && l.includes('TG_HOST_SETUP'))).toBe(true);
  });
});
