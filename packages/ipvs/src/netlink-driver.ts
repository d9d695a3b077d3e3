import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isTgError, TgError } from '@tiergate/errors';
import type { IpvsDestinationId, IpvsDriver } from './driver.ts';
import { ipvsErrnoError, ipvsLostAckError } from './errors.ts';
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
import { ERRNO, IPVS_CMD_ATTR, IPVS_GENL_NAME, NETLINK_GENERIC } from './netlink/constants.ts';
import { decodeDaemon, decodeDestination, decodeInfo, decodeService, decodeTimeouts } from './netlink/ipvs-decode.ts';
import {
  encodeIpvsRequest,
  type IpvsCommand,
  type IpvsRequest,
  ipvsCommands,
  ipvsRequests,
  toIpvsRequest,
  writeIpvsMessage,
} from './netlink/ipvs-encode.ts';
import { type GenlBody, parseGenl } from './netlink/message.ts';
import { NlWriter } from './netlink/writer.ts';
import { type NetlinkAck, NetlinkErrnoError, NetlinkSocket } from './netlink-socket.ts';
import type { IpvsOp, IpvsOpResult } from './ops.ts';

const execFileAsync = promisify(execFile);

export interface NetlinkIpvsDriverOptions {
  /** Per-request bound on waiting for the kernel (default 5000 ms). */
  timeoutMs?: number;
  /** Run `modprobe ip_vs` once when the family is missing (default true), as kube-proxy and moby do. */
  modprobe?: boolean;
  /**
   * At most this many ops per netlink datagram in applyBatch(); default as many as the socket's receive buffer
   * holds ACKs of, up to 256. 1 sends every op on its own.
   */
  batchMessages?: number;
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
  const lookup = async () => (await socket.resolveFamily(IPVS_GENL_NAME, options.timeoutMs)).id;
  try {
    return await lookup();
  } catch (err) {
    if (!(err instanceof NetlinkErrnoError) || err.errno !== ERRNO.ENOENT)
      throw toIpvsError(err, 'resolve generic netlink family', IPVS_GENL_NAME);
  }
  const modprobe = options.modprobe === false ? 'modprobe disabled' : await modprobeIpvs();
  try {
    return await lookup();
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
      socket = NetlinkSocket.open(NETLINK_GENERIC, { batchMessages: options.batchMessages });
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

  /** One write op as a request on its own (the single-op methods). */
  async #write(op: IpvsOp): Promise<void> {
    const w = writeRequest(op);
    await this.#run(toIpvsRequest(w.command), w.op, w.object);
  }

  async addService(service: IpvsService): Promise<void> {
    await this.#write({ kind: 'add-service', service });
  }

  async updateService(service: IpvsService): Promise<void> {
    await this.#write({ kind: 'update-service', service });
  }

