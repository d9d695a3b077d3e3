import { describe, expect, it } from 'vitest';
import { DEFAULT_DRAIN_DELAY_MS, drainDelayMs, parseConfig } from '../src/index.ts';

/** A file with a proxy on `listener` and, when `check` is given, a DR virtual service of two nodes checked by it. */
function file(proxy: string, check?: string, listener = '{ address: 0.0.0.0, port: 80 }'): string {
  const vs = check
    ? `virtual_services:
  - address: 192.0.2.100
    port: 80
    real_servers: [{ address: 192.0.2.11 }, { address: 192.0.2.12 }]
    health_check: ${check}
`
    : '';
  return `version: 1
${vs}proxy:
  listeners: [${listener}]
${proxy}  pools:
    app:
      servers: [{ address: 127.0.0.1:8081 }]
`;
}
const delay = (yaml: string) => drainDelayMs(parseConfig(yaml));

describe('drainDelayMs (proxy.drain_delay)', () => {
  it('auto without monitor_uri is 0: nothing can see the node leave, so stopping is not delayed', () => {
    expect(delay(file('', '{ type: http, path: /h, interval: 2s, fall: 2 }'))).toBe(0);
  });

  it("auto is the director's time to quiesce: fall checks interval × (1 + jitter) apart, plus timeout and 1 s", () => {
    const http = '{ type: http, path: /-/health, interval: 2s, timeout: 1s, fall: 3, jitter: 0.1 }';
    expect(delay(file('  monitor_uri: /-/health\n', http))).toBe(3 * 2000 * 1.1 + 1000 + 1000);
    // The listener on the node's own address, or on the VIP, is the real server too.
    expect(delay(file('  monitor_uri: /-/health\n', http, '{ address: 192.0.2.12, port: 80 }'))).toBe(8600);
    expect(delay(file('  monitor_uri: /-/health\n', http, '{ address: 192.0.2.100, port: 80 }'))).toBe(8600);
  });

  it('auto with monitor_uri but no http check landing on a listener is the documented default', () => {
    expect(delay(file('  monitor_uri: /-/health\n'))).toBe(DEFAULT_DRAIN_DELAY_MS);
    // A tcp check never sees the signal; a check on another port or host is not this proxy's.
    expect(delay(file('  monitor_uri: /-/health\n', '{ type: tcp, interval: 6s, fall: 3 }'))).toBe(DEFAULT_DRAIN_DELAY_MS);
    expect(delay(file('  monitor_uri: /-/health\n', '{ type: http, port: 8080 }'))).toBe(DEFAULT_DRAIN_DELAY_MS);
    expect(delay(file('  monitor_uri: /-/health\n', '{ type: http }', '{ address: 192.0.2.50, port: 80 }'))).toBe(DEFAULT_DRAIN_DELAY_MS);
  });

  it('a number is taken as it is', () => {
    expect(delay(file('  drain_delay: 1500ms\n'))).toBe(1500);
    expect(delay(file('  monitor_uri: /-/health\n  drain_delay: 0\n', '{ type: http }'))).toBe(0);
  });
});
