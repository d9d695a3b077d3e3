import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandChecker } from '../src/index.ts';

const target = { host: '127.0.0.1', port: 8080 };
const sh = (script: string, dynamicWeight?: boolean) => new CommandChecker({ kind: 'command', argv: ['sh', '-c', script], dynamicWeight });

/** True while a process exists and is not a zombie waiting to be reaped. */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

describe('CommandChecker', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = '';
  });

  it('is ok on exit 0 and passes the target in TG_CHECK_HOST / TG_CHECK_PORT', async () => {
    const r = await sh('test "$TG_CHECK_HOST" = 127.0.0.1 && test "$TG_CHECK_PORT" = 8080').check(target, 5000);
    expect(r).toMatchObject({ ok: true, detail: 'exit 0' });
    expect(r.weight).toBeUndefined();
  });

  it('fails on exit 1 and shows the first line of stderr', async () => {
    const r = await sh('echo "backend says no" >&2; echo more >&2; exit 1').check(target, 5000);
    expect(r).toMatchObject({ ok: false, detail: 'exit 1: backend says no' });
  });

  it('runs argv without a shell', async () => {
    const r = await new CommandChecker({ kind: 'command', argv: ['test', '$TG_CHECK_PORT', '=', '$TG_CHECK_PORT'] }).check(target, 5000);
    expect(r.ok).toBe(true);
    const r2 = await new CommandChecker({ kind: 'command', argv: ['test', '$TG_CHECK_PORT', '=', '8080'] }).check(target, 5000);
    expect(r2).toMatchObject({ ok: false, detail: 'exit 1' });
  });

  it('fails with ENOENT for a missing program', async () => {
    const r = await new CommandChecker({ kind: 'command', argv: ['/nonexistent/tg-check'] }).check(target, 5000);
    expect(r.ok).toBe(false);
    expect(r.detail).toContain('ENOENT');
  });

  it('kills the whole process group at the timeout', async () => {
    dir = await mkdtemp(join(tmpdir(), 'tg-health-cmd-'));
    await chmod(dir, 0o777); // the check runs as nobody when the tests run as root
    const pidFile = join(dir, 'pid');
    const r = await sh(`sleep 30 & echo $! > ${pidFile}; wait`).check(target, 300);
    expect(r).toMatchObject({ ok: false, detail: 'timeout after 300 ms' });
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(0);
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      gone = !(await alive(grandchild));
      if (!gone) await new Promise((res) => setTimeout(res, 20));
    }
    expect(gone, `grandchild ${grandchild} outlived the timeout`).toBe(true);
  });

  it('fails as aborted when the caller aborts, killing the command', async () => {
    const ac = new AbortController();
    const pending = sh('sleep 30').check(target, 10_000, ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await pending).toMatchObject({ ok: false, detail: 'aborted' });
  });

  it('misc_dynamic: exit 2..255 is healthy with weight code - 2; exit 1 still fails', async () => {
    expect(await sh('exit 7', true).check(target, 5000)).toMatchObject({ ok: true, weight: 5, detail: 'exit 7, weight 5' });
    expect(await sh('exit 2', true).check(target, 5000)).toMatchObject({ ok: true, weight: 0 });
    expect(await sh('exit 255', true).check(target, 5000)).toMatchObject({ ok: true, weight: 253 });
    expect((await sh('exit 1', true).check(target, 5000)).ok).toBe(false);
    const zero = await sh('exit 0', true).check(target, 5000);
    expect(zero.ok).toBe(true);
    expect(zero).not.toHaveProperty('weight');
  });

  it('without misc_dynamic every non-zero exit fails', async () => {
    expect(await sh('exit 7').check(target, 5000)).toMatchObject({ ok: false, detail: 'exit 7' });
  });

  // As root, like the director (and CI): only root can switch users.
  describe('who runs it and with what environment', () => {
    /** Fails on purpose so the one line it prints comes back in the detail. */
    const say = (script: string, user?: string) =>
      new CommandChecker({ kind: 'command', argv: ['sh', '-c', `echo "${script}" >&2; exit 1`], user }).check(target, 5000);

    it('runs as nobody when this process is root and the config names no user (keepalived script_user)', async () => {
      const r = await say('$(id -un):$(id -gn):$(id -G)');
      expect(r.detail).toBe('exit 1: nobody:nogroup:65534');
    });

    it("runs as the configured user, with that user's primary group and no supplementary group of ours", async () => {
      expect((await say('$(id -un):$(id -G)', 'daemon')).detail).toBe('exit 1: daemon:1');
      expect((await say('$(id -un)', 'root')).detail).toBe('exit 1: root');
    });

    it("gives the command a minimal environment, not this process's (tokens, passwords)", async () => {
      process.env.TG_TEST_SECRET = 'do-not-leak';
      try {
        const r = await say("$(env | cut -d= -f1 | grep -v '^PWD$' | sort | tr '\\n' ' ')| $HOME | $PATH | $(pwd)");
        expect(r.detail).toBe(
          'exit 1: HOME LOGNAME PATH TG_CHECK_HOST TG_CHECK_PORT USER | /nonexistent | /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin | /',
        );
      } finally {
        delete process.env.TG_TEST_SECRET;
      }
    });

    it('fails every check, saying why, when the user does not exist', async () => {
      const r = await say('never runs', 'tg-no-such-user');
      expect(r).toMatchObject({ ok: false, detail: "no user 'tg-no-such-user' (getent passwd)" });
    });
  });
});
