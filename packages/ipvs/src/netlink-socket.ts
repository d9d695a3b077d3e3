import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import {
  AF_NETLINK,
  ERRNO,
  NETLINK_EXT_ACK,
  NETLINK_GENERIC,
  NLM_F,
  NLMSG,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOL_NETLINK,
  SOL_SOCKET,
} from './netlink/constants.ts';
import { decodeFamily, type GenlFamily } from './netlink/ipvs-decode.ts';
import { encodeFamilyRequest } from './netlink/ipvs-encode.ts';
import { fromKernel, type NlMessage, parseDoneError, parseGenl, parseNlError, splitMessages } from './netlink/message.ts';

/**
 * A netlink socket over libc through koffi: node:net/dgram cannot open AF_NETLINK and libuv cannot
 * wrap its fd, and koffi needs no compiler at install (reference §3). The kernel handles a request
 * synchronously inside sendto(), so replies are already queued when we read them: a read never blocks
 * (MSG_DONTWAIT). Only when an answer is missing does a request wait, on timers, so the event loop (health
 * checks, the admin listener) keeps running; every wait is bounded by the request's deadline.
 */

const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
/**
 * Waits between reads while an answer is missing: the first re-read after 1 ms, doubling up to 50 ms. An answer
 * is normally queued before the first read, so these run only when one was lost or never comes; then the
 * process spends at most one recv() per wait on it, instead of blocking in poll() for the whole timeout.
 */
const FIRST_WAIT_MS = 1;
const MAX_WAIT_MS = 50;
/** Dump chunks are at most ~32 KiB; 64 KiB leaves room (reference §1.4). */
const RECV_BUFFER_SIZE = 65536;
const DEFAULT_TIMEOUT_MS = 5000;
const MAX_DUMP_ATTEMPTS = 5;
/**
 * Socket buffers asked for (the kernel doubles what it is given, for its bookkeeping; these are the doubled
 * sizes). A batch's ACKs all queue up inside its sendto(), before we read any, so the receive buffer bounds a
 * batch; the default (net.core.rmem_default, 208 KiB) holds ~270. SO_RCVBUFFORCE needs CAP_NET_ADMIN, which an
 * IPVS writer has; without it SO_RCVBUF is capped at net.core.rmem_max and batches shrink to fit.
 */
const WANTED_RCVBUF = 4 << 20;
const WANTED_SNDBUF = 1 << 20;
/**
 * What one ACK costs the receive buffer at most (its skb's truesize; /proc/net/netlink's Rmem after an unread
 * batch shows it): 768 bytes per IPVS ACK, success or EEXIST, on the guest's Debian 6.1 kernel; 832 per nlctrl
 * error ACK on 6.18. An error ACK echoes its request and may carry an extended-ack text: 1,280 leaves room.
 */
const ACK_TRUESIZE = 1280;
/**
 * Requests per datagram at most. Under TCG, 11,000 IPVS adds took 2.0–2.05 s in datagrams of 256, 2.3–2.5 s in
 * datagrams of 1,024, 2.0–2.6 s of 24 or 64, and 2.1–2.35 s one at a time (two runs each, encoding included): the
 * kernel's own work dominates, and a datagram past ~26 requests is a vmalloc'd skb. 256 also bounds how long one
 * sendto() keeps the event loop.
 */
const MAX_BATCH_MESSAGES = 256;
/** netlink_sendmsg refuses a datagram longer than the send buffer minus this. */
const SNDBUF_OVERHEAD = 32;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  getsockname: (fd: number, addr: Buffer, len: Buffer) => number;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, value: Buffer, len: Buffer) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number) => number;
  recvfrom: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: Buffer) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;
/**
 * koffi (a native addon) is loaded with the first socket, not with this package: commands that import the director
 * but open no socket (`director apply --dry-run --against-empty`, `director drain`, `realserver up`) skip it, which
 * counts under QEMU's software CPU. Synchronous, as everything here runs after loadLibc().
 */
let koffi: typeof import('koffi');

function loadLibc(): Libc {
  if (libc) return libc;
  koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  libc = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, void *addr, uint32_t len)'),
    getsockname: lib.func('int getsockname(int fd, void *addr, void *len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *value, void *len)'),
    sendto: lib.func('intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrLen)'),
    recvfrom: lib.func('intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrLen)'),
    close: lib.func('int close(int fd)'),
  };
  return libc;
}

