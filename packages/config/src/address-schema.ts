import { isIP } from 'node:net';
import { z } from 'zod';
import { parseCidr, splitHostPort } from './address.ts';

/** An IPv4 or IPv6 literal (no host names: L4 objects are kernel addresses). */
export const ipAddress = z.string().refine((v) => isIP(v) !== 0, { message: 'expected an IPv4 or IPv6 address' });

export const port = z.number().int().min(1).max(65535);

/** A CIDR block (`10.0.0.0/8`, `::1/128`) or a single address (taken as /32 or /128). */
export const cidr = z.string().refine((v) => parseCidr(v) !== undefined, { message: 'expected an address or CIDR block' });

/**
 * `host:port` of an upstream server. IPv6 in brackets (`[::1]:8080`), as nginx writes it.
 * Host names are allowed for L7 upstreams (resolved by undici at connect time).
 */
export const hostPort = z.string().refine((v) => splitHostPort(v) !== undefined, {
  message: 'expected host:port or [ipv6]:port',
});
