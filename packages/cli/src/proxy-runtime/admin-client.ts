import type { ErrorCode } from '@tiergate/errors';
import { TgError } from '@tiergate/errors';
import type { ProxySection } from '@tiergate/proxy';

/** The admin URL of the proxy a file describes: a wildcard address is reached on loopback. */
export function adminUrl(admin: ProxySection['admin'], override?: string): string {
  if (override) return override.replace(/\/+$/, '');
  if (admin.port === 0) throw new TgError('TG_ADMIN_UNREACHABLE', 'proxy.admin.port is 0 (a random port): pass --admin URL');
  const host = admin.address === '0.0.0.0' ? '127.0.0.1' : admin.address === '::' ? '::1' : admin.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${admin.port}`;
}

/**
 * Calls the running proxy's admin endpoint with the file's bearer token. Resolves with the status and
 * parsed JSON body; rejects with TG_ADMIN_UNREACHABLE when nothing answers, or with the endpoint's own
 * error code (`{error: {code, message}}`) for a non-2xx answer unless `acceptStatus` lists it.
 */
export async function callAdmin(
  base: string,
  path: string,
  opts: { token?: string | undefined; method?: string; acceptStatus?: readonly number[] } = {},
): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method: opts.method ?? 'GET',
      headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      signal: AbortSignal.timeout(30_000),
    });
  } catch (cause) {
    throw new TgError('TG_ADMIN_UNREACHABLE', `no proxy admin endpoint answers at ${base}: ${(cause as Error).message}`, { cause });
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  if (res.ok || opts.acceptStatus?.includes(res.status)) return { status: res.status, body };
  const err = (body as { error?: { code?: string; message?: string } })?.error;
  const code = (err?.code ?? 'TG_ADMIN_FAILED') as ErrorCode;
  throw new TgError(code, err?.message ?? `${path}: HTTP ${res.status}`);
}
