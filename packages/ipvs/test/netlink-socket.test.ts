import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import {
  AF_NETLINK,
  bytesAttr,
  ERRNO,
  encodeAttrs,
  encodeGenlMessage,
  encodeMessage,
  NETLINK_GENERIC,
  NetlinkErrnoError,
  NetlinkSocket,
  NLM_F,
  NLMSG,
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

/**
 * Another process's netlink socket, bound to its own port id: sends one datagram to `portId` (a unicast to a
 * user socket, which netlink allows holders of CAP_NET_ADMIN, as root here). Opened through libc as the code
 * under test does, but independent of it.
 */
function sendFromOtherSocket(portId: number, datagram: Buffer): void {
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const bind = lib.func('int bind(int fd, void *addr, uint32_t len)');
  const sendto = lib.func('intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrLen)');
  const close = lib.func('int close(int fd)');
  const sockaddr = (pid: number) => {
    const b = Buffer.alloc(12);
    b.writeUInt16LE(AF_NETLINK, 0);
    b.writeUInt32LE(pid, 4);
    return b;
  };
  const fd = socket(AF_NETLINK, 3 /* SOCK_RAW */, NETLINK_GENERIC) as number;
  expect(fd).toBeGreaterThanOrEqual(0);
  try {
    expect(bind(fd, sockaddr(0), 12)).toBe(0);
    expect(sendto(fd, datagram, datagram.length, 0, sockaddr(portId), 12)).toBe(datagram.length);
  } finally {
    close(fd);
  }
}

/** An NLMSG_ERROR answer (`errno` 0: a success ACK) to request `seq`, as the kernel would word it. */
function forgedAck(seq: number, portId: number, errno: number): Buffer {
  const payload = Buffer.alloc(20);
  payload.writeInt32LE(-errno, 0);
  payload.writeUInt32LE(16, 4); // the echoed request header: a bare one is enough for the parser
  return encodeMessage({ type: NLMSG.ERROR, flags: 0, seq, pid: portId }, payload);
}

/** The sequence number requestBatch() wrote into a request (it numbers each message in place). */
const seqOf = (request: Buffer) => request.readUInt32LE(8);

/** A request the kernel never answers: a control message (type < 0x10) without NLM_F_ACK is skipped silently. */
const unanswered = (seq: number) => encodeMessage({ type: NLMSG.NOOP, flags: NLM_F.REQUEST, seq }, Buffer.alloc(0));

async function errnoOf(fn: () => Promise<unknown>): Promise<NetlinkErrnoError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof NetlinkErrnoError) return err;
    throw err;
  }
  throw new Error('expected a NetlinkErrnoError');
}

describe('NetlinkSocket against the real kernel', () => {
  it('binds to a kernel-assigned port id and resolves the nlctrl family (reply, then ACK)', async () => {
    using sock = NetlinkSocket.open();
    expect(sock.portId).toBeGreaterThan(0);
    expect(await sock.resolveFamily('nlctrl')).toMatchObject({ id: 0x10, name: 'nlctrl', hdrSize: 0 });
  });

  it('collects a multi-message dump until NLMSG_DONE', async () => {
    using sock = NetlinkSocket.open();
    const msgs = await sock.request(getFamilyRequest(Buffer.alloc(0), 0x301), { dump: true });
    const names = msgs.map((m) => parseGenl(m).attrs.string(2));
    expect(names.length).toBeGreaterThan(1);
    expect(names).toContain('nlctrl');
  });

  it('reports ENOENT for an unregistered family (how a kernel without ip_vs answers for IPVS)', async () => {
    using sock = NetlinkSocket.open();
    expect((await errnoOf(() => sock.resolveFamily('tg-no-family'))).errno).toBe(2);
  });

  it('surfaces the kernel extended-ack text and offset on a policy violation', async () => {
    using sock = NetlinkSocket.open();
    // FAMILY_NAME without its NUL terminator violates the NLA_NUL_STRING policy.
    const err = await errnoOf(() => sock.request(getFamilyRequest(encodeAttrs([bytesAttr(2, Buffer.from('IPVS'))])), { dump: false }));
    expect(err.errno).toBe(22);
    expect(err.extAckMessage).toMatch(/policy/i);
    expect(err.extAckOffset).toBe(20);
  });

  it('keeps working after an error (stale replies are skipped by sequence number)', async () => {
    using sock = NetlinkSocket.open();
    await errnoOf(() => sock.request(getFamilyRequest(encodeAttrs([u32Attr(1, 0x7777)])), { dump: false }));
    expect((await sock.resolveFamily('nlctrl')).id).toBe(0x10);
  });

  it('refuses requests after close', async () => {
    const sock = NetlinkSocket.open();
    sock.close();
    expect((await errnoOf(() => sock.resolveFamily('nlctrl'))).message).toMatch(/closed/);
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
    expect((await sock.resolveFamily('nlctrl')).id).toBe(0x10);
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
    expect((await sock.resolveFamily('nlctrl')).id).toBe(0x10);
  });

  it('drops answers another process sends to its port id: a forged error or success ACK never reaches a request', async () => {
    using sock = NetlinkSocket.open();
    // Learn the next sequence number (requestBatch writes it into the message), as an attacker would have to.
    const probe = getFamily('nlctrl');
    await sock.requestBatch([probe]);
    const next = seqOf(probe) + 1;

    // A forged EPERM for the next request: the kernel's own answer (the nlctrl family) must be the one taken.
    sendFromOtherSocket(sock.portId, forgedAck(next, sock.portId, ERRNO.EPERM));
    expect((await sock.resolveFamily('nlctrl')).id).toBe(0x10);

    // A forged success ACK for a request the kernel refuses: the op must not look applied.
    sendFromOtherSocket(sock.portId, forgedAck(next + 1, sock.portId, 0));
    const [ack] = await sock.requestBatch([getFamily('tg-no-family')]);
    expect(ack?.errno).toBe(ERRNO.ENOENT);
    expect(sock.stats.foreign).toBe(2);
  });

  it('starts its sequence numbers at random: sockets opened in the same second do not share them', async () => {
    const firsts: number[] = [];
    for (let i = 0; i < 8; i++) {
      using sock = NetlinkSocket.open();
      const request = getFamily('nlctrl');
      await sock.requestBatch([request]);
      firsts.push(seqOf(request));
    }
    expect(new Set(firsts).size).toBe(8);
  });

  it('waits for a missing answer without stopping the event loop, then times out', async () => {
    using sock = NetlinkSocket.open();
    let timerRan = false;
    const timer = setTimeout(() => {
      timerRan = true;
    }, 20);
    const err = await errnoOf(() => sock.request(unanswered, { dump: false, timeoutMs: 300 }));
    clearTimeout(timer);
    expect(err.errno).toBe(ERRNO.ETIMEDOUT);
    // A blocking poll() for the 300 ms would have kept the 20 ms timer from running until after the rejection.
    expect(timerRan).toBe(true);
  });

  it('runs concurrent requests one at a time: a request waiting for its answer holds the socket', async () => {
    using sock = NetlinkSocket.open();
    const order: string[] = [];
    const waiting = errnoOf(() => sock.request(unanswered, { dump: false, timeoutMs: 200 })).then((e) => order.push(`timeout ${e.errno}`));
    const family = sock.resolveFamily('nlctrl').then((f) => order.push(`family ${f.id}`));
    await Promise.all([waiting, family]);
    expect(order).toEqual([`timeout ${ERRNO.ETIMEDOUT}`, 'family 16']);
  });
});
