import { describe, expect, it } from 'vitest';
import {
  bytesAttr,
  ERRNO,
  encodeAttrs,
  encodeGenlMessage,
  NETLINK_GENERIC,
  NetlinkErrnoError,
  NetlinkSocket,
  parseGenl,
  stringAttr,
  u32Attr,
} from '../src/index.ts';

// These run against this machine's real kernel through nlctrl, which every Linux kernel has.

function getFamilyRequest(attrs: Buffer, flags = 0x5) {
  return (seq: number) => encodeGenlMessage({ family: 0x10, flags, seq }, { cmd: 3, version: 1 }, attrs);
}

/** A GETFAMILY do-request for `name`, sequence number left for requestBatch() to write. */
const getFamily = (name: string) => getFamilyRequest(encodeAttrs([stringAttr(2, name)]))(0);

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

  it('sends a batch in one sendto() and maps each ACK back to its request, a failure in the middle included', async () => {
    using sock = NetlinkSocket.open();
    const before = sock.stats;
    const acks = await sock.requestBatch([getFamily('nlctrl'), getFamily('tg-no-family'), getFamily('nlctrl')]);
    // The kernel goes on after the failed request: the third is answered too (its reply is dropped, its ACK kept).
    expect(acks.map((a) => a.errno)).toEqual([0, ERRNO.ENOENT, 0]);
    expect(acks.some((a) => a.lost)).toBe(false);
    expect(sock.stats.sendCalls - before.sendCalls).toBe(1);
    expect(sock.stats.requests - before.requests).toBe(3);
    // The socket is usable for single requests afterwards (no ACK of the batch is left to confuse them).
    expect(sock.resolveFamily('nlctrl').id).toBe(0x10);
  });

  it('splits a batch larger than the default receive buffer holds ACKs of, and loses none', async () => {
    // 212,992 bytes is net.core.rmem_default: ~160 error ACKs fit, 3,000 would overrun it in one datagram.
    using sock = NetlinkSocket.open(NETLINK_GENERIC, { receiveBuffer: 212_992 });
    expect(sock.receiveBuffer).toBe(212_992);
    const { messages } = sock.batchLimits;
    expect(messages).toBeGreaterThan(100);
    expect(messages).toBeLessThan(300);
    const before = sock.stats;
    const acks = await sock.requestBatch(Array.from({ length: 3000 }, (_, i) => getFamily(`tg-no-${i}`)));
    expect(acks).toHaveLength(3000);
    expect(acks.filter((a) => a.errno === ERRNO.ENOENT && !a.lost)).toHaveLength(3000);
    expect(sock.stats.sendCalls - before.sendCalls).toBe(Math.ceil(3000 / messages));
  });

  it('asks for a receive buffer past net.core.rmem_max (SO_RCVBUFFORCE, as root); batches stay at 256 requests', () => {
    using sock = NetlinkSocket.open(NETLINK_GENERIC, { receiveBuffer: 8 << 20 });
    expect(sock.receiveBuffer).toBe(8 << 20);
    expect(sock.batchLimits.messages).toBe(256);
  });

  it('reports the requests whose ACK the kernel dropped as lost, not as applied or failed', async () => {
    // A batch forced past what a minimal receive buffer holds: the kernel drops ACKs (recv() then fails with ENOBUFS).
    using sock = NetlinkSocket.open(NETLINK_GENERIC, { receiveBuffer: 4096, batchMessages: 200 });
    const acks = await sock.requestBatch(Array.from({ length: 200 }, () => getFamily('tg-no-family')));
    const lost = acks.filter((a) => a.lost);
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.every((a) => a.errno === ERRNO.ENOBUFS)).toBe(true);
    // The ACKs that fit are true answers; the first ones queued are always among them.
    expect(acks[0]).toEqual({ errno: ERRNO.ENOENT, extAckMessage: undefined, extAckOffset: undefined });
    expect(acks.filter((a) => !a.lost).every((a) => a.errno === ERRNO.ENOENT)).toBe(true);
    expect(sock.resolveFamily('nlctrl').id).toBe(0x10);
  });
});