  async deleteService(service: IpvsServiceId): Promise<void> {
    await this.#write({ kind: 'delete-service', service });
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

  async addDestination(service: IpvsServiceId, destination: IpvsDestination): Promise<void> {
    await this.#write({ kind: 'add-destination', service, destination });
  }

  async updateDestination(service: IpvsServiceId, destination: IpvsDestination): Promise<void> {
    await this.#write({ kind: 'update-destination', service, destination });
  }

  async deleteDestination(service: IpvsServiceId, destination: IpvsDestinationId): Promise<void> {
    await this.#write({ kind: 'delete-destination', service, destination });
  }

  /**
   * The ops as do-requests packed into as few netlink datagrams as the socket's buffers allow (one sendto()
   * for up to 256 ops instead of one each), each answered by its own ACK: the same result per op as its
   * single-op method. An op that cannot be encoded fails alone and is not sent.
   */
  async applyBatch(ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    const results = new Array<IpvsOpResult>(ops.length);
    // Every message straight into one buffer (~140 bytes per destination op), then a view of each.
    const w = new NlWriter(ops.length * 160);
    const sent: { index: number; write: WriteRequest; start: number; end: number }[] = [];
    for (const [index, op] of ops.entries()) {
      const start = w.length;
      try {
        const write = writeRequest(op);
        writeIpvsMessage(w, this.#familyId, 0, write.command);
        sent.push({ index, write, start, end: w.length });
      } catch (error) {
        results[index] = { ok: false, error };
      }
    }
    const acks = await this.#socket.requestBatch(
      sent.map((m) => w.subarray(m.start, m.end)),
      this.#timeoutMs,
    );
    for (const [i, { index, write }] of sent.entries()) results[index] = resultOf(acks[i] as NetlinkAck, write);
    return results;
  }

  /** Syscalls and requests of the driver's netlink socket so far (what batching saved). */
  get socketStats() {
    return this.#socket.stats;
  }

  async getTimeouts(): Promise<IpvsTimeouts> {
    const [body] = await this.#run(ipvsRequests.getConfig(), 'get timeouts');
    return decodeTimeouts(need(body, 'GET_CONFIG').attrs);
  }

  async setTimeouts(timeouts: Partial<IpvsTimeouts>): Promise<void> {
    await this.#write({ kind: 'set-timeouts', timeouts });
  }

  async startDaemon(daemon: IpvsDaemon): Promise<void> {
    await this.#write({ kind: 'start-daemon', daemon });
  }

  async stopDaemon(state: IpvsDaemonState): Promise<void> {
    await this.#write({ kind: 'stop-daemon', state });
  }

  async listDaemons(): Promise<IpvsDaemon[]> {
    const bodies = await this.#run(ipvsRequests.dumpDaemons(), 'list sync daemons');
    return bodies.map((b) => decodeDaemon(nest(b, IPVS_CMD_ATTR.DAEMON)));
  }

  async zero(service?: IpvsServiceId): Promise<void> {
    await this.#write(service === undefined ? { kind: 'zero' } : { kind: 'zero', service });
  }

  async flush(): Promise<void> {
    await this.#write({ kind: 'flush' });
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

/** A write op as its IPVS command, with what its errors name: the op and (lazily: success builds no text) the object. */
interface WriteRequest {
  readonly command: IpvsCommand;
  readonly op: string;
  readonly object?: () => string;
}

/** The command of a write op; encoding it throws TG_IPVS_INVALID for a value the kernel cannot take. */
function writeRequest(op: IpvsOp): WriteRequest {
  switch (op.kind) {
    case 'add-service':
      return { command: ipvsCommands.newService(op.service), op: 'add service', object: () => describeService(op.service) };
    case 'update-service':
      return { command: ipvsCommands.setService(op.service), op: 'update service', object: () => describeService(op.service) };
    case 'delete-service':
      return { command: ipvsCommands.delService(op.service), op: 'delete service', object: () => describeService(op.service) };
    case 'add-destination':
      return {
        command: ipvsCommands.newDest(op.service, op.destination),
        op: 'add destination',
        object: () => destObject(op.service, op.destination),
      };
    case 'update-destination':
      return {
        command: ipvsCommands.setDest(op.service, op.destination),
        op: 'update destination',
        object: () => destObject(op.service, op.destination),
      };
    case 'delete-destination':
      return {
        command: ipvsCommands.delDest(op.service, op.destination),
        op: 'delete destination',
        object: () => destObject(op.service, op.destination, 'from'),
      };
    case 'set-timeouts':
      return { command: ipvsCommands.setConfig(op.timeouts), op: 'set timeouts' };
    case 'start-daemon': {
      const d = op.daemon;
      return {
        command: ipvsCommands.newDaemon(d),
        op: 'start sync daemon',
        object: () => `${d.state} on ${d.interface} syncid ${d.syncId}`,
      };
    }
    case 'stop-daemon':
      return { command: ipvsCommands.delDaemon(op.state), op: 'stop sync daemon', object: () => op.state };
    case 'zero': {
      const id = op.service;
      return {
        command: ipvsCommands.zero(id),
        op: 'zero counters of',
        object: () => (id === undefined ? 'all services' : describeService(id)),
      };
    }
    case 'flush':
      return { command: ipvsCommands.flush(), op: 'flush all services' };
  }
}

const APPLIED: IpvsOpResult = Object.freeze({ ok: true });

/** One op's ACK as its result: the same TgError its single-op method throws, or a lost-ACK error. */
function resultOf(ack: NetlinkAck, w: WriteRequest): IpvsOpResult {
  if (ack.errno === 0) return APPLIED;
  const ctx = { op: w.op, object: w.object?.() };
  if (ack.lost) return { ok: false, error: ipvsLostAckError(ctx, ack.errno) };
  const cause = new NetlinkErrnoError('netlink', ack.errno, `kernel answered errno ${ack.errno}`, {
    message: ack.extAckMessage,
    offset: ack.extAckOffset,
  });
  return { ok: false, error: ipvsErrnoError(ctx, ack.errno, cause, ack.extAckMessage) };
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
