import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isTgError, TgError } from '@tiergate/errors';
import type { IpvsDestinationId, IpvsDriver } from './driver.ts';
import { ipvsErrnoError } from './errors.ts';
import {
  describeService,
  destKey,
  type IpvsDaemon,
  type IpvsDaemonState,
  type IpvsDestination,
  type IpvsInfo,
  type IpvsService,
  type IpvsServiceEntry,
  type IpvsServiceId,
  type IpvsTimeouts,
} from './model.ts';
import { ERRNO, IPVS_CMD_ATTR, IPVS_GENL_NAME } from './netlink/constants.ts';
import { decodeDaemon, decodeDestination, decodeInfo, decodeService, decodeTimeouts } from './netlink/ipvs-decode.ts';
import { encodeIpvsRequest, type IpvsRequest, ipvsRequests } from './netlink/ipvs-encode.ts';
import { type GenlBody, parseGenl } from './netlink/message.ts';
import { NetlinkErrnoError, NetlinkSocket } from './netlink-socket.ts';

const execFileAsync = promisify(execFile);

export interface NetlinkIpvsDriverOptions {
  /** Per-request bound on waiting for the kernel (default 5000 ms). */
  timeoutMs?: number;
  /** Run `modprobe ip_vs` once when the family is missing (default true), as kube-proxy and moby do. */
  modprobe?: boolean;
}

/** Loads ip_vs; failure is expected where the kernel has no module, and reported through the retry. */
async function modprobeIpvs(): Promise<string> {
  try {
    await execFileAsync('modprobe', ['ip_vs'], { timeout: 10_000 });
    return '';
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    return (e.stderr || e.message || String(err)).trim();
  }
}

function toIpvsError(err: unknown, op: string, object?: string): unknown {
  if (err instanceof NetlinkErrnoError) return ipvsErrnoError({ op, object }, err.errno, err, err.extAckMessage);
  return err;
}

/** Opens the socket and resolves the IPVS family, loading the module once if it is missing. */
async function resolveIpvsFamily(socket: NetlinkSocket, options: NetlinkIpvsDriverOptions): Promise<number> {
  const lookup = () => socket.resolveFamily(IPVS_GENL_NAME, options.timeoutMs).id;
  try {
    return lookup();
  } catch (err) {
    if (!(err instanceof NetlinkErrnoError) || err.errno !== ERRNO.ENOENT)
      throw toIpvsError(err, 'resolve generic netlink family', IPVS_GENL_NAME);
  }
  const modprobe = options.modprobe === false ? 'modprobe disabled' : await modprobeIpvs();
  try {
    return lookup();
  } catch (err) {
    if (!(err instanceof NetlinkErrnoError) || err.errno !== ERRNO.ENOENT)
      throw toIpvsError(err, 'resolve generic netlink family', IPVS_GENL_NAME);
    throw new TgError(
      'TG_IPVS_NOT_LOADED',
      `the kernel has no IPVS: generic netlink family 'IPVS' is not registered and loading the ip_vs module failed${modprobe ? ` (${modprobe})` : ''}`,
      { cause: err, details: { modprobe } },
    );
  }
}

/**
 * IpvsDriver over generic netlink (the way keepalived, moby/ipvs and kube-proxy talk to IPVS).
 * Acts on the network namespace the process was in when `open()` ran. The family id is resolved
 * once; if ip_vs is unloaded and reloaded, reopen the driver.
 */
export class NetlinkIpvsDriver implements IpvsDriver {
  readonly name = 'netlink';
  readonly #socket: NetlinkSocket;
  readonly #familyId: number;
  readonly #timeoutMs: number | undefined;

  private constructor(socket: NetlinkSocket, familyId: number, timeoutMs: number | undefined) {
    this.#socket = socket;
    this.#familyId = familyId;
    this.#timeoutMs = timeoutMs;
  }

  /** Fails with TG_IPVS_NOT_LOADED when the kernel has no IPVS even after `modprobe ip_vs`. */
  static async open(options: NetlinkIpvsDriverOptions = {}): Promise<NetlinkIpvsDriver> {
    let socket: NetlinkSocket;
    try {
      socket = NetlinkSocket.open();
    } catch (err) {
      throw toIpvsError(err, 'open netlink socket');
    }
    try {
      return new NetlinkIpvsDriver(socket, await resolveIpvsFamily(socket, options), options.timeoutMs);
    } catch (err) {
      socket.close();
      throw err;
    }
  }

  /** The dynamic generic-netlink id the kernel gave the IPVS family. */
  get familyId(): number {
    return this.#familyId;
  }

