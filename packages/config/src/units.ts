import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * A duration as nginx writes them: `500ms`, `10s`, `5m`, `1h`, `1d`, or a bare number of seconds
 * (`fail_timeout=10` means 10 s in nginx). Normalised to milliseconds.
 */
export const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') {
    if (Number.isFinite(v) && v >= 0) return Math.round(v * 1000);
    ctx.addIssue({ code: 'custom', message: `invalid duration ${v}: expected a non-negative number of seconds` });
    return z.NEVER;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `invalid duration '${v}': expected e.g. 500ms, 10s, 5m, 1h` });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] as number));
});

/** A size as nginx writes them: `512`, `64k`, `1m`, `1g` (binary multiples). Normalised to bytes. */
export const size = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+)([kmg]?)$/i.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `invalid size '${v}': expected e.g. 512, 64k, 1m, 1g` });
    return z.NEVER;
  }
  return Number(m[1]) * (SIZE_UNITS[(m[2] as string).toLowerCase()] as number);
});
