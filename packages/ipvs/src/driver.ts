import type {
  IpvsDaemon,
  IpvsDaemonState,
  IpvsDestination,
  IpvsInfo,
  IpvsService,
  IpvsServiceEntry,
  IpvsServiceId,
  IpvsTimeouts,
} from './model.ts';
import type { IpvsOp, IpvsOpResult } from './ops.ts';

/** The identity of a destination within its service. */
export type IpvsDestinationId = Pick<IpvsDestination, 'address' | 'port' | 'family'>;

/**
 * The one extension point for talking to the kernel's IPVS: implementations are the netlink
 * client (netlink-driver.ts) and the ipvsadm binary (ipvsadm-driver.ts); see registry.ts.
 * Every method acts on the network namespace the process runs in. Failures are TgErrors with
 * TG_IPVS_* (netlink) or TG_IPVSADM_FAILED (ipvsadm) codes whose message names the op and object.
 */
export interface IpvsDriver extends AsyncDisposable {
  /** Registry name (`netlink`, `ipvsadm`). */
  readonly name: string;
  /** Every service with its destinations, stats and connection counters. */
  listServices(): Promise<IpvsServiceEntry[]>;
  /** One service, or undefined when the kernel has no such service. */
  getService(id: IpvsServiceId): Promise<IpvsService | undefined>;
  /** Fails with TG_IPVS_EXISTS when present; TG_IPVS_NOT_FOUND for an unknown scheduler. */
  addService(svc: IpvsService): Promise<void>;
  /** Replaces every setting of the service selected by the identity; TG_IPVS_NO_SERVICE when absent. */
  updateService(svc: IpvsService): Promise<void>;
  /** Deletes the service and its destinations; TG_IPVS_NO_SERVICE when absent. */
  deleteService(id: IpvsServiceId): Promise<void>;
  /** The destinations of a service; TG_IPVS_NO_SERVICE (both drivers) when the service is absent, not an empty list. */
  listDestinations(id: IpvsServiceId): Promise<IpvsDestination[]>;
  addDestination(id: IpvsServiceId, dest: IpvsDestination): Promise<void>;
  updateDestination(id: IpvsServiceId, dest: IpvsDestination): Promise<void>;
  deleteDestination(id: IpvsServiceId, dest: IpvsDestinationId): Promise<void>;
  /**
   * Executes ops in order and answers for each: applied, or the error its own method would throw. Every op is
   * attempted, whatever the ones before it answered (an add-destination after its service's failed add fails
   * too): a caller whose later ops depend on earlier ones batches only up to that dependency. The netlink driver
   * packs them into a few netlink datagrams; the ipvsadm driver runs them one at a time (applyIpvsOpsInTurn).
   */
  applyBatch(ops: readonly IpvsOp[]): Promise<IpvsOpResult[]>;
  getTimeouts(): Promise<IpvsTimeouts>;
  /** A 0 or missing value keeps the current timeout. */
  setTimeouts(timeouts: Partial<IpvsTimeouts>): Promise<void>;
  startDaemon(daemon: IpvsDaemon): Promise<void>;
  stopDaemon(state: IpvsDaemonState): Promise<void>;
  listDaemons(): Promise<IpvsDaemon[]>;
  /** Resets counters of one service, or of all services when `id` is omitted. */
  zero(id?: IpvsServiceId): Promise<void>;
  /** Deletes every service and destination in this network namespace. */
  flush(): Promise<void>;
  info(): Promise<IpvsInfo>;
  close(): Promise<void>;
}