/** A failed syscall or a negative netlink ACK; `errno` is positive. Drivers map it to a TgError. */
export class NetlinkErrnoError extends Error {
  readonly errno: number;
  readonly syscall: string;
  readonly extAckMessage: string | undefined;
  readonly extAckOffset: number | undefined;

  constructor(syscall: string, errno: number, message: string, ext: { message?: string; offset?: number } = {}) {
    super(message);
    this.name = 'NetlinkErrnoError';
    this.syscall = syscall;
    this.errno = errno;
    this.extAckMessage = ext.message;
    this.extAckOffset = ext.offset;
  }
}

function syscallError(syscall: string): NetlinkErrnoError {
  const errno = koffi.errno();
  return new NetlinkErrnoError(syscall, errno, `${syscall}() failed with errno ${errno}`);
}

const OK: NetlinkAck = Object.freeze({ errno: 0 });

/** `struct sockaddr_nl` {AF_NETLINK, pad, pid, groups}; pid 0 is the kernel (or "assign me one" in bind). */
function sockaddrNl(pid = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(AF_NETLINK, 0);
  b.writeUInt32LE(pid, 4);
  return b;
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  return b;
}

/** Asks for a socket buffer size, forced past net.core.*mem_max when allowed; returns the size the kernel set. */
function sizeBuffer(lib: Libc, fd: number, opts: { force: number; plain: number }, bytes: number): number {
  // The kernel doubles the value: ask for half. A refusal of both leaves the default, which is fine (batches shrink).
  if (lib.setsockopt(fd, SOL_SOCKET, opts.force, int32(bytes / 2), 4) < 0) lib.setsockopt(fd, SOL_SOCKET, opts.plain, int32(bytes / 2), 4);
  const value = Buffer.alloc(4);
  const len = int32(4);
  if (lib.getsockopt(fd, SOL_SOCKET, opts.plain, value, len) < 0) throw syscallError('getsockopt');
  return value.readInt32LE(0);
}

export interface NetlinkRequestOptions {
  /** A dump collects messages until NLMSG_DONE; a do request until its ACK. */
  dump: boolean;
  timeoutMs?: number;
}

export interface NetlinkSocketOptions {
  /** Receive buffer to ask for, in the kernel's (doubled) bytes; default 4 MiB. */
  receiveBuffer?: number;
  /**
   * At most this many requests per sendto() in requestBatch(). Default: as many as the receive buffer holds
   * ACKs of (up to 256). A larger value than the buffer holds makes the kernel drop ACKs; requestBatch then
   * reports those requests as lost instead of guessing.
   */
  batchMessages?: number;
}

/** The kernel's answer to one request of a batch. */
export interface NetlinkAck {
  /** Positive errno; 0 when the kernel applied the request. */
  readonly errno: number;
  readonly extAckMessage?: string;
  readonly extAckOffset?: number;
  /**
   * No ACK came back: the receive buffer overran (errno ENOBUFS) or the kernel never answered (ETIMEDOUT).
   * Whether the kernel applied the request is unknown.
   */
  readonly lost?: true;
}

/** Syscalls made and requests sent since the socket opened (how much a batch saved). */
export interface NetlinkSocketStats {
  readonly sendCalls: number;
  readonly recvCalls: number;
  readonly requests: number;
  /** Datagrams read that did not come from the kernel (another process's socket sent them): dropped unread. */
  readonly foreign: number;
}

/** Bounds of one requestBatch() datagram: ACKs the receive buffer holds, bytes the send buffer takes. */
export interface NetlinkBatchLimits {
  readonly messages: number;
  readonly bytes: number;
}

/**
 * One netlink socket. Requests run one at a time (a later one waits for the earlier one's answer), so one can
 * never read another's replies; a batch holds the socket one datagram at a time.
 */
