/**
 * Child of host-setup-vips.test.ts, run under `unshare --net` so it owns a fresh network namespace: makes an
 * eth0 (a veth), puts the `present` addresses on it first (as keepalived does as MASTER), runs the director's
 * VIP step twice, and prints what each run reported and which addresses eth0 holds afterwards.
 */
import { validateConfig } from '@tiergate/config';
import { ip, listAddresses, setupDirectorVips } from '../src/host-setup.ts';

const { director, present } = JSON.parse(process.argv[2] ?? '{}') as { director: Record<string, unknown>; present: string[] };
await ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
for (const a of present) await ip(['addr', 'add', a, 'dev', 'eth0']);
const [validated] = validateConfig({ version: 1, directors: [director] }).directors;
if (!validated) throw new Error('no director entry');
const first = await setupDirectorVips(validated);
const second = await setupDirectorVips(validated);
const [link] = await listAddresses('eth0');
const addresses = (link?.addr_info ?? []).filter((i) => !i.local.startsWith('fe80:')).map((i) => `${i.local}/${i.prefixlen}`);
process.stdout.write(JSON.stringify({ first, second, addresses }));
