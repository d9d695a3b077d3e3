import { isIPv6 } from 'node:net';
import type { DeepReadonly, RouteConfig } from '@tiergate/config';
import { toBlockList } from '@tiergate/config/runtime';

type AccessRules = NonNullable<DeepReadonly<RouteConfig>['access']>;

/**
 * A route's `access` rules (nginx `allow` / `deny`), compiled: whether a client address may use the route. The
 * rules are checked in order and the first that matches decides; an address no rule matches is allowed, as in
 * nginx. `address` is the client address after `trusted_proxies` (nginx checks `$remote_addr` after realip).
 */
export function compileAccess(rules: AccessRules): (address: string) => boolean {
  const compiled = rules.map((r) => {
    const target = (r.allow ?? r.deny)!;
    return { allow: r.allow !== undefined, list: target === 'all' ? undefined : toBlockList([target]) };
  });
  return (address) => {
    const family = isIPv6(address) ? 'ipv6' : 'ipv4';
    for (const r of compiled) if (r.list === undefined || r.list.check(address, family)) return r.allow;
    return true;
  };
}
