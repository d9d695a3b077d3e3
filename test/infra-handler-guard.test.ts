import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// The roles' handler guard, written once (infra/test_plugins/tiergate.py): a restart or reload handler skips a unit
// that this run's start task has just started from inactive or failed (it runs the new code and config already), so
// a first deploy starts every unit exactly once (test/stack-vm.test.ts checks that on real hosts, and that a re-run
// with a changed config does reload). Here: the test gives what the expression it replaced gave, for every shape a
// registered systemd result takes, run by the real ansible-playbook; and every guarded handler uses it.

const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const INFRA = join(ROOT, 'infra');
const ROLES = join(INFRA, 'roles');

/** The expression each handler carried before (for REGISTERED). */
const before = (registered: string) => `(${registered}.status | default({})).ActiveState | default('active') not in ['inactive', 'failed']`;

describe('the handler guard (tiergate_started_from_stopped)', () => {
  it('acts exactly as the expression it replaced, for every shape of a registered systemd start result', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tg-guard-'));
    try {
      // What ansible.builtin.systemd registers: status holds the unit's properties read before the task acted.
      const cases: Record<string, unknown> = {
        was_inactive: { changed: true, status: { ActiveState: 'inactive' } },
        was_failed: { changed: true, status: { ActiveState: 'failed' } },
        was_active: { changed: false, status: { ActiveState: 'active' } },
        was_activating: { changed: false, status: { ActiveState: 'activating' } },
        no_active_state: { changed: false, status: {} },
        status_null: { changed: false, status: null },
        skipped: { skipped: true, changed: false },
      };
      const play = [
        {
          hosts: 'localhost',
          connection: 'local',
          gather_facts: false,
          vars: { cases },
          tasks: [
            {
              'ansible.builtin.copy': {
                dest: join(dir, 'out.json'),
                mode: '0600',
                // Per case: [handler acts with the test, handler acts with the old expression].
                content: `{{ { ${[...Object.keys(cases).map((k) => [k, `cases.${k}`]), ['undefined', 'never_registered']]
                  .map(([name, r]) => `'${name}': [(${r} is not tiergate_started_from_stopped), (${before(r ?? '')})]`)
                  .join(', ')} } | to_json }}`,
              },
            },
          ],
        },
      ];
      await writeFile(join(dir, 'guard.yml'), JSON.stringify(play));
      await exec('ansible-playbook', ['-i', 'localhost,', join(dir, 'guard.yml')], {
        cwd: dir,
        env: {
          ...process.env,
          ANSIBLE_HOME: join(dir, 'home'),
          ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'),
          // What site.yml gets from its neighbour directory; this playbook lives elsewhere.
          ANSIBLE_TEST_PLUGINS: join(INFRA, 'test_plugins'),
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
        },
        timeout: 120_000,
      });
      const out = JSON.parse(await readFile(join(dir, 'out.json'), 'utf8')) as Record<string, [boolean, boolean]>;
      expect(out).toEqual({
        was_inactive: [false, false],
        was_failed: [false, false],
        was_active: [true, true],
        was_activating: [true, true],
        no_active_state: [true, true],
        status_null: [true, true],
        skipped: [true, true],
        undefined: [true, true],
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("every restart/reload handler of the roles is guarded by it, on its role's registered start result", async () => {
    const guarded: string[] = [];
    for (const role of ['app', 'director', 'jaeger', 'realserver_proxy', 'redis']) {
      const handlers = parse(await readFile(join(ROLES, role, 'handlers/main.yml'), 'utf8')) as Record<string, unknown>[];
      const tasksText = (
        await Promise.all((await readdir(join(ROLES, role, 'tasks'))).map((f) => readFile(join(ROLES, role, 'tasks', f), 'utf8')))
      ).join('\n');
      for (const h of handlers) {
        const systemd = h['ansible.builtin.systemd'] as { state?: string } | undefined;
        if (!systemd || !['restarted', 'reloaded'].includes(systemd.state ?? '')) continue;
        const when = String(h.when ?? '');
        const registered = /(\w+) is not tiergate_started_from_stopped/.exec(when)?.[1];
        expect(registered, `${role}: ${h.name}: when: ${when}`).toBeDefined();
        // The result is the role's own start task's.
        expect(tasksText, `${role}: ${registered}`).toMatch(new RegExp(`register: ${registered}\\n`));
        guarded.push(`${role}: ${h.name}`);
      }
      // The expression is said once, in the plugin.
      expect(await readFile(join(ROLES, role, 'handlers/main.yml'), 'utf8')).not.toContain('ActiveState');
    }
    expect(guarded.length).toBe(9);
  });
});
