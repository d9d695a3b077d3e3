// `tiergate director wait`: its options are in commands/director.ts. It imports only the config package and the
// director's status reading (@tiergate/director/routed), not the daemon, IPVS drivers, metrics or telemetry
// (director-file.ts says why).
import { duration, loadConfigFile } from '@tiergate/config';
import { type DirectorStatus, isSettled, routesOf } from '@tiergate/director/routed';
import { TgError } from '@tiergate/errors';
import { adminOf, type CommonOpts, pickDirector } from './director-file.ts';

export type WaitOpts = CommonOpts & { server: string; timeout: string; json?: boolean };

/** How often `director wait` asks the daemon (its checks run every `interval`, 2 s in the classic file). */
const WAIT_POLL_MS = 500;

/**
 * `director wait`: asks the running daemon (GET /status) until every configured virtual service that lists the
 * real server routes new connections to it (in the table, weight above 0, not failing its check), or holds it
 * drained by hand, or --timeout passes (TG_DIRECTOR_WAIT_TIMEOUT, naming where each service still has it).
 * The other half of the L4-aware restart: a proxy leaving waits for the directors to quiesce it (drain_delay);
 * the rollout waits with this for them to route to it again before it stops the next node, so two nodes are
 * never out at once. A daemon that does not answer (restarting) is asked again until the timeout.
 */
export async function waitCommand(opts: WaitOpts): Promise<void> {
  const config = await loadConfigFile(opts.config);
  const director = pickDirector(config, opts.name);
  const timeout = duration.safeParse(opts.timeout);
  if (!timeout.success) throw new TgError('TG_CLI_USAGE', `--timeout: ${timeout.error.issues[0]?.message}`);
  // A server that is no address, or that no service lists, is refused before the daemon is asked (at once, not after
  // the timeout, and whether or not the daemon runs).
  routesOf(config.virtual_services, { director: director.name, cycles: 0, lastCycle: null, services: [] }, opts.server);
  const { url, headers } = adminOf(director);
  const started = Date.now();
  let last = '';
  for (;;) {
    const status = await fetch(`${url}/status`, { headers, signal: AbortSignal.timeout(2_000) }).then(
      async (res) =>
        res.ok ? ((await res.json()) as DirectorStatus) : `the daemon at ${url} answered HTTP ${res.status}: ${await res.text()}`,
      (err: unknown) => `no director daemon answers at ${url} (is \`tiergate director run\` running?): ${(err as Error).message}`,
    );
    if (typeof status === 'string') last = status.trim();
    else {
      const routes = routesOf(config.virtual_services, status, opts.server);
      const waitedMs = Date.now() - started;
      if (routes.every(isSettled)) {
        if (opts.json) process.stdout.write(`${JSON.stringify({ director: director.name, waitedMs, routes }, null, 2)}\n`);
        else
          for (const r of routes)
            process.stdout.write(
              `${r.state}: ${r.service} -> ${r.server}${r.weight ? ` (weight ${r.weight})` : ''} after ${(waitedMs / 1000).toFixed(1)} s\n`,
            );
        return;
      }
      last = routes
        .filter((r) => !isSettled(r))
        .map((r) => `${r.service} -> ${r.server}: ${r.state}`)
        .join('; ');
    }
    if (Date.now() - started + WAIT_POLL_MS > timeout.data)
      throw new TgError('TG_DIRECTOR_WAIT_TIMEOUT', `director ${director.name}, after ${opts.timeout}: ${last}`);
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
}
