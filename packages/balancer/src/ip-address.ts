/**
 * Parses a textual IP address into bytes for ip_hash, without allocating on the common path.
 * Hand-written because Node exposes no inet_pton returning bytes (node:net only validates and
 * formats strings); it accepts what the proxy produces: dotted IPv4, RFC 4291 IPv6 text (with
 * `::`, an embedded IPv4 tail, an optional `%zone`), and IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
 */

/**
 * Writes the address into `out` (16 bytes) and returns its length: 4 for IPv4 (IPv4-mapped IPv6
 * included: nginx listens with ipv6only=on, so such clients reach it over AF_INET), 16 for IPv6,
 * 0 when `addr` is not an IP address.
 */
export function parseIpInto(addr: string, out: Uint8Array): 0 | 4 | 16 {
  if (addr.indexOf(':') < 0) return parseIpv4(addr, 0, addr.length, out, 0) ? 4 : 0;
  if (!parseIpv6(addr, out)) return 0;
  if (isV4Mapped(out)) {
    out.copyWithin(0, 12, 16);
    return 4;
  }
  return 16;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let k = 0; k < 10; k++) if (b[k] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function parseIpv4(s: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let digits = 0;
  let octet = 0;
  for (let p = start; p <= end; p++) {
    const c = p < end ? s.charCodeAt(p) : 46; // a virtual '.' terminates the last octet
    if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else if (c === 46 && digits > 0 && part < 4) {
      out[at + part++] = octet;
      octet = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return part === 4;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const groups = new Uint16Array(8);

function parseIpv6(s: string, out: Uint8Array): boolean {
  let end = s.indexOf('%');
  if (end < 0) end = s.length;
  let count = 0;
  let gap = -1;
  let p = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    p = 2;
  }
  while (p < end) {
    const start = p;
    let value = 0;
    while (p < end && p - start < 5) {
      const h = hexValue(s.charCodeAt(p));
      if (h < 0) break;
      value = value * 16 + h;
      p++;
    }
    if (p < end && s.charCodeAt(p) === 46) {
      // embedded IPv4 tail (RFC 4291 2.2 form 3): takes the last two groups
      if (count > 6 || !parseIpv4(s, start, end, out, 0)) return false;
      groups[count++] = (out[0]! << 8) | out[1]!;
      groups[count++] = (out[2]! << 8) | out[3]!;
      p = end;
      break;
    }
    if (p === start || p - start > 4 || count === 8) return false;
    groups[count++] = value;
    if (p === end) break;
    if (s.charCodeAt(p) !== 58) return false;
    p++;
    if (s.charCodeAt(p) === 58) {
      if (gap >= 0) return false;
      gap = count;
      p++;
    } else if (p === end) {
      return false;
    }
  }
  if (gap < 0 ? count !== 8 : count > 7) return false;
  const zeros = 8 - count;
  for (let g = 0, src = 0; g < 8; g++) {
    const v = gap >= 0 && g >= gap && g < gap + zeros ? 0 : groups[src++]!;
    out[g * 2] = v >> 8;
    out[g * 2 + 1] = v & 0xff;
  }
  return true;
}
