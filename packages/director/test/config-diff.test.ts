import { parseConfig, tiergateConfigSchema, validateConfig, virtualServiceSourceText } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { diffServices, sameData, sameService } from '../src/config-diff.ts';
import type { VirtualService } from '../src/desired.ts';

const config = (services: unknown[]) => validateConfig({ version: 1, virtual_services: services }).virtual_services as VirtualService[];
const svc = (last: number, extra: Record<string, unknown> = {}) => ({
  address: `10.0.0.${last}`,
  port: 80,
  scheduler: 'rr',
  real_servers: [{ address: '10.0.1.1' }, { address: '10.0.1.2', weight: 2 }],
  ...extra,
});

describe('diffServices (what a reload changes)', () => {
  it('finds nothing in an equal config, also with its services in another order', () => {
    const before = config([svc(1), svc(2), svc(3)]);
    expect(diffServices(before, config([svc(1), svc(2), svc(3)])).changed).toEqual(new Set());
    const moved = diffServices(before, config([svc(3), svc(1), svc(2)]));
    expect(moved.changed).toEqual(new Set());
    expect([...moved.byKey.keys()]).toEqual(['tcp/10.0.0.3:80', 'tcp/10.0.0.1:80', 'tcp/10.0.0.2:80']);
  });

  it('names a service whose own or real-server setting changed, an added and a removed one', () => {
    const before = config([svc(1), svc(2), svc(3), svc(4)]);
    const after = config([
      svc(1, { real_servers: [{ address: '10.0.1.1' }, { address: '10.0.1.2', weight: 3 }] }),
      svc(2, { scheduler: 'wrr' }),
      svc(3, { health_check: { type: 'tcp' } }),
      svc(5),
    ]);
    expect(diffServices(before, after).changed).toEqual(
      new Set(['tcp/10.0.0.1:80', 'tcp/10.0.0.2:80', 'tcp/10.0.0.3:80', 'tcp/10.0.0.5:80', 'tcp/10.0.0.4:80']),
    );
  });
});

describe('diffServices on parsed files (services compared by their YAML text first)', () => {
  const file = (weight: number, comment = '') => `version: 1
virtual_services:
  - address: 10.0.0.1
    port: 80
    real_servers: [{ address: 10.0.1.1, weight: ${weight} }]${comment}
  - { address: 10.0.0.2, port: 80, real_servers: [{ address: 10.0.1.2 }] }
`;
  const parsed = (text: string) => parseConfig(text).virtual_services as VirtualService[];

  it('records each service’s own text, and finds the one service whose text and value changed', () => {
    const before = parsed(file(1));
    expect(virtualServiceSourceText(before[1] as VirtualService)).toBe(
      '{ address: 10.0.0.2, port: 80, real_servers: [{ address: 10.0.1.2 }] }',
    );
    expect(diffServices(before, parsed(file(1))).changed).toEqual(new Set());
    expect(diffServices(before, parsed(file(2))).changed).toEqual(new Set(['tcp/10.0.0.1:80']));
  });

  it('compares the fields when the texts differ but the values do not (a comment, the spacing)', () => {
    const before = parsed(file(1));
    const after = parsed(file(1, '   # same weight').replace('port: 80, real', 'port:   80, real'));
    expect(virtualServiceSourceText(after[0] as VirtualService)).not.toBe(virtualServiceSourceText(before[0] as VirtualService));
    expect(diffServices(before, after).changed).toEqual(new Set());
  });

  it('does not trust the text in a file with aliases: the same text can then mean another value', () => {
    // The second service's text stays the same while its weight follows the anchor in the first.
    const aliased = (weight: number) => `version: 1
virtual_services:
  - { address: 10.0.0.1, port: 80, real_servers: [{ address: 10.0.1.1, weight: &w ${weight} }] }
  - { address: 10.0.0.2, port: 80, real_servers: [{ address: 10.0.1.2, weight: *w }] }
`;
    const before = parsed(aliased(1));
    expect(virtualServiceSourceText(before[1] as VirtualService)).toBeUndefined();
    expect(diffServices(before, parsed(aliased(2))).changed).toEqual(new Set(['tcp/10.0.0.1:80', 'tcp/10.0.0.2:80']));
  });
});

