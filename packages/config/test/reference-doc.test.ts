import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tiergateConfigSchema } from '../src/index.ts';
import { schemaKeys } from './schema-keys.ts';

/**
 * docs/config-reference.md must document every key the schema defines, and only those: each key
 * is one table row whose first cell is its full path in backticks. The schema is walked, so a key
 * added to schema.ts without a row here (or a row left after a key is removed) fails this test.
 */
const doc = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'config-reference.md'), 'utf8');
const keys = schemaKeys(tiergateConfigSchema);
const documented = new Set([...doc.matchAll(/^\| *`([^`]+)` *\|/gm)].map((m) => m[1] as string));

describe('docs/config-reference.md', () => {
  it('the schema walker finds the keys (sanity: nested lists, maps and unions are entered)', () => {
    for (const k of ['version', 'virtual_services[].real_servers[].weight', 'proxy.pools.<name>.servers[].weight'])
      expect(keys).toContain(k);
    expect(keys).toContain('virtual_services[].health_check.command');
    expect(keys).toContain('proxy.pools.<name>.health_check.expect_status');
    expect(keys.size).toBeGreaterThan(150);
  });

  it('has a section for every top-level key', () => {
    for (const section of Object.keys(tiergateConfigSchema.shape)) expect(doc, section).toContain(`\n## \`${section}\`\n`);
  });

  it('has a row for every key the schema defines', () => {
    expect([...keys].filter((k) => !documented.has(k))).toEqual([]);
  });

  it('documents no key the schema does not define', () => {
    const keyLike = [...documented].filter((k) => /^[a-z_]+(\[\]|\.<name>|\.[a-z_]+)*$/.test(k) && !k.startsWith('TG_'));
    expect(keyLike.filter((k) => !keys.has(k))).toEqual([]);
  });

  it('spells out the units and the error format', () => {
    for (const text of ['500ms', '10s', '5m', '1h', '64k', '1m', 'file:line:column: path: message']) expect(doc).toContain(text);
  });
});
