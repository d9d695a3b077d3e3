// What every `tiergate director` subcommand reads from the file: which director this host is, and where its daemon's
// admin listener is. Kept apart from director.ts so that `director wait` (director-wait.ts) loads no more than the
// config package and the pure status reading: it runs on emulated director hosts between two restarts of a rollout,
// where every module loaded costs seconds.
import type { Config } from '@tiergate/config';
import { TgError } from '@tiergate/errors';

export type DirectorCfg = Config['directors'][number];

export interface CommonOpts {
  config: string;
  name?: string;
  stateFile?: string;
}

/** The director this host runs: `--name`, or the only one in the file. */
export function pickDirector(config: Config, name: string | undefined): DirectorCfg {
  const all = config.directors;
  const found = name === undefined ? (all.length === 1 ? all[0] : undefined) : all.find((d) => d.name === name);
  if (found) return found;
  const names = all.map((d) => d.name).join(', ') || 'none';
  const why =
    name === undefined
      ? all.length === 0
        ? 'the file has no directors entry'
        : 'the file has several directors: pass --name'
      : `no director named '${name}'`;
  throw new TgError('TG_CONFIG_INVALID', `${why} (directors: ${names})`);
}

/** The running daemon's admin URL and bearer token, from the file's director entry (a wildcard is reached on loopback). */
export function adminOf(director: DirectorCfg): { url: string; headers: Record<string, string> } {
  const a = director.admin.address === '0.0.0.0' ? '127.0.0.1' : director.admin.address === '::' ? '::1' : director.admin.address;
  const host = a.includes(':') ? `[${a}]` : a;
  const headers: Record<string, string> = director.admin.token ? { authorization: `Bearer ${director.admin.token}` } : {};
  return { url: `http://${host}:${director.admin.port}`, headers };
}