describe('sameService', () => {
  /** The real server fields the schema has (`realServer` in @tiergate/config), read from the schema itself. */
  function schemaRealServerFields(): string[] {
    type Zod = { def: { innerType?: Zod }; shape?: Record<string, Zod>; element?: Zod };
    const unwrap = (z: Zod | undefined) => z?.def.innerType ?? z; // a .default() wraps its schema
    const services = unwrap((tiergateConfigSchema as unknown as Zod).shape?.virtual_services)?.element;
    const servers = unwrap(services?.shape?.real_servers)?.element;
    return Object.keys(servers?.shape ?? {});
  }

  it('sees a change of every real-server field the schema has (it compares them one by one)', () => {
    const base = { address: '10.0.1.1', port: 8080, weight: 2, upper_threshold: 10, lower_threshold: 5 };
    const other: Record<string, unknown> = { address: '10.0.1.9', port: 8081, weight: 3, upper_threshold: 11, lower_threshold: 4 };
    const fields = schemaRealServerFields();
    expect(fields.length).toBeGreaterThan(0);
    const [before] = config([svc(1, { forwarding: 'nat', real_servers: [base] })]);
    for (const field of fields) {
      expect(other, `no other value for the new real-server field '${field}': add one here`).toHaveProperty(field);
      const [after] = config([svc(1, { forwarding: 'nat', real_servers: [{ ...base, [field]: other[field] }] })]);
      expect(sameService(before as VirtualService, after as VirtualService), field).toBe(false);
    }
    const [same] = config([svc(1, { forwarding: 'nat', real_servers: [{ ...base }] })]);
    expect(sameService(before as VirtualService, same as VirtualService)).toBe(true);
  });

  /** The virtual service fields the schema has (`virtualService` in @tiergate/config), read from the schema itself. */
  function schemaServiceFields(): string[] {
    type Zod = { def: { innerType?: Zod }; shape?: Record<string, Zod>; element?: Zod };
    const unwrap = (z: Zod | undefined) => z?.def.innerType ?? z;
    return Object.keys(unwrap((tiergateConfigSchema as unknown as Zod).shape?.virtual_services)?.element?.shape ?? {});
  }

  it('sees a change of every service field the schema has (it compares them one by one)', () => {
    const [before] = config([
      svc(1, {
        name: 'web',
        forwarding: 'tun',
        tunnel: { type: 'gue', port: 6080 },
        persistence: { timeout: 60_000 },
        health_check: { type: 'tcp', port: 8080 },
        sorry_server: { address: '10.0.2.1' },
      }),
    ]) as [VirtualService];
    // Other values of every field, set on a copy of the validated service (sameService does not validate).
    const other: Record<string, unknown> = {
      name: 'api',
      address: '10.0.0.9',
      port: 81,
      protocol: 'udp',
      fwmark: 7,
      family: 'inet6',
      scheduler: 'wrr',
      scheduler_flags: ['sh-port'],
      one_packet: true,
      persistence: { timeout: 61_000 },
      forwarding: 'nat',
      tunnel: { type: 'gue', port: 6081, checksum: 'nocsum' },
      real_servers: [{ address: '10.0.1.1', weight: 1, upper_threshold: 0, lower_threshold: 0 }],
      health_check: { ...before.health_check, port: 8081 },
      sorry_server: { address: '10.0.2.2' },
      drain_timeout: 1,
    };
    const fields = schemaServiceFields();
    expect(fields.length).toBeGreaterThan(10);
    for (const field of fields) {
      expect(other, `no other value for the new service field '${field}': add one here`).toHaveProperty(field);
      const after = { ...before, [field]: other[field] } as VirtualService;
      expect(sameService(before, after), field).toBe(false);
      expect(sameService(after, before), field).toBe(false);
    }
    expect(sameService(before, { ...before, health_check: { ...before.health_check } } as VirtualService)).toBe(true);
  });

  it('sees a change of the service itself, and of the number of its real servers', () => {
    const [before] = config([svc(1)]) as [VirtualService];
    const [scheduler] = config([svc(1, { scheduler: 'wrr' })]) as [VirtualService];
    const [check] = config([svc(1, { health_check: { type: 'tcp' } })]) as [VirtualService];
    const [fewer] = config([svc(1, { real_servers: [{ address: '10.0.1.1' }] })]) as [VirtualService];
    for (const after of [scheduler, check, fewer]) expect(sameService(before, after)).toBe(false);
  });
});

describe('sameData', () => {
  it('is deep equality of plain data: a missing key is not an undefined one, arrays are not objects', () => {
    expect(sameData({ a: [1, { b: 'x' }] }, { a: [1, { b: 'x' }] })).toBe(true);
    expect(sameData({ a: [1, { b: 'x' }] }, { a: [1, { b: 'y' }] })).toBe(false);
    expect(sameData({ a: undefined }, { b: undefined })).toBe(false);
    expect(sameData({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameData([1], { 0: 1 })).toBe(false);
    expect(sameData([1, 2], [1])).toBe(false);
    expect(sameData(null, {})).toBe(false);
  });
});