export class NetlinkSocket {
  readonly portId: number;
  /** What the kernel set (SO_RCVBUF / SO_SNDBUF, doubled sizes). */
  readonly receiveBuffer: number;
  readonly sendBuffer: number;
  readonly batchLimits: NetlinkBatchLimits;
  readonly #fd: number;
  readonly #libc: Libc;
  readonly #stats = { sendCalls: 0, recvCalls: 0, requests: 0, foreign: 0 };
  readonly #buf = Buffer.alloc(RECV_BUFFER_SIZE);
  // Allocated once: a reconcile sends thousands of requests, and these never change.
  readonly #kernel = sockaddrNl();
  /** recvfrom()'s sender address and its length (in/out). */
  readonly #from = Buffer.alloc(12);
  readonly #fromLen = Buffer.alloc(4);
  #seq: number;
  #closed = false;
  /** Settles when the request holding the socket is done: the next one starts after it. */
  #tail: Promise<void> = Promise.resolve();

  private constructor(lib: Libc, fd: number, portId: number, buffers: { receive: number; send: number; batchMessages?: number }) {
    this.#libc = lib;
    this.#fd = fd;
    this.portId = portId;
    this.receiveBuffer = buffers.receive;
    this.sendBuffer = buffers.send;
    this.batchLimits = {
      messages: Math.max(1, buffers.batchMessages ?? Math.min(MAX_BATCH_MESSAGES, Math.floor(buffers.receive / ACK_TRUESIZE))),
      bytes: buffers.send - SNDBUF_OVERHEAD,
    };
    // A random start: replies meant for an earlier socket with the same port id never match, and a process
    // that could send to this socket (CAP_NET_ADMIN) cannot predict the numbers to forge an answer with.
    this.#seq = randomBytes(4).readUInt32LE(0);
  }

  /** Opens and binds a socket of a netlink protocol (default NETLINK_GENERIC) in this process's netns. */
  static open(protocol = NETLINK_GENERIC, options: NetlinkSocketOptions = {}): NetlinkSocket {
    const lib = loadLibc();
    const fd = lib.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw syscallError('socket');
    try {
      if (lib.bind(fd, sockaddrNl(), 12) < 0) throw syscallError('bind');
      const addr = Buffer.alloc(12);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(12);
      if (lib.getsockname(fd, addr, len) < 0) throw syscallError('getsockname');
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      // Extended ACKs only add a text to errors; kernels before 4.12 refuse the option, which is fine.
      lib.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
      const receive = sizeBuffer(lib, fd, { force: SO_RCVBUFFORCE, plain: SO_RCVBUF }, options.receiveBuffer ?? WANTED_RCVBUF);
      const send = sizeBuffer(lib, fd, { force: SO_SNDBUFFORCE, plain: SO_SNDBUF }, WANTED_SNDBUF);
      return new NetlinkSocket(lib, fd, addr.readUInt32LE(4), { receive, send, batchMessages: options.batchMessages });
    } catch (err) {
      lib.close(fd);
      throw err;
    }
  }

