import koffi from 'koffi';
import { AF_NETLINK, ERRNO, NETLINK_EXT_ACK, NETLINK_GENERIC, NLM_F, NLMSG, SOL_NETLINK } from './netlink/constants.ts';
import { decodeFamily, type GenlFamily } from './netlink/ipvs-decode.ts';
import { encodeFamilyRequest } from './netlink/ipvs-encode.ts';
import { type NlMessage, parseDoneError, parseGenl, parseNlError, splitMessages } from './netlink/message.ts';

/**
 * A netlink socket over libc through koffi: node:net/dgram cannot open AF_NETLINK and libuv cannot
 * wrap its fd, and koffi needs no compiler at install (reference §3). The kernel handles a request
 * synchronously inside sendto(), so replies are already queued when we poll; every wait is bounded.
 */

const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const POLLIN = 1;
/** Dump chunks are at most ~32 KiB; 64 KiB leaves room (reference §1.4). */
const RECV_BUFFER_SIZE = 65536;
const DEFAULT_TIMEOUT_MS = 5000;
const MAX_DUMP_ATTEMPTS = 5;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  getsockname: (fd: number, addr: Buffer, len: Buffer) => number;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  poll: (fds: Buffer, nfds: number, timeoutMs: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, void *addr, uint32_t len)'),
    getsockname: lib.func('int getsockname(int fd, void *addr, void *len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)'),
    sendto: lib.func('intptr_t sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrLen)'),
    recv: lib.func('intptr_t recv(int fd, void *buf, size_t len, int flags)'),
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
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

/** `struct sockaddr_nl` {AF_NETLINK, pad, pid, groups}; pid 0 is the kernel (or "assign me one" in bind). */
function sockaddrNl(pid = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(AF_NETLINK, 0);
  b.writeUInt32LE(pid, 4);
  return b;
}

export interface NetlinkRequestOptions {
  /** A dump collects messages until NLMSG_DONE; a do request until its ACK. */
  dump: boolean;
  timeoutMs?: number;
}

/** One netlink socket; requests run one at a time (each is synchronous, so none can interleave). */
export class NetlinkSocket {
  readonly portId: number;
  readonly #fd: number;
  readonly #libc: Libc;
  readonly #buf = Buffer.alloc(RECV_BUFFER_SIZE);
  // Allocated once: a reconcile sends thousands of requests, and these never change.
  readonly #kernel = sockaddrNl();
  readonly #pollfd = Buffer.alloc(8);
  #seq: number;
  #closed = false;

  private constructor(lib: Libc, fd: number, portId: number) {
    this.#libc = lib;
    this.#fd = fd;
    this.portId = portId;
    this.#pollfd.writeInt32LE(fd, 0);
    this.#pollfd.writeInt16LE(POLLIN, 4);
    // Start from the clock so replies to a previous process's socket (same port id reused) never match.
    this.#seq = Math.floor(Date.now() / 1000) & 0x7fffffff;
  }

  /** Opens and binds a socket of a netlink protocol (default NETLINK_GENERIC) in this process's netns. */
  static open(protocol = NETLINK_GENERIC): NetlinkSocket {
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
      return new NetlinkSocket(lib, fd, addr.readUInt32LE(4));
    } catch (err) {
      lib.close(fd);
      throw err;
    }
  }

  /** Sends `build(seq)` and returns the reply messages (without ACK/DONE); throws NetlinkErrnoError on a negative ACK. */
  async request(build: (seq: number) => Buffer, options: NetlinkRequestOptions): Promise<NlMessage[]> {
    return this.requestSync(build, options);
  }

  /** The synchronous core of request(); a dump interrupted by a concurrent change (DUMP_INTR) is redone. */
  requestSync(build: (seq: number) => Buffer, options: NetlinkRequestOptions): NlMessage[] {
    if (this.#closed) throw new NetlinkErrnoError('sendto', 9, 'netlink socket is closed');
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    for (let attempt = 0; attempt < MAX_DUMP_ATTEMPTS; attempt++) {
      this.#seq = (this.#seq + 1) >>> 0;
      const seq = this.#seq;
      this.#send(build(seq));
      const { messages, interrupted } = this.#collect(seq, Date.now() + timeoutMs);
      if (!interrupted) return messages;
    }
    throw new NetlinkErrnoError('recv', ERRNO.EINTR, `dump was interrupted ${MAX_DUMP_ATTEMPTS} times in a row`);
  }

  /** Resolves a generic-netlink family by name through nlctrl (ENOENT when it is not registered). */
  resolveFamily(name: string, timeoutMs?: number): GenlFamily {
    const [reply] = this.requestSync((seq) => encodeFamilyRequest(seq, name), { dump: false, timeoutMs });
    if (reply === undefined) throw new NetlinkErrnoError('recv', ERRNO.ENOENT, `nlctrl sent no reply for family ${name}`);
    return decodeFamily(parseGenl(reply).attrs);
  }

  #send(msg: Buffer): void {
    for (;;) {
      if (this.#libc.sendto(this.#fd, msg, msg.length, 0, this.#kernel, 12) >= 0) return;
      const err = syscallError('sendto');
      if (err.errno !== ERRNO.EINTR) throw err;
    }
  }

  #collect(seq: number, deadline: number): { messages: NlMessage[]; interrupted: boolean } {
    const messages: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const m of this.#receive(deadline)) {
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

  /** One datagram (possibly several messages), waiting with poll() until the deadline. */
  #receive(deadline: number): NlMessage[] {
    for (;;) {
      const n = this.#libc.recv(this.#fd, this.#buf, this.#buf.length, MSG_DONTWAIT | MSG_TRUNC);
      if (n > this.#buf.length) throw new NetlinkErrnoError('recv', ERRNO.EMSGSIZE, `netlink datagram of ${n} bytes exceeds the buffer`);
      if (n >= 0) return splitMessages(Buffer.from(this.#buf.subarray(0, n)));
      const err = syscallError('recv');
      if (err.errno === ERRNO.EINTR) continue;
      if (err.errno !== ERRNO.EAGAIN) throw err;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new NetlinkErrnoError('poll', ERRNO.ETIMEDOUT, 'timed out waiting for the kernel to answer');
      if (this.#libc.poll(this.#pollfd, 1, remaining) < 0 && koffi.errno() !== ERRNO.EINTR) throw syscallError('poll');
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
