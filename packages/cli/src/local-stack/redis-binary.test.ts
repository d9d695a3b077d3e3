import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { missingRedisMessage, resolveRedisServer } from './redis-binary.ts';

const ROOT_DEBIAN = { isRoot: true, isDebian: true, hasAptGet: true };
const USER_DEBIAN = { isRoot: false, isDebian: true, hasAptGet: true };
const USER_OTHER = { isRoot: false, isDebian: false, hasAptGet: false };

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return isTgError(err) ? `${err.code}: ${err.message}` : `not a TgError: ${String(err)}`;
  }
  return undefined;
}

describe('resolveRedisServer', () => {
  it('uses TG_REDIS_SERVER when it names an executable', async () => {
    // /bin/true stands in for the binary: only "is it executable" is checked here.
    expect(await resolveRedisServer(() => {}, { TG_REDIS_SERVER: '/bin/true' }, ROOT_DEBIAN)).toBe('/bin/true');
  });

  it('never installs over a wrong TG_REDIS_SERVER, even as root on Debian', async () => {
    const said: string[] = [];
    const got = await codeOf(resolveRedisServer((l) => said.push(l), { TG_REDIS_SERVER: '/nope/redis-server' }, ROOT_DEBIAN));
    expect(got).toMatch(/^TG_STACK_MISSING_BINARY: redis-server is not installed \(looked for \/nope\/redis-server from TG_REDIS_SERVER\)/);
    expect(said).toEqual([]);
  });

  it('finds redis-server on PATH', async () => {
    const found = await resolveRedisServer(() => {}, { PATH: '/usr/bin:/bin' }, USER_OTHER);
    expect(found).toMatch(/\/redis-server$/);
  });
});

describe('missingRedisMessage', () => {
  it('gives a non-root Debian user the sudo apt-get command', () => {
    expect(missingRedisMessage('/usr/bin/redis-server', USER_DEBIAN)).toContain('install it:   sudo apt-get install -y redis-server');
  });

  it('gives root the command without sudo', () => {
    expect(missingRedisMessage('/usr/bin/redis-server', ROOT_DEBIAN)).toContain('install it:   apt-get install -y redis-server');
  });

  it('names the way around it on any system: TG_REDIS_SERVER or --store memory', () => {
    const text = missingRedisMessage('x', USER_OTHER);
    expect(text).toContain('install Redis with your package manager');
    expect(text).toContain('TG_REDIS_SERVER');
    expect(text).toContain('tiergate up --store memory');
  });
});