  /**
   * Sends `build(seq)` and returns the reply messages (without ACK/DONE); throws NetlinkErrnoError on a negative
   * ACK. A dump interrupted by a concurrent change (DUMP_INTR) is redone.
   */
  request(build: (seq: number) => Buffer, options: NetlinkRequestOptions): Promise<NlMessage[]> {
    return this.#exclusive(async () => {
      if (this.#closed) throw new NetlinkErrnoError('sendto', 9, 'netlink socket is closed');
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      for (let attempt = 0; attempt < MAX_DUMP_ATTEMPTS; attempt++) {
        this.#seq = (this.#seq + 1) >>> 0;
        const seq = this.#seq;
        this.#send(build(seq));
        const { messages, interrupted } = await this.#collect(seq, Date.now() + timeoutMs);
        if (!interrupted) return messages;
      }
      throw new NetlinkErrnoError('recv', ERRNO.EINTR, `dump was interrupted ${MAX_DUMP_ATTEMPTS} times in a row`);
    });
  }

  /**
   * Runs `fn` once the requests before it are done. Needed since a request may wait on timers for a missing
   * answer: a second request sent meanwhile would read (and, by its other sequence number, drop) the first one's.
   */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  get stats(): NetlinkSocketStats {
    return { ...this.#stats };
  }

  /**
   * Sends do-requests packed into as few sendto() calls as `batchLimits` allow and returns each one's ACK, in
   * order. Each message is a complete request; its sequence number and NLM_F_ACK are written into its header here.
   * The kernel (netlink_rcv_skb) handles the messages of one datagram in order inside the sendto(), queues one
   * ACK per message (an error ACK for a failed one) and goes on with the next: a failure does not stop the
   * requests after it. So every ACK is queued when sendto() returns, and the limits keep them within the receive
   * buffer. Replies other than ACKs are dropped. Between datagrams the event loop gets a turn. Never throws
   * for the kernel's answers: a refused sendto() fails its messages with its errno, and requests whose ACK did
   * not come are `lost`.
   */
  async requestBatch(messages: readonly Buffer[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<NetlinkAck[]> {
    const acks: NetlinkAck[] = [];
    let start = 0;
    while (start < messages.length) {
      if (start > 0) await nextTurn();
      const end = this.#batchEnd(messages, start);
      const batch = messages.slice(start, end);
      for (const ack of await this.#exclusive(() => this.#sendBatch(batch, timeoutMs))) acks.push(ack);
      start = end;
    }
    return acks;
  }

  /** The end (exclusive) of the datagram starting at `start`: within the message count and byte limits, at least one message. */
  #batchEnd(messages: readonly Buffer[], start: number): number {
    let bytes = 0;
    let end = start;
    while (end < messages.length && end - start < this.batchLimits.messages) {
      bytes += (messages[end] as Buffer).length;
      if (bytes > this.batchLimits.bytes && end > start) break;
      end += 1;
    }
    return end;
  }

  async #sendBatch(messages: readonly Buffer[], timeoutMs: number): Promise<NetlinkAck[]> {
    if (this.#closed) throw new NetlinkErrnoError('sendto', 9, 'netlink socket is closed');
    const first = (this.#seq + 1) >>> 0;
    for (const m of messages) {
      this.#seq = (this.#seq + 1) >>> 0;
      m.writeUInt16LE(m.readUInt16LE(6) | NLM_F.ACK, 6);
      m.writeUInt32LE(this.#seq, 8);
    }
    try {
      this.#send(messages.length === 1 ? (messages[0] as Buffer) : Buffer.concat(messages));
    } catch (err) {
      // Refused whole (e.g. EMSGSIZE): the kernel saw none of them, so each failed, none is unknown.
      const errno = err instanceof NetlinkErrnoError ? err.errno : ERRNO.EINVAL;
      return messages.map(() => ({ errno }));
    }
    this.#stats.requests += messages.length;
    return this.#collectAcks(first, messages.length, Date.now() + timeoutMs);
  }

  /**
   * The ACKs of `count` requests numbered from `first`. An overrun (recv() fails with ENOBUFS once; the kernel
   * dropped what did not fit) ends the wait as soon as the queue is empty: nothing more can come, since the kernel
   * answered inside sendto(). Requests without an ACK are reported lost.
   */
  async #collectAcks(first: number, count: number, deadline: number): Promise<NetlinkAck[]> {
    const acks = new Array<NetlinkAck | undefined>(count);
    let missing = count;
    let lostErrno: number = ERRNO.ETIMEDOUT;
    while (missing > 0) {
      let batch: NlMessage[] | undefined;
      try {
        batch = lostErrno === ERRNO.ENOBUFS ? this.#receiveQueued() : (this.#receiveQueued() ?? (await this.#receive(deadline)));
      } catch (err) {
        // Anything but the overrun's ENOBUFS (a timeout, a garbled datagram) ends the wait: the rest are lost.
        lostErrno = err instanceof NetlinkErrnoError ? err.errno : ERRNO.EPROTO;
        if (lostErrno === ERRNO.ENOBUFS) continue;
        break;
      }
      if (batch === undefined) break;
      for (const m of batch) {
        if (m.type === NLMSG.OVERRUN) lostErrno = ERRNO.ENOBUFS;
        if (m.type !== NLMSG.ERROR) continue; // a reply of a request that has one, or a stale message
        const i = (m.seq - first) >>> 0;
        if (i >= count || acks[i] !== undefined) continue;
        const e = parseNlError(m);
        acks[i] = e.errno === 0 ? OK : { errno: e.errno, extAckMessage: e.extAckMessage, extAckOffset: e.extAckOffset };
        missing -= 1;
      }
    }
    const lost: NetlinkAck = { errno: lostErrno, lost: true };
    return Array.from(acks, (a) => a ?? lost);
  }

  /** Resolves a generic-netlink family by name through nlctrl (ENOENT when it is not registered). */
  async resolveFamily(name: string, timeoutMs?: number): Promise<GenlFamily> {
    const [reply] = await this.request((seq) => encodeFamilyRequest(seq, name), { dump: false, timeoutMs });
    if (reply === undefined) throw new NetlinkErrnoError('recv', ERRNO.ENOENT, `nlctrl sent no reply for family ${name}`);
    return decodeFamily(parseGenl(reply).attrs);
  }

  #send(msg: Buffer): void {
    for (;;) {
      this.#stats.sendCalls += 1;
      if (this.#libc.sendto(this.#fd, msg, msg.length, 0, this.#kernel, 12) >= 0) return;
      const err = syscallError('sendto');
      if (err.errno !== ERRNO.EINTR) throw err;
    }
  }

  async #collect(seq: number, deadline: number): Promise<{ messages: NlMessage[]; interrupted: boolean }> {
    const messages: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      // The answer is normally queued already: read it without a turn of the event loop.
      for (const m of this.#receiveQueued() ?? (await this.#receive(deadline))) {
        if (m.seq !== seq) continue; // a stale reply to an earlier, timed-out request
        if ((m.flags & NLM_F.DUMP_INTR) !== 0) interrupted = true;
        if (m.type === NLMSG.NOOP) continue;
        if (m.type === NLMSG.ERROR) {
          const e = parseNlError(m);
          if (e.errno !== 0) {
            const ext = { message: e.extAckMessage, offset: e.extAckOffset };
            throw new NetlinkErrnoError(
              'netlink',
              e.errno,
              `kernel answered errno ${e.errno}${ext.message ? ` (${ext.message})` : ''}`,
              ext,
            );
          }
          return { messages, interrupted };
        }
        if (m.type === NLMSG.DONE) {
          const errno = parseDoneError(m);
          if (errno !== 0) throw new NetlinkErrnoError('netlink', errno, `dump failed with errno ${errno}`);
          return { messages, interrupted };
        }
        if (m.type === NLMSG.OVERRUN) throw new NetlinkErrnoError('recv', ERRNO.ENOBUFS, 'netlink overrun: replies were lost');
        // A do request's reply precedes its ACK, so keep reading until the ACK (or DONE for dumps).
        messages.push(m);
      }
    }
  }

  /**
   * The next datagram (possibly several messages) when none was queued: waits on timers until one is, or until the
   * deadline. The fd cannot join libuv's poll (koffi cannot hand it over), and a blocking poll() would stop the
   * event loop for up to the timeout. Callers read the queue first (#receiveQueued), so this starts by waiting.
   */
  async #receive(deadline: number): Promise<NlMessage[]> {
    for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new NetlinkErrnoError('recv', ERRNO.ETIMEDOUT, 'timed out waiting for the kernel to answer');
      await sleep(Math.min(wait, remaining));
      const messages = this.#receiveQueued();
      if (messages !== undefined) return messages;
    }
  }

  /**
   * One datagram from the kernel already queued, or undefined when there is none (EAGAIN). A datagram another
   * process sent to this socket's port id (any holder of CAP_NET_ADMIN may unicast to it) is dropped: only the
   * kernel (sender port id 0) answers IPVS requests, and a forged ACK would make an op look applied.
   */
  #receiveQueued(): NlMessage[] | undefined {
    for (;;) {
      this.#stats.recvCalls += 1;
      this.#fromLen.writeUInt32LE(this.#from.length, 0);
      const n = this.#libc.recvfrom(this.#fd, this.#buf, this.#buf.length, MSG_DONTWAIT | MSG_TRUNC, this.#from, this.#fromLen);
      if (n >= 0 && !fromKernel(this.#from.subarray(0, this.#fromLen.readUInt32LE(0)))) {
        this.#stats.foreign += 1;
        continue;
      }
      if (n > this.#buf.length) throw new NetlinkErrnoError('recv', ERRNO.EMSGSIZE, `netlink datagram of ${n} bytes exceeds the buffer`);
      if (n >= 0) return splitMessages(Buffer.from(this.#buf.subarray(0, n)));
      const err = syscallError('recv');
      if (err.errno === ERRNO.EINTR) continue;
      if (err.errno === ERRNO.EAGAIN) return undefined;
      throw err;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.close(this.#fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
