import { describe, expect, it } from 'vitest';
import { bytesAttr, encodeAttrs, encodeGenlMessage, NetlinkErrnoError, NetlinkSocket, parseGenl, u32Attr } from '../src/index.ts';

// These run against this machine's real kernel through nlctrl, which every Linux kernel has.

function getFamilyRequest(attrs: Buffer, flags = 0x5) {
  return (seq: number) => encodeGenlMessage({ family: 0x10, flags, seq }, { cmd: 3, version: 1 }, attrs);
}

function errnoOf(fn: () => unknown): NetlinkErrnoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof NetlinkErrnoError) return err;
    throw err;
  }
  throw new Error('expected a NetlinkErrnoError');
}

describe('NetlinkSocket against the real kernel', () => {
  it('binds to a kernel-assigned port id and resolves the nlctrl family (reply, then ACK)', () => {
    using sock = NetlinkSocket.open();
    expect(sock.portId).toBeGreaterThan(0);
    expect(sock.resolveFamily('nlctrl')).toMatchObject({ id: 0x10, name: 'nlctrl', hdrSize: 0 });
  });

  it('collects a multi-message dump until NLMSG_DONE', async () => {
    using sock = NetlinkSocket.open();
    const msgs = await sock.request(getFamilyRequest(Buffer.alloc(0), 0x301), { dump: true });
    const names = msgs.map((m) => parseGenl(m).attrs.string(2));
    expect(names.length).toBeGreaterThan(1);
    expect(names).toContain('nlctrl');
  });

  it('reports ENOENT for an unregistered family (how a kernel without ip_vs answers for IPVS)', () => {
    using sock = NetlinkSocket.open();
    expect(errnoOf(() => sock.resolveFamily('tg-no-family')).errno).toBe(2);
  });

  it('surfaces the kernel extended-ack text and offset on a policy violation', () => {
    using sock = NetlinkSocket.open();
    // FAMILY_NAME without its NUL terminator violates the NLA_NUL_STRING policy.
    const err = errnoOf(() => sock.requestSync(getFamilyRequest(encodeAttrs([bytesAttr(2, Buffer.from('IPVS'))])), { dump: false }));
    expect(err.errno).toBe(22);
    expect(err.extAckMessage).toMatch(/policy/i);
    expect(err.extAckOffset).toBe(20);
  });

  it('keeps working after an error (stale replies are skipped by sequence number)', () => {
    using sock = NetlinkSocket.open();
    errnoOf(() => sock.requestSync(getFamilyRequest(encodeAttrs([u32Attr(1, 0x7777)])), { dump: false }));
    expect(sock.resolveFamily('nlctrl').id).toBe(0x10);
  });

  it('refuses requests after close', () => {
    const sock = NetlinkSocket.open();
    sock.close();
    expect(errnoOf(() => sock.resolveFamily('nlctrl')).message).toMatch(/closed/);
  });
});
