import { CommandChecker } from './command-checker.ts';
import { GrpcChecker } from './grpc-checker.ts';
import { HttpChecker } from './http-checker.ts';
import {
  type CheckerSpec,
  type CommandCheckSpec,
  type GrpcCheckSpec,
  type HttpCheckSpec,
  invalid,
  type SpecOf,
  type TcpCheckSpec,
} from './spec.ts';
import { TcpChecker } from './tcp-checker.ts';
import type { Checker } from './types.ts';

/** The registry: one factory per check kind. Adding a kind means a file, a spec type and a row here. */
export const CHECKERS: {
  readonly [K in CheckerSpec['kind']]: (spec: SpecOf<K>) => Checker;
} = Object.freeze({
  tcp: (_spec: TcpCheckSpec) => new TcpChecker(),
  http: (spec: HttpCheckSpec) => new HttpChecker(spec),
  https: (spec: HttpCheckSpec) => new HttpChecker(spec),
  command: (spec: CommandCheckSpec) => new CommandChecker(spec),
  grpc: (spec: GrpcCheckSpec) => new GrpcChecker(spec),
});

/**
 * Builds the checker a spec describes. An unknown kind or an invalid spec throws TG_CONFIG_INVALID
 * (never a silent skip): the config schema should have rejected it, so reaching here is a bug upstream.
 */
export function createChecker(spec: CheckerSpec): Checker {
  const factory = Object.hasOwn(CHECKERS, spec.kind) ? (CHECKERS[spec.kind] as (s: CheckerSpec) => Checker) : undefined;
  if (!factory) invalid(`health check kind '${String(spec.kind)}' is not one of ${Object.keys(CHECKERS).join(', ')}`);
  return factory(spec);
}
