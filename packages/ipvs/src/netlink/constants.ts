/**
 * Netlink, generic-netlink and IPVS numbers from `linux/netlink.h`, `genetlink.h` and `ip_vs.h`
 * (values verified in /work/shared/reference/ipvs-netlink.md §1.2, §2). Plain objects, not enums,
 * because the sources run under Node's type stripping.
 */

export const NETLINK_GENERIC = 16;
export const AF_NETLINK = 16;

export const NLM_F = {
  REQUEST: 0x01,
  MULTI: 0x02,
  ACK: 0x04,
  ECHO: 0x08,
  DUMP_INTR: 0x10,
  DUMP: 0x300,
  /** On an ACK: the echoed request payload was omitted. */
  CAPPED: 0x100,
  /** On an ACK: extended-ack TLVs follow. */
  ACK_TLVS: 0x200,
} as const;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2 } as const;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;

export const SOL_NETLINK = 270;
export const NETLINK_EXT_ACK = 11;

/** `asm-generic/socket.h`: the socket buffer sizes; the FORCE variants ignore net.core.[rw]mem_max (CAP_NET_ADMIN). */
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;

export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD = { NEWFAMILY: 1, GETFAMILY: 3 } as const;
export const CTRL_ATTR = { FAMILY_ID: 1, FAMILY_NAME: 2, VERSION: 3, HDRSIZE: 4, MAXATTR: 5, OPS: 6, MCAST_GROUPS: 7 } as const;

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IPVS_CMD = {
  NEW_SERVICE: 1,
  SET_SERVICE: 2,
  DEL_SERVICE: 3,
  GET_SERVICE: 4,
  NEW_DEST: 5,
  SET_DEST: 6,
  DEL_DEST: 7,
  GET_DEST: 8,
  NEW_DAEMON: 9,
  DEL_DAEMON: 10,
  GET_DAEMON: 11,
  SET_CONFIG: 12,
  GET_CONFIG: 13,
  SET_INFO: 14,
  GET_INFO: 15,
  ZERO: 16,
  FLUSH: 17,
} as const;

export const IPVS_CMD_ATTR = { SERVICE: 1, DEST: 2, DAEMON: 3, TIMEOUT_TCP: 4, TIMEOUT_TCP_FIN: 5, TIMEOUT_UDP: 6 } as const;
export const IPVS_INFO_ATTR = { VERSION: 1, CONN_TAB_SIZE: 2 } as const;

export const IPVS_SVC_ATTR = {
  AF: 1,
  PROTOCOL: 2,
  ADDR: 3,
  PORT: 4,
  FWMARK: 5,
  SCHED_NAME: 6,
  FLAGS: 7,
  TIMEOUT: 8,
  NETMASK: 9,
  STATS: 10,
  PE_NAME: 11,
  STATS64: 12,
} as const;

export const IPVS_DEST_ATTR = {
  ADDR: 1,
  PORT: 2,
  FWD_METHOD: 3,
  WEIGHT: 4,
  U_THRESH: 5,
  L_THRESH: 6,
  ACTIVE_CONNS: 7,
  INACT_CONNS: 8,
  PERSIST_CONNS: 9,
  STATS: 10,
  ADDR_FAMILY: 11,
  STATS64: 12,
  TUN_TYPE: 13,
  TUN_PORT: 14,
  TUN_FLAGS: 15,
} as const;

export const IPVS_DAEMON_ATTR = {
  STATE: 1,
  MCAST_IFN: 2,
  SYNC_ID: 3,
  SYNC_MAXLEN: 4,
  MCAST_GROUP: 5,
  MCAST_GROUP6: 6,
  MCAST_PORT: 7,
  MCAST_TTL: 8,
} as const;

export const IPVS_STATS_ATTR = {
  CONNS: 1,
  INPKTS: 2,
  OUTPKTS: 3,
  INBYTES: 4,
  OUTBYTES: 5,
  CPS: 6,
  INPPS: 7,
  OUTPPS: 8,
  INBPS: 9,
  OUTBPS: 10,
  PAD: 11,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO = { tcp: 6, udp: 17, sctp: 132 } as const;

export const IP_VS_SVC_F = { PERSISTENT: 0x01, HASHED: 0x02, ONEPACKET: 0x04, SCHED1: 0x08, SCHED2: 0x10, SCHED3: 0x20 } as const;
export const IP_VS_CONN_F_FWD = { masq: 0, local: 1, tunnel: 2, route: 3 } as const;
export const IP_VS_CONN_F_FWD_MASK = 0x7;
export const IP_VS_TUNNEL_TYPE = { ipip: 0, gue: 1, gre: 2 } as const;
export const IP_VS_TUNNEL_ENCAP_FLAG = { nocsum: 0, csum: 1, remcsum: 2 } as const;
export const IP_VS_STATE = { master: 1, backup: 2 } as const;

/** errno values (x86_64/arm64 Linux) the IPVS code distinguishes. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EAGAIN: 11,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ERANGE: 34,
  EPROTO: 71,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
} as const;
