import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TgError } from '@tiergate/errors';
import { Redis } from 'ioredis';
import { freePort } from './free-port.ts';

/** Debian's redis-server (apt package `redis-server`); Sentinel is the same binary with `--sentinel`. */
export const REDIS_SERVER_BINARY = '/usr/bin/redis-server';

export interface StartRedisOptions {
  /** Path of the redis-server binary (default: Debian's). */
  binary?: string;
  /** Port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Extra command-line arguments, e.g. `['--replicaof', '127.0.0.1', '6379']`. */
  args?: string[];
  /** When set, start a Sentinel with this configuration text (written to a file Sentinel may rewrite). */
  sentinelConfig?: string;
  /** How long to wait for PING to answer (default 10 s). */
  startTimeoutMs?: number;
}

/** A real redis-server child process on 127.0.0.1, disposable with `await using`. */
export interface RedisServer extends AsyncDisposable {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** PID of the running process, undefined while stopped. */
  readonly pid: number | undefined;
  /** Its temporary working directory (removed on dispose). */
  readonly dir: string;
  /** Stops the server (SIGTERM, SIGKILL after 5 s); data is gone as nothing is persisted. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL (a crash, as seen by clients and Sentinel). */
  kill(): Promise<void>;
  /** Starts the server again on the same port after stop() or kill(): the "Redis is back" half of an outage. */
  restart(): Promise<void>;
  /** A new ioredis client to this server (caller disconnects it). */
  client(): Redis;
}

// Children are not detached, but they would outlive a crashed test worker: kill them on exit.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Starts a real redis-server on 127.0.0.1 with persistence off (`--save '' --appendonly no`) in a
 * temporary directory and resolves once PING answers. A missing binary is a TgError
 * TG_STACK_MISSING_BINARY, never a silent skip.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = options.binary ?? REDIS_SERVER_BINARY;
  if (!existsSync(binary)) {
    throw new TgError('TG_STACK_MISSING_BINARY', `redis-server not found at ${binary}: install the Debian package redis-server`);
  }
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort('127.0.0.1'));
    try {
      return await startOnPort(binary, options, port);
    } catch (err) {
      // Another process may take the free port before redis-server binds it: pick another.
      const taken = err instanceof Error && err.message.includes('Address already in use');
      if (!taken || options.port !== undefined || attempt >= 3) throw err;
    }
  }
}

async function startOnPort(binary: string, options: StartRedisOptions, port: number): Promise<RedisServer> {
  const host = '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'tg-redis-'));
  const args = await commandLine(options, dir, host, port);
  const timeoutMs = options.startTimeoutMs ?? 10_000;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const spawned = spawnRedis(binary, args);
    child = spawned.child;
    await waitForPing(spawned, host, port, timeoutMs);
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = undefined;
    if (running) await terminate(running, signal);
  };

  try {
    await launch();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    dir,
    get pid() {
      return child?.pid;
    },
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    client: () => new Redis({ host, port, lazyConnect: false, maxRetriesPerRequest: 1 }),
    [Symbol.asyncDispose]: async () => {
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function commandLine(options: StartRedisOptions, dir: string, host: string, port: number): Promise<string[]> {
  const common = ['--port', String(port), '--bind', host, '--dir', dir];
  if (options.sentinelConfig !== undefined) {
    const file = join(dir, 'sentinel.conf');
    await writeFile(file, options.sentinelConfig);
    return [file, '--sentinel', ...common, ...(options.args ?? [])];
  }
  return [...common, '--save', '', '--appendonly', 'no', ...(options.args ?? [])];
}

interface Spawned {
  child: ChildProcess;
  /** The tail of its stdout and stderr, for start-failure messages. */
  log(): string;
  spawnError(): Error | undefined;
  /** Settles once the process exited and its output streams closed (so log() is complete). */
  closed: Promise<void>;
}

function spawnRedis(binary: string, args: string[]): Spawned {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let log = '';
  let spawnError: Error | undefined;
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('error', (err) => {
    spawnError = err;
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { child, log: () => log, spawnError: () => spawnError, closed };
}

/** Logged once a server (or a Sentinel) listens; both come after the listening socket is bound. */
const READY_LOG = /Ready to accept connections|Sentinel ID is/;

async function waitForPing(spawned: Spawned, host: string, port: number, timeoutMs: number): Promise<void> {
  const { child } = spawned;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (spawned.spawnError() || child.exitCode !== null || child.signalCode !== null) {
      await Promise.race([spawned.closed, sleep(1_000)]);
      throw new TgError('TG_STACK_START_FAILED', `redis-server on port ${port} exited during start:\n${spawned.log()}`, {
        cause: spawned.spawnError(),
      });
    }
    // The log line proves that *our* child listens: a PING alone could be answered by another
    // server that already holds the port while our child is about to exit with EADDRINUSE.
    if (READY_LOG.test(spawned.log()) && (await pingOnce(host, port))) return;
    await sleep(25);
  }
  await terminate(child, 'SIGKILL');
  throw new TgError('TG_STACK_START_FAILED', `redis-server on port ${port} did not answer PING within ${timeoutMs} ms:\n${spawned.log()}`);
}

/**
 * One inline PING over a plain socket. Not ioredis: its handshake (HELLO) fails before PING on a
 * server whose default user is off, and any reply but LOADING (PONG, NOAUTH) means the server is up.
 */
function pingOnce(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let reply = '';
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || (reply.startsWith('-') && !reply.startsWith('-LOADING')));
    });
  });
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
