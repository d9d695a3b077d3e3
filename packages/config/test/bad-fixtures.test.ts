import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { type ConfigIssue, loadConfigFile } from '../src/index.ts';

/**
 * Table-driven corpus of bad files. Each fixture states its expectations in leading comments:
 *   # expect: CODE PATH LINE
 * (PATH `-` for an issue about the whole document). The loader must throw that code and report
 * exactly these issues — no fewer (every problem is listed), no more (no noise).
 */
const dir = join(import.meta.dirname, '..', 'fixtures', 'bad');
const EXPECT = /^# expect: (TG_CONFIG_[A-Z_]+) (.+) (\d+)$/;

interface Expectation {
  code: string;
  path: string;
  line: number;
}

function expectationsOf(text: string): Expectation[] {
  const out: Expectation[] = [];
  for (const line of text.split('\n')) {
    const m = EXPECT.exec(line);
    if (!m) break;
    out.push({ code: m[1] as string, path: m[2] === '-' ? '' : (m[2] as string), line: Number(m[3]) });
  }
  return out;
}

async function issuesOf(file: string): Promise<{ code: string; issues: ConfigIssue[] }> {
  try {
    await loadConfigFile(file);
  } catch (err) {
    if (!isTgError(err)) throw err;
    return { code: err.code, issues: (err.details as { issues: ConfigIssue[] }).issues };
  }
  throw new Error(`${file} was accepted`);
}

const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('bad configuration corpus', () => {
  it('has at least 35 fixtures, each with an expectation', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(35);
    for (const f of fixtures) expect(expectationsOf(readFileSync(join(dir, f), 'utf8')), f).not.toEqual([]);
  });

  it.each(fixtures)('%s', async (name) => {
    const file = join(dir, name);
    const expected = expectationsOf(readFileSync(file, 'utf8'));
    const { code, issues } = await issuesOf(file);
    expect(new Set(expected.map((e) => e.code)).size, 'one code per file').toBe(1);
    expect(code).toBe(expected[0]?.code);
    const key = (i: { path: string; line: number }) => `${i.path} @${i.line}`;
    expect(issues.map(key).sort()).toEqual(expected.map(key).sort());
    for (const issue of issues) {
      expect(issue.file).toBe(file);
      expect(issue.column).toBeGreaterThanOrEqual(1);
      expect(issue.message).not.toBe('');
    }
  });
});
