import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, httpStatusOf, TgError } from '../src/index.ts';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
/** Rows of the catalogue table: | `CODE` | status | exit | summary | */
const rows = [...doc.matchAll(/^\|\s*`(TG_[A-Z0-9_]+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|/gm)].map((m) => ({
  code: m[1] as string,
  status: Number(m[2]),
  exit: Number(m[3]),
}));

describe('error catalogue', () => {
  it('documents exactly the codes the code defines, with the same status and exit code', () => {
    const fromCode = Object.entries(ERROR_CODES)
      .map(([code, v]) => ({ code, status: v.status, exit: v.exit }))
      .sort((a, b) => a.code.localeCompare(b.code));
    expect([...rows].sort((a, b) => a.code.localeCompare(b.code))).toEqual(fromCode);
  });

  it('keeps the cause and maps code to status', () => {
    const cause = new Error('boom');
    const e = new TgError('TG_PROXY_UPSTREAM_TIMEOUT', 'upstream timed out', { cause });
    expect(e.cause).toBe(cause);
    expect(e.status).toBe(504);
    expect(httpStatusOf('TG_PROXY_NO_UPSTREAM')).toBe(502);
    expect(e).toBeInstanceOf(Error);
  });
});