  /** `object` names what the request is about in errors; a function, so the hot path of success builds no text. */
  async #run(req: IpvsRequest, op: string, object?: () => string): Promise<GenlBody[]> {
    try {
      const msgs = await this.#socket.request((seq) => encodeIpvsRequest(this.#familyId, seq, req), {
        dump: req.dump,
        timeoutMs: this.#timeoutMs,
      });
      return msgs.map(parseGenl);
    } catch (err) {
      if (isTgError(err)) throw err;
      throw toIpvsError(err, op, object?.());
    }
  }

  async listServices(): Promise<IpvsServiceEntry[]> {
    const bodies = await this.#run(ipvsRequests.dumpServices(), 'list services');
    const out: IpvsServiceEntry[] = [];
    for (const body of bodies) {
      const service = decodeService(nest(body, IPVS_CMD_ATTR.SERVICE));
      out.push({ service, destinations: await this.#dumpDestinations(service) });
    }
    return out;
  }

  async getService(id: IpvsServiceId): Promise<IpvsService | undefined> {
    try {
      const [body] = await this.#run(ipvsRequests.getService(id), 'get service', () => describeService(id));
      return body === undefined ? undefined : decodeService(nest(body, IPVS_CMD_ATTR.SERVICE));
    } catch (err) {
      if (isTgError(err, 'TG_IPVS_NO_SERVICE')) return undefined;
      throw err;
    }
  }

  async addService(svc: IpvsService): Promise<void> {
    await this.#run(ipvsRequests.newService(svc), 'add service', () => describeService(svc));
  }

  async updateService(svc: IpvsService): Promise<void> {
    await this.#run(ipvsRequests.setService(svc), 'update service', () => describeService(svc));
  }

  async deleteService(id: IpvsServiceId): Promise<void> {
    await this.#run(ipvsRequests.delService(id), 'delete service', () => describeService(id));
  }

  async listDestinations(id: IpvsServiceId): Promise<IpvsDestination[]> {
    // GET_DEST of a missing service is an empty dump, not an error (reference §2.1): check first.
    const svc = await this.getService(id);
    if (svc === undefined) throw ipvsErrnoError({ op: 'list destinations of', object: describeService(id) }, ERRNO.ESRCH, undefined);
    return this.#dumpDestinations(svc);
  }

  async #dumpDestinations(svc: IpvsService): Promise<IpvsDestination[]> {
    const bodies = await this.#run(ipvsRequests.dumpDests(svc), 'list destinations of', () => describeService(svc));
    return bodies.map((b) => decodeDestination(nest(b, IPVS_CMD_ATTR.DEST), svc.family));
  }

  async addDestination(id: IpvsServiceId, dest: IpvsDestination): Promise<void> {
    await this.#run(ipvsRequests.newDest(id, dest), 'add destination', () => destObject(id, dest));
  }

  async updateDestination(id: IpvsServiceId, dest: IpvsDestination): Promise<void> {
    await this.#run(ipvsRequests.setDest(id, dest), 'update destination', () => destObject(id, dest));
  }

  async deleteDestination(id: IpvsServiceId, dest: IpvsDestinationId): Promise<void> {
    await this.#run(ipvsRequests.delDest(id, dest), 'delete destination', () => destObject(id, dest, 'from'));
  }

  async getTimeouts(): Promise<IpvsTimeouts> {
    const [body] = await this.#run(ipvsRequests.getConfig(), 'get timeouts');
    return decodeTimeouts(need(body, 'GET_CONFIG').attrs);
  }

  async setTimeouts(timeouts: Partial<IpvsTimeouts>): Promise<void> {
    await this.#run(ipvsRequests.setConfig(timeouts), 'set timeouts');
  }

  async startDaemon(daemon: IpvsDaemon): Promise<void> {
    await this.#run(
      ipvsRequests.newDaemon(daemon),
      'start sync daemon',
      () => `${daemon.state} on ${daemon.interface} syncid ${daemon.syncId}`,
    );
  }

  async stopDaemon(state: IpvsDaemonState): Promise<void> {
    await this.#run(ipvsRequests.delDaemon(state), 'stop sync daemon', () => state);
  }

  async listDaemons(): Promise<IpvsDaemon[]> {
    const bodies = await this.#run(ipvsRequests.dumpDaemons(), 'list sync daemons');
    return bodies.map((b) => decodeDaemon(nest(b, IPVS_CMD_ATTR.DAEMON)));
  }

  async zero(id?: IpvsServiceId): Promise<void> {
    await this.#run(ipvsRequests.zero(id), 'zero counters of', () => (id === undefined ? 'all services' : describeService(id)));
  }

  async flush(): Promise<void> {
    await this.#run(ipvsRequests.flush(), 'flush all services');
  }

  async info(): Promise<IpvsInfo> {
    const [body] = await this.#run(ipvsRequests.getInfo(), 'get IPVS info');
    return decodeInfo(need(body, 'GET_INFO').attrs);
  }

  async close(): Promise<void> {
    this.#socket.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function destObject(id: IpvsServiceId, dest: IpvsDestinationId, preposition = 'to'): string {
  return `${destKey(dest)} ${preposition} ${describeService(id)}`;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new TgError('TG_IPVS_PROTOCOL', `the kernel sent no reply to ${what}`);
  return value;
}

function nest(body: GenlBody, type: number) {
  return need(body.attrs.nested(type), `a message without its nest ${type}`);
}
