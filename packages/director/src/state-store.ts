import { statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TgError } from '@tiergate/errors';
import type { HeldServer } from './manual-drain.ts';

/**
 * What the director remembers between cycles and restarts. `owned` is how tiergate tells its own services
 * from foreign ones in the same table: the service keys it has created, written *before* it creates them, so
 * a crash between the write and the kernel call can only over-claim a service that is then in config anyway.
 * `draining` holds when each removed real server started draining (ms since the epoch). `held`: the real servers
 * drained by hand (manual-drain.ts), so they stay at weight 0 (or removed) across a director restart; absent when
 * none is.
 */
export interface DirectorState {
  readonly owned: readonly string[];
  readonly draining: Readonly<Record<string, number>>;
  readonly held?: Readonly<Record<string, HeldServer>>;
}

/** Where the director keeps DirectorState. */
export interface StateStore {
  load(): Promise<DirectorState>;
  save(state: DirectorState): Promise<void>;
}

export const EMPTY_STATE: DirectorState = Object.freeze({ owned: [], draining: {} });

/**
 * The identity of the network namespace this process runs in (inode of /proc/self/ns/net). IPVS tables,
 * addresses and conf/* sysctls are per namespace, so state files are too; "0" where /proc is missing.
 */
export function netnsId(): string {
  try {
    return String(statSync('/proc/self/ns/net').ino);
  } catch {
    return '0';
  }
}

/**
 * The default state file: under /run (a tmpfs, emptied at boot exactly when the kernel's IPVS table is), one
 * per director name and network namespace.
 */
export function defaultStatePath(kind: 'director' | 'realserver', name: string, dir = '/run/tiergate'): string {
  return join(dir, `${kind}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-net${netnsId()}.json`);
}

/** Reads and atomically replaces (write + rename) a JSON file. A missing file is an empty state. */
export class JsonFile<T> {
  readonly path: string;
  readonly #empty: T;

  constructor(path: string, empty: T) {
    this.path = path;
    this.#empty = empty;
  }

  async load(): Promise<T> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.#empty;
      throw new TgError('TG_HOST_SETUP', `cannot read state file ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new TgError('TG_HOST_SETUP', `state file ${this.path} is not valid JSON; remove it to start over`, { cause: err });
    }
  }

  async save(value: T): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      const tmp = `${this.path}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
      await rename(tmp, this.path);
    } catch (err) {
      throw new TgError('TG_HOST_SETUP', `cannot write state file ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }
}

/** A StateStore in a JSON file (see defaultStatePath). */
export class FileStateStore extends JsonFile<DirectorState> implements StateStore {
  constructor(path: string) {
    super(path, EMPTY_STATE);
  }
}

/** A StateStore in memory (one-process lifetimes, tests). */
export class MemoryStateStore implements StateStore {
  #state: DirectorState = EMPTY_STATE;
  async load(): Promise<DirectorState> {
    return this.#state;
  }
  async save(state: DirectorState): Promise<void> {
    this.#state = structuredClone(state);
  }
}
