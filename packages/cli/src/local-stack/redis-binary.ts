import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TgError } from '@tiergate/errors';

/** Environment variable naming the redis-server binary; when set, nothing else is tried or installed. */
export const REDIS_SERVER_ENV = 'TG_REDIS_SERVER';

/** Debian's package and binary path (`apt-get install -y redis-server`). */
export const REDIS_PACKAGE = 'redis-server';
const DEBIAN_BINARY = '/usr/bin/redis-server';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `redis-server` on PATH or at Debian's path; undefined when absent. */
export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = [
    DEBIAN_BINARY,
    ...(env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, 'redis-server')),
  ];
  return candidates.find(executable);
}

/** What the host lets `up` do about a missing binary (a parameter so the decision is testable). */
export interface HostFacts {
  readonly isRoot: boolean;
  readonly isDebian: boolean;
  readonly hasAptGet: boolean;
}

export function hostFacts(): HostFacts {
  return {
    isRoot: process.getuid?.() === 0,
    isDebian: existsSync('/etc/debian_version'),
    hasAptGet: existsSync('/usr/bin/apt-get'),
  };
}

/** The message a user without the binary sees: what is missing and the one command that fixes it. */
export function missingRedisMessage(looked: string, facts: HostFacts): string {
  const sudo = facts.isRoot ? '' : 'sudo ';
  const install = facts.isDebian
    ? `${sudo}apt-get install -y ${REDIS_PACKAGE}`
    : 'install Redis with your package manager (Debian/Ubuntu: apt-get install -y redis-server)';
  return (
    `redis-server is not installed (looked for ${looked}); the local stack keeps its sessions in Redis.\n` +
    `  install it:   ${install}\n` +
    `  or point ${REDIS_SERVER_ENV} at a redis-server binary, or run \`tiergate up --store memory\` (no Redis; logins get lost)`
  );
}

/**
 * The redis-server to run. `TG_REDIS_SERVER` wins and is never "repaired" (a wrong path is the
 * user's explicit choice, reported as is). Otherwise PATH / Debian's path; when absent and this is
 * root on Debian with apt-get, it is installed after telling the user (`say`); else
 * TG_STACK_MISSING_BINARY with the install command.
 */
export async function resolveRedisServer(say: (line: string) => void, env = process.env, facts = hostFacts()): Promise<string> {
  const chosen = env[REDIS_SERVER_ENV];
  if (chosen !== undefined && chosen !== '') {
    if (executable(chosen)) return chosen;
    throw new TgError('TG_STACK_MISSING_BINARY', missingRedisMessage(`${chosen} from ${REDIS_SERVER_ENV}`, facts));
  }
  const found = findRedisServer(env);
  if (found) return found;
  if (!(facts.isRoot && facts.isDebian && facts.hasAptGet)) {
    throw new TgError('TG_STACK_MISSING_BINARY', missingRedisMessage(`${DEBIAN_BINARY} and PATH`, facts));
  }
  say(`redis-server is not installed: installing the Debian package now (apt-get install -y ${REDIS_PACKAGE})`);
  await aptInstall(REDIS_PACKAGE);
  const installed = findRedisServer(env);
  if (!installed) throw new TgError('TG_STACK_MISSING_BINARY', missingRedisMessage(`${DEBIAN_BINARY} after apt-get install`, facts));
  return installed;
}

function aptInstall(pkg: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // Output goes to stderr: stdout of `up` is the stack summary.
    const child = spawn('apt-get', ['install', '-y', pkg], {
      stdio: ['ignore', 2, 2],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.once('error', (err) => reject(new TgError('TG_STACK_MISSING_BINARY', `apt-get install -y ${pkg} could not run`, { cause: err })));
    child.once('exit', (code) =>
      code === 0
        ? resolve()
        : reject(new TgError('TG_STACK_MISSING_BINARY', `apt-get install -y ${pkg} failed (exit ${code}); install it yourself and retry`)),
    );
  });
}
