// A cluster worker (node:cluster forks worker-entry.js, which calls runWorker; see primary.ts): it serves requests
// on the listeners the primary shares and answers the primary's IPC requests. Importing this module starts nothing,
// so `tiergate warm-cache` can load it into Node's compile cache (compile-cache.ts).
import type { ProxySection } from '@tiergate/proxy';
import type { TelemetryHandle, TelemetrySettings } from '@tiergate/telemetry';
import type { Logger } from 'pino';
import { createLogger } from '../logger.ts';
import { startCommandTelemetry } from '../process-telemetry.ts';
import { FATAL_MARGIN_MS, fatalError } from './fatal.ts';
import type { FromWorker, ToWorker } from './ipc.ts';
import { type ProxyProcess, startProxyProcess, toWire } from './proxy-process.ts';

const slot = process.env.TIERGATE_WORKER ?? '?';
/** Set by runWorker (a logger opens nothing, but an import for the compile cache makes none). */
let log: Logger;
const send = (m: FromWorker) => {
  if (process.connected) process.send!(m);
};
let pp: ProxyProcess | undefined;
let telemetry: TelemetryHandle | undefined;
let stopping: Promise<void> | undefined;
/** The primary's session ticket keys by listener: kept from `start` on, so a rotation during startup is not lost. */
let ticketKeys: (Buffer | undefined)[] = [];
// The file's telemetry section, from the primary (run-proxy.ts TELEMETRY_ENV): tracing is per process.
const telemetrySettings = process.env.TIERGATE_TELEMETRY ? (JSON.parse(process.env.TIERGATE_TELEMETRY) as TelemetrySettings) : undefined;

/**
 * Drains, then exits: 0 when requested by the primary, a direct SIGTERM, or the primary going away; 1 after
 * an error nothing caught (fatal.ts), so the primary counts it as a crash and forks a replacement.
 */
function stop(reason: string, code = 0): Promise<void> {
  stopping ??= (async () => {
    log.info({ reason }, 'worker draining');
    await pp?.close();
    await telemetry?.shutdown(); // after the drain: flushes the spans of the last requests
    log.info('worker stopped');
    log.flush();
    process.exit(code);
  })();
  return stopping;
}

async function start(section: ProxySection, keys: readonly (string | null)[]): Promise<void> {
  ticketKeys = keys.map((k, i) => ticketKeys[i] ?? (k === null ? undefined : Buffer.from(k, 'base64')));
  try {
    if (telemetrySettings) telemetry = await startCommandTelemetry(telemetrySettings, 'proxy', log);
    pp = await startProxyProcess(section, {
      log,
      worker: slot,
      trustIncomingTraceContext: telemetrySettings?.tracing.trust_incoming,
      ticketKeys,
    });
    // After listen: node:cluster has just set the key the primary's handle stored from the first worker
    // (tls.Server _setServerData), stale once the primary rotated; and a rotation may have arrived meanwhile.
    for (const [i, k] of ticketKeys.entries()) if (k) pp.proxy.setTicketKeys(i, k);
    send({ t: 'ready', addresses: pp.proxy.addresses() });
  } catch (err) {
    send({ t: 'failed', error: toWire(err) });
    log.flush();
    process.exit(1);
  }
}

async function onMessage(m: ToWorker): Promise<void> {
  switch (m.t) {
    case 'start':
      return start(m.section, m.ticketKeys);
    case 'ticketKeys': {
      const keys = Buffer.from(m.keys, 'base64');
      ticketKeys[m.index] = keys;
      pp?.proxy.setTicketKeys(m.index, keys);
      return;
    }
    case 'reload':
      try {
        await pp!.reload(m.section);
        send({ t: 'reloaded', id: m.id });
      } catch (err) {
        send({ t: 'reloaded', id: m.id, error: toWire(err) });
      }
      return;
    case 'snapshot': {
      if (!pp) return;
      const s = await pp.snapshot();
      send({ t: 'snapshot', id: m.id, snapshot: s.snapshot, metrics: s.metrics });
      return;
    }
    case 'ping':
      send({ t: 'pong', id: m.id });
      return;
    case 'health':
      pp?.proxy.failHealthCheck(m.failing);
      send({ t: 'healthSet', id: m.id });
      return;
    case 'shutdown':
      return stop('primary');
  }
}

/** Starts this process as a worker: signal handlers, the fatal-error drain, the primary's messages, then `hello`. */
export function runWorker(): void {
  log = createLogger(process.env.TIERGATE_LOG_LEVEL ?? 'info', 'tiergate-proxy').child({ worker: slot });
  // Reloads are the primary's job; a HUP sent to the whole process group must not kill a worker (default action).
  process.on('SIGHUP', () => {});
  // Ctrl-C reaches every process of the group: the primary orchestrates the drain.
  process.on('SIGINT', () => {});
  // systemd's default KillMode=control-group sends SIGTERM to every process of the unit at once: a worker that
  // closed its listeners then would cut the primary's drain delay short (the health check fails first, together on
  // every worker, and the node keeps serving: primary.ts). So while its primary lives, the primary decides; a worker
  // left alone drains on SIGTERM as before.
  process.on('SIGTERM', () => {
    if (!process.connected) void stop('SIGTERM');
  });
  process.on('disconnect', () => void stop('primary gone'));
  void fatalError(log, () => (pp?.section().shutdown_timeout ?? 30_000) + FATAL_MARGIN_MS).then((kind) => stop(kind, 1));
  process.on('message', (m: ToWorker) => {
    onMessage(m).catch((err: unknown) => log.error({ error: toWire(err) }, 'worker message failed'));
  });
  send({ t: 'hello' });
}
