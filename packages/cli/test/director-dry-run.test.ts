import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

const example = new URL('../../../examples/nat-and-tun.yaml', import.meta.url).pathname;
/** nobody:nogroup: no CAP_NET_ADMIN, no /run/tiergate, as on a reviewer's laptop. This kernel has no ip_vs either. */
const NOBODY = { uid: 65534, gid: 65534 };

describe('tiergate director apply --dry-run --against-empty', () => {
  it('prints the first apply of a file as ipvsadm commands, without root and without IPVS', async () => {
    const r = await runCli(['director', 'apply', '--dry-run', '--against-empty', '-c', example], {
      ...NOBODY,
      env: { PATH: process.env.PATH },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // The example's comments give the ipvsadm equivalent of each service (ipvsadm itself adds the default -w 1).
    expect(r.stdout.split('\n')).toEqual([
      'ipvsadm -A -t 10.0.0.100:80 -s rr',
      'ipvsadm -A -t 10.0.0.101:443 -s mh -b mh-port',
      'ipvsadm -A -f 1 -s sh -p 600 -M 255.255.255.0 -b sh-fallback',
      'ipvsadm -A -u 10.0.0.53:53 -s rr -o',
      'ipvsadm -A -t [2001:db8::100]:80 -s wrr -p 300 -M 64',
      'ipvsadm -a -t 10.0.0.100:80 -r 10.0.1.11:8080 -m -w 1',
      'ipvsadm -a -t 10.0.0.100:80 -r 10.0.1.12:8080 -m -w 1 -x 1000 -y 800',
      'ipvsadm -a -t 10.0.0.101:443 -r 172.16.0.11:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum',
      'ipvsadm -a -t 10.0.0.101:443 -r 172.16.0.12:443 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum',
      'ipvsadm -a -t 10.0.0.101:443 -r [2001:db8:1::11]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum',
      'ipvsadm -a -f 1 -r 10.0.2.11:0 -g -w 1',
      'ipvsadm -a -f 1 -r 10.0.2.12:0 -g -w 1',
      'ipvsadm -a -u 10.0.0.53:53 -r 10.0.3.11:53 -g -w 1',
      'ipvsadm -a -u 10.0.0.53:53 -r 10.0.3.12:53 -g -w 1',
      'ipvsadm -a -t [2001:db8::100]:80 -r [2001:db8:2::11]:80 -g -w 3',
      'ipvsadm -a -t [2001:db8::100]:80 -r [2001:db8:2::12]:80 -g -w 1',
      '# 16 ops (dry run against an empty table: nothing read, nothing changed)',
      '',
    ]);
  });

  it('is refused without --dry-run (it never applies), exit 1 before anything is read', async () => {
    const r = await runCli(['director', 'apply', '--against-empty', '-c', example], NOBODY);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('tiergate: --against-empty plans without applying: use it with --dry-run [TG_CONFIG_INVALID]\n');
  });
});
