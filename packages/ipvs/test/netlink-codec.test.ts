import { isIPv4 } from 'node:net';
import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import {
  align4,
  bytesAttr,
  decodeDaemon,
  decodeDestination,
  decodeInfo,
  decodeService,
  decodeTimeouts,
  encodeAttrs,
  encodeFamilyRequest,
  encodeIpvsRequest,
  encodeMessage,
  fromKernel,
  type IpvsDestination,
  type IpvsService,
  type IpvsServiceId,
  ipvsCommands,
  ipvsRequests,
  NlAttrs,
  NlWriter,
  nestedAttr,
  parseGenl,
  parseIpv4,
  parseNlError,
  splitMessages,
  stringAttr,
  toIpvsRequest,
  u8Attr,
  u16Attr,
  u32Attr,
  u64Attr,
  writeIpvsMessage,
} from '../src/index.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const tcpWlc: IpvsService = {
  family: 'inet',
  protocol: 'tcp',
  address: '192.0.2.10',
  port: 80,
  scheduler: 'wlc',
  flags: { persistent: false, onePacket: false, schedFlags: [] },
  timeout: 0,
  netmask: '255.255.255.255',
};

describe('golden bytes from the reference', () => {
  it('encodes the nlctrl GETFAMILY "IPVS" request exactly (§1.3)', () => {
    expect(toHex(encodeFamilyRequest(1, 'IPVS'))).toBe(
      toHex(hex('20 00 00 00 10 00 05 00 01 00 00 00 00 00 00 00 03 01 00 00 09 00 02 00 49 50 56 53 00 00 00 00')),
    );
  });

  it('encodes NEW_SERVICE TCP 192.0.2.10:80 wlc as the 104-byte layout of §2.8', () => {
    const msg = encodeIpvsRequest(0x2a, 7, ipvsRequests.newService(tcpWlc));
    const expected = hex(`
      68 00 00 00 2a 00 05 00 07 00 00 00 00 00 00 00
      01 01 00 00
      54 00 01 80
      06 00 01 00 02 00 00 00
      06 00 02 00 06 00 00 00
      14 00 03 00 c0 00 02 0a 00 00 00 00 00 00 00 00 00 00 00 00
      06 00 04 00 00 50 00 00
      08 00 06 00 77 6c 63 00
      0c 00 07 00 00 00 00 00 ff ff ff ff
      08 00 08 00 00 00 00 00
      08 00 09 00 ff ff ff ff`);
    expect(msg.length).toBe(104);
    expect(toHex(msg)).toBe(toHex(expected));
  });
});

describe('attributes', () => {
  it('pads every attribute to 4 bytes and records the unpadded length', () => {
    const buf = encodeAttrs([u8Attr(1, 7), u16Attr(2, 0x1234), u32Attr(3, 1), u64Attr(4, 2n ** 40n), bytesAttr(5, Buffer.alloc(16, 1))]);
    expect(toHex(buf.subarray(0, 8))).toBe('0500010007000000');
    expect(toHex(buf.subarray(8, 16))).toBe('0600020034120000');
    expect(buf.readUInt16LE(16)).toBe(8);
    expect(buf.readUInt16LE(24)).toBe(12);
    expect(buf.readUInt16LE(36)).toBe(20);
    expect(buf.length).toBe(8 + 8 + 8 + 12 + 20);
    const a = NlAttrs.parse(buf);
    expect([a.u8(1), a.u16(2), a.u32(3), a.u64(4)]).toEqual([7, 0x1234, 1, 2n ** 40n]);
    expect(align4(5)).toBe(8);
  });

  it('masks NLA_F_NESTED / NET_BYTEORDER and skips unknown types', () => {
    const nested = encodeAttrs([nestedAttr(1, [u32Attr(2, 9)]), { type: 0x4000 | 3, value: Buffer.of(0, 80) }, stringAttr(999, 'new')]);
    const a = NlAttrs.parse(nested);
    expect(a.nested(1)?.u32(2)).toBe(9);
    expect(a.be16(3)).toBe(80);
    expect(a.types().sort((x, y) => x - y)).toEqual([1, 3, 999]);
    expect(a.u32(42)).toBeUndefined();
  });

  it('rejects an attribute whose length leaves the buffer, and a too-short integer', () => {
    expect(() => NlAttrs.parse(hex('08 00 01 00 01 00'))).toThrow(/bad length/);
    expect(() => NlAttrs.parse(hex('05 00 01 00 01 00 00 00')).u32(1)).toThrow(/expected 4/);
  });

  it('rejects integers that do not fit the wire type with TG_IPVS_INVALID', () => {
    try {
      u16Attr(1, 70000);
      expect.unreachable();
    } catch (err) {
      expect(isTgError(err, 'TG_IPVS_INVALID')).toBe(true);
    }
  });
});

describe('NlWriter', () => {
  it('writes the same bytes as encodeAttrs of the same attributes, padding zeroed in a reused buffer', () => {
    const w = new NlWriter(8); // grows as it goes
    w.u32(9, 0xdeadbeef); // garbage for the reset to leave behind
    w.string(9, 'garbage!');
    w.reset();
    w.u8(1, 7);
    w.u16(2, 0x1234);
    w.be16(3, 8080);
    w.u32(4, 0xfffffffe);
    w.bytes(5, Buffer.of(1, 2, 3));
    w.string(6, 'wrr');
    const nest = w.beginNested(7);
    w.u32(8, 9);
    w.ipv4(9, '192.0.2.10');
    w.endNested(nest);
    const expected = encodeAttrs([
      u8Attr(1, 7),
      u16Attr(2, 0x1234),
      bytesAttr(3, Buffer.of(0x1f, 0x90)),
      u32Attr(4, 0xfffffffe),
      bytesAttr(5, Buffer.of(1, 2, 3)),
      stringAttr(6, 'wrr'),
      nestedAttr(7, [u32Attr(8, 9), bytesAttr(9, Buffer.from('c000020a000000000000000000000000', 'hex'))]),
    ]);
    expect(toHex(w.take())).toBe(toHex(expected));
    expect(w.length).toBe(expected.length);
  });

  it('refuses a value its wire type cannot hold, and an IPv4 literal node:net would refuse', () => {
    const w = new NlWriter();
    expect(() => w.u16(1, 70000)).toThrow(/between 0 and 65535/);
    expect(() => w.u32(1, -1)).toThrow(/between 0 and 4294967295/);
    for (const text of [
      '10.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.2.3.256',
      '1..3.4',
      '',
      '1.2.3.4 ',
      '::1',
      'a.b.c.d',
    ]) {
      expect(parseIpv4(text) !== -1, text).toBe(isIPv4(text));
    }
    expect(parseIpv4('192.0.2.10')).toBe(0xc000020a);
    expect(w.ipv4(1, '10.0.0.01')).toBe(false);
    expect(w.length).toBe(0);
  });
});

describe('batch encoding (writeIpvsMessage)', () => {
  const id: IpvsServiceId = { family: 'inet', protocol: 'tcp', address: '192.0.2.10', port: 80 };
  const dest = (address: string): IpvsDestination => ({
    address,
    port: 80,
    family: 'inet',
    forward: 'route',
    weight: 1,
    upperThreshold: 0,
    lowerThreshold: 0,
  });

  it('writes messages back to back, each the bytes encodeIpvsRequest gives, the shared service nest included', () => {
    const w = new NlWriter(16);
    const commands = [
      ipvsCommands.newService(tcpWlc),
      ipvsCommands.newDest(id, dest('10.0.0.1')),
      ipvsCommands.newDest(id, dest('10.0.0.2')), // the same identity object: its nest is copied
      ipvsCommands.delDest({ ...id }, dest('10.0.0.3')), // an equal one: written again
    ];
    const ends: number[] = [];
    for (const [i, c] of commands.entries()) {
      writeIpvsMessage(w, 42, 100 + i, c);
      ends.push(w.length);
    }
    const expected = commands.map((c, i) => encodeIpvsRequest(42, 100 + i, toIpvsRequest(c)));
    expect(toHex(w.take())).toBe(toHex(Buffer.concat(expected)));
    expect(ends).toEqual(expected.map((_, i) => expected.slice(0, i + 1).reduce((n, m) => n + m.length, 0)));
  });

  it('leaves nothing of a command that fails to encode, and writes on after it', () => {
    const w = new NlWriter();
    writeIpvsMessage(w, 42, 1, ipvsCommands.newDest(id, dest('10.0.0.1')));
    const before = w.take();
    expect(() => writeIpvsMessage(w, 42, 2, ipvsCommands.newDest(id, dest('2001:db8::1')))).toThrow(/not IPv4/);
    expect(() => writeIpvsMessage(w, 42, 2, ipvsCommands.delService({ ...id, protocol: 'icmp' as 'tcp' }))).toThrow(/unknown protocol/);
    expect(toHex(w.take())).toBe(toHex(before));
    writeIpvsMessage(w, 42, 3, ipvsCommands.newDest(id, dest('10.0.0.2')));
    expect(splitMessages(w.take()).map((m) => m.seq)).toEqual([1, 3]);
  });
});

describe('messages', () => {
  it('splits a buffer holding several aligned messages, DONE included', () => {
    const buf = Buffer.concat([
      encodeMessage({ type: 0x20, flags: 2, seq: 5, pid: 77 }, Buffer.from([1, 2, 3])),
      encodeMessage({ type: 0x20, flags: 2, seq: 5, pid: 77 }, Buffer.alloc(8)),
      encodeMessage({ type: 3, flags: 2, seq: 5, pid: 77 }, Buffer.alloc(4)),
    ]);
    const msgs = splitMessages(buf);
    expect(msgs.map((m) => [m.type, m.seq, m.pid, m.payload.length])).toEqual([
      [0x20, 5, 77, 3],
      [0x20, 5, 77, 8],
      [3, 5, 77, 4],
    ]);
  });

  it("takes a datagram as the kernel's only when the sender (sockaddr_nl) is AF_NETLINK port id 0", () => {
    // struct sockaddr_nl: u16 family (16), u16 pad, u32 nl_pid, u32 nl_groups.
    expect(fromKernel(hex('10 00 00 00 00 00 00 00 00 00 00 00'))).toBe(true);
    expect(fromKernel(hex('10 00 00 00 39 30 00 00 00 00 00 00'))).toBe(false); // port id 12345: a process's socket
    expect(fromKernel(hex('02 00 00 00 00 00 00 00 00 00 00 00'))).toBe(false); // not AF_NETLINK
    expect(fromKernel(hex('10 00 00 00'))).toBe(false); // truncated: no port id to check
  });

  it('rejects a message length below the header size or past the buffer', () => {
    expect(() => splitMessages(hex('08 00 00 00 10 00 00 00 00 00 00 00 00 00 00 00'))).toThrow(/bad length 8/);
    expect(() => splitMessages(hex('40 00 00 00 10 00 00 00 00 00 00 00 00 00 00 00'))).toThrow(/bad length 64/);
  });

  it('parses an ACK, a plain error and an error with extended-ack message and offset', () => {
    const request = encodeFamilyRequest(9, 'IPVS');
    const ack = Buffer.concat([hex('00000000'), request.subarray(0, 16)]);
    expect(parseNlError(splitMessages(encodeMessage({ type: 2, flags: 0x100, seq: 9 }, ack))[0]!)).toEqual({
      errno: 0,
      requestSeq: 9,
      requestType: 0x10,
    });
    const enoent = Buffer.concat([hex('feffffff'), request]);
    expect(parseNlError(splitMessages(encodeMessage({ type: 2, flags: 0, seq: 9 }, enoent))[0]!).errno).toBe(2);
    const tlvs = encodeAttrs([stringAttr(1, 'Attribute failed policy validation'), u32Attr(2, 24)]);
    const withExt = Buffer.concat([hex('eaffffff'), request, tlvs]);
    const parsed = parseNlError(splitMessages(encodeMessage({ type: 2, flags: 0x200, seq: 9 }, withExt))[0]!);
    expect(parsed).toEqual({
      errno: 22,
      requestSeq: 9,
      requestType: 0x10,
      extAckMessage: 'Attribute failed policy validation',
      extAckOffset: 24,
    });
    const capped = Buffer.concat([hex('eaffffff'), request.subarray(0, 16), tlvs]);
    expect(parseNlError(splitMessages(encodeMessage({ type: 2, flags: 0x300, seq: 9 }, capped))[0]!).extAckMessage).toBe(
      'Attribute failed policy validation',
    );
  });
});

/** Encodes a request, then reads its SERVICE nest back the way a reply is decoded. */
function serviceRoundTrip(svc: IpvsService): IpvsService {
  const [msg] = splitMessages(encodeIpvsRequest(30, 1, ipvsRequests.newService(svc)));
  return decodeService(parseGenl(msg!).attrs.nested(1)!);
}

function destRoundTrip(svc: IpvsServiceId, dest: IpvsDestination): IpvsDestination {
  const [msg] = splitMessages(encodeIpvsRequest(30, 1, ipvsRequests.newDest(svc, dest)));
  const attrs = parseGenl(msg!).attrs;
  return decodeDestination(attrs.nested(2)!, decodeService(withSettings(attrs.nested(1)!)).family);
}

/** Identity-only SERVICE nests lack settings; decodeService needs them, so splice defaults in. */
function withSettings(id: NlAttrs): NlAttrs {
  const extra = encodeAttrs([stringAttr(6, 'rr'), bytesAttr(7, Buffer.alloc(8)), u32Attr(9, 0)]);
  const parts = id.types().map((t) => bytesAttr(t, id.raw(t)!));
  return NlAttrs.parse(Buffer.concat([encodeAttrs(parts), extra]));
}

describe('service round trips', () => {
  const cases: IpvsService[] = [
    tcpWlc,
    { ...tcpWlc, protocol: 'udp', port: 53, scheduler: 'rr', flags: { persistent: false, onePacket: true, schedFlags: [] } },
    {
      family: 'inet',
      fwmark: 7,
      scheduler: 'wrr',
      flags: { persistent: true, onePacket: false, schedFlags: [] },
      timeout: 600,
      netmask: '255.255.255.0',
    },
    {
      family: 'inet6',
      fwmark: 7,
      scheduler: 'rr',
      flags: { persistent: false, onePacket: false, schedFlags: [] },
      timeout: 0,
      netmask: 128,
    },
    {
      family: 'inet6',
      protocol: 'tcp',
      address: '2001:db8::10',
      port: 443,
      scheduler: 'rr',
      flags: { persistent: true, onePacket: false, schedFlags: [] },
      timeout: 300,
      netmask: 64,
    },
    { ...tcpWlc, scheduler: 'sh', flags: { persistent: false, onePacket: false, schedFlags: ['sh-fallback', 'sh-port'] } },
    { ...tcpWlc, scheduler: 'mh', flags: { persistent: false, onePacket: false, schedFlags: ['mh-port'] } },
    { ...tcpWlc, protocol: 'sctp', scheduler: 'wrr', flags: { persistent: false, onePacket: false, schedFlags: ['flag-3'] } },
    { ...tcpWlc, protocol: 'udp', port: 5060, peName: 'sip', flags: { persistent: true, onePacket: false, schedFlags: [] }, timeout: 60 },
  ];
  for (const svc of cases) {
    it(`round-trips ${JSON.stringify(svc)}`, () => {
      expect(serviceRoundTrip(svc)).toEqual(svc);
    });
  }

  it('encodes an IPv4 prefix-length netmask as the dotted mask', () => {
    expect(serviceRoundTrip({ ...tcpWlc, netmask: 24 }).netmask).toBe('255.255.255.0');
  });

  it('rejects a scheduler flag of another scheduler, a v6 address in an inet service and a bad v6 prefix', () => {
    expect(() => ipvsRequests.newService({ ...tcpWlc, flags: { ...tcpWlc.flags, schedFlags: ['sh-port'] } })).toThrow(/does not apply/);
    expect(() => ipvsRequests.newService({ ...tcpWlc, address: '2001:db8::1' })).toThrow(/not IPv4/);
    expect(() => ipvsRequests.newService({ ...tcpWlc, family: 'inet6', address: '::1', netmask: 129 })).toThrow(/prefix 1..128/);
  });
});

describe('destination round trips', () => {
  const base: IpvsDestination = {
    address: '10.0.0.11',
    port: 80,
    family: 'inet',
    forward: 'route',
    weight: 1,
    upperThreshold: 0,
    lowerThreshold: 0,
  };
  const reply = { activeConns: 0, inactConns: 0, persistConns: 0 };
  const cases: [IpvsServiceId, IpvsDestination][] = [
    [tcpWlc, base],
    [tcpWlc, { ...base, forward: 'masq', port: 8080, weight: 0, upperThreshold: 100, lowerThreshold: 50 }],
    [
      { family: 'inet', fwmark: 7 },
      { ...base, port: 0, forward: 'tunnel', tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' } },
    ],
    [tcpWlc, { ...base, forward: 'tunnel', tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' } }],
    [tcpWlc, { ...base, forward: 'tunnel', tunnel: { type: 'gre', port: 0, checksum: 'csum' } }],
    [
      { family: 'inet6', protocol: 'tcp', address: '2001:db8::10', port: 80 },
      { ...base, family: 'inet6', address: '2001:db8::a' },
    ],
    [
      tcpWlc,
      { ...base, family: 'inet6', address: '2001:db8::b', forward: 'tunnel', tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' } },
    ],
  ];
  for (const [svc, dest] of cases) {
    it(`round-trips ${dest.address}:${dest.port} ${dest.forward}${dest.tunnel ? ` ${dest.tunnel.type}` : ''}`, () => {
      expect(destRoundTrip(svc, dest)).toEqual({ ...dest, ...reply });
    });
  }

  it('reports the default ipip tunnel when a tunnel destination was written without one', () => {
    expect(destRoundTrip(tcpWlc, { ...base, forward: 'tunnel' }).tunnel).toEqual({ type: 'ipip', port: 0, checksum: 'nocsum' });
  });

  it('rejects a GUE tunnel without port', () => {
    expect(() =>
      ipvsRequests.newDest(tcpWlc, { ...base, forward: 'tunnel', tunnel: { type: 'gue', port: 0, checksum: 'nocsum' } }),
    ).toThrow(/GUE/);
  });
});

describe('requests of every command', () => {
  it('uses REQUEST|ACK for do commands and REQUEST|DUMP for dumps, with the right cmd', () => {
    const table: [ReturnType<(typeof ipvsRequests)[keyof typeof ipvsRequests]>, number, number][] = [
      [ipvsRequests.newService(tcpWlc), 1, 0x5],
      [ipvsRequests.setService(tcpWlc), 2, 0x5],
      [ipvsRequests.delService(tcpWlc), 3, 0x5],
      [ipvsRequests.getService(tcpWlc), 4, 0x5],
      [ipvsRequests.dumpServices(), 4, 0x301],
      [ipvsRequests.delDest(tcpWlc, { address: '10.0.0.1', port: 80, family: 'inet' }), 7, 0x5],
      [ipvsRequests.dumpDests(tcpWlc), 8, 0x301],
      [ipvsRequests.newDaemon({ state: 'master', interface: 'eth0', syncId: 5 }), 9, 0x5],
      [ipvsRequests.delDaemon('backup'), 10, 0x5],
      [ipvsRequests.dumpDaemons(), 11, 0x301],
      [ipvsRequests.setConfig({ tcp: 900 }), 12, 0x5],
      [ipvsRequests.getConfig(), 13, 0x5],
      [ipvsRequests.getInfo(), 15, 0x5],
      [ipvsRequests.zero(), 16, 0x5],
      [ipvsRequests.flush(), 17, 0x5],
    ];
    for (const [req, cmd, flags] of table) {
      const [msg] = splitMessages(encodeIpvsRequest(40, 3, req));
      expect([msg!.type, msg!.flags, parseGenl(msg!).cmd, parseGenl(msg!).version]).toEqual([40, flags, cmd, 1]);
    }
  });

  it('encodes identity-only service for DEL_SERVICE and ZERO', () => {
    const [msg] = splitMessages(encodeIpvsRequest(40, 3, ipvsRequests.zero({ family: 'inet', fwmark: 7 })));
    const svc = parseGenl(msg!).attrs.nested(1)!;
    expect(svc.types()).toEqual([1, 5]);
    expect(svc.u32(5)).toBe(7);
  });

  it('encodes SET_CONFIG with 0 meaning keep, and a daemon with the optional ≥4.3 settings', () => {
    const [cfg] = splitMessages(encodeIpvsRequest(40, 3, ipvsRequests.setConfig({ udp: 30 })));
    expect(decodeTimeouts(parseGenl(cfg!).attrs)).toEqual({ tcp: 0, tcpFin: 0, udp: 30 });
    const daemon = { state: 'backup', interface: 'eth1', syncId: 9, maxLen: 1400, group: '239.1.2.3', port: 8850, ttl: 2 } as const;
    const [d] = splitMessages(encodeIpvsRequest(40, 3, ipvsRequests.newDaemon(daemon)));
    expect(decodeDaemon(parseGenl(d!).attrs.nested(3)!)).toEqual(daemon);
    const [d6] = splitMessages(encodeIpvsRequest(40, 3, ipvsRequests.newDaemon({ ...daemon, group: 'ff02::81' })));
    expect(decodeDaemon(parseGenl(d6!).attrs.nested(3)!).group).toBe('ff02::81');
  });
});

describe('decoding handcrafted kernel replies', () => {
  // What a 6.x kernel sends for GET_SERVICE dump: nests WITHOUT NLA_F_NESTED, HASHED set in FLAGS,
  // legacy STATS (u32 counters, u64 bytes) and STATS64, a zero-length PAD, and an attribute from the future.
  const stats = hex(`
    08 00 01 00 0a 00 00 00   08 00 02 00 14 00 00 00   08 00 03 00 00 00 00 00
    0c 00 04 00 00 e4 0b 54 02 00 00 00   0c 00 05 00 00 00 00 00 00 00 00 00
    08 00 06 00 01 00 00 00   08 00 07 00 02 00 00 00   08 00 08 00 00 00 00 00
    08 00 09 00 03 00 00 00   08 00 0a 00 00 00 00 00`);
  const stats64 = hex(`
    0c 00 01 00 0a 00 00 00 00 00 00 00   0c 00 02 00 00 00 00 00 01 00 00 00
    04 00 0b 00
    0c 00 04 00 00 e4 0b 54 02 00 00 00`);
  const svcAttrs = Buffer.concat([
    hex(`06 00 01 00 02 00 00 00   06 00 02 00 06 00 00 00
         14 00 03 00 c0 00 02 0a 00 00 00 00 00 00 00 00 00 00 00 00
         06 00 04 00 00 50 00 00   08 00 06 00 77 6c 63 00
         0c 00 07 00 03 00 00 00 ff ff ff ff   08 00 08 00 2c 01 00 00   08 00 09 00 ff ff ff 00`),
    hex(`${(4 + stats.length).toString(16).padStart(2, '0')} 00 0a 00`),
    stats,
    hex(`${(4 + stats64.length).toString(16).padStart(2, '0')} 00 0c 00`),
    stats64,
    hex('08 00 63 00 de ad be ef'),
  ]);
  const serviceMsg = (seq: number) =>
    encodeMessage({ type: 30, flags: 2, seq, pid: 1234 }, Buffer.concat([hex('01 01 00 00'), encodeAttrs([bytesAttr(1, svcAttrs)])]));

  it('decodes services from a multi-message dump buffer ending in DONE, preferring STATS64', () => {
    const buf = Buffer.concat([serviceMsg(8), serviceMsg(8), encodeMessage({ type: 3, flags: 2, seq: 8 }, Buffer.alloc(4))]);
    const msgs = splitMessages(buf);
    expect(msgs.map((m) => m.type)).toEqual([30, 30, 3]);
    const svc = decodeService(parseGenl(msgs[0]!).attrs.nested(1)!);
    expect(svc).toMatchObject({
      family: 'inet',
      protocol: 'tcp',
      address: '192.0.2.10',
      port: 80,
      scheduler: 'wlc',
      flags: { persistent: true, onePacket: false, schedFlags: [] },
      timeout: 300,
      netmask: '255.255.255.0',
    });
    expect(svc.stats).toMatchObject({ conns: 10n, inPkts: 2n ** 32n, outPkts: 0n, inBytes: 10_000_000_000n, cps: 0n });
  });

  it('falls back to legacy STATS (mixed widths) when STATS64 is absent', () => {
    const a = NlAttrs.parse(Buffer.concat([hex(`${(4 + stats.length).toString(16)} 00 0a 00`), stats]));
    const svc = decodeService(NlAttrs.parse(Buffer.concat([svcAttrs.subarray(0, 80), encodeAttrs([bytesAttr(10, a.raw(10)!)])])));
    expect(svc.stats).toEqual({
      conns: 10n,
      inPkts: 20n,
      outPkts: 0n,
      inBytes: 10_000_000_000n,
      outBytes: 0n,
      cps: 1n,
      inPps: 2n,
      outPps: 0n,
      inBps: 3n,
      outBps: 0n,
    });
  });

  it('decodes a destination reply from an older kernel without ADDR_FAMILY or tunnel attrs', () => {
    const dest = NlAttrs.parse(
      hex(`14 00 01 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 0a
           06 00 02 00 00 50 00 00   08 00 03 00 02 00 00 00   08 00 04 00 05 00 00 00
           08 00 07 00 03 00 00 00   08 00 08 00 0c 00 00 00   08 00 09 00 01 00 00 00`),
    );
    expect(decodeDestination(dest, 'inet6')).toEqual({
      address: '2001:db8::a',
      port: 80,
      family: 'inet6',
      forward: 'tunnel',
      weight: 5,
      upperThreshold: 0,
      lowerThreshold: 0,
      activeConns: 3,
      inactConns: 12,
      persistConns: 1,
      tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' },
    });
  });

  it('decodes GET_INFO and GET_CONFIG replies', () => {
    expect(decodeInfo(NlAttrs.parse(hex('08 00 01 00 01 02 01 00 08 00 02 00 00 10 00 00')))).toEqual({
      version: '1.2.1',
      versionCode: 0x010201,
      connTabSize: 4096,
    });
    expect(decodeTimeouts(NlAttrs.parse(hex('08 00 04 00 84 03 00 00 08 00 05 00 78 00 00 00 08 00 06 00 2c 01 00 00')))).toEqual({
      tcp: 900,
      tcpFin: 120,
      udp: 300,
    });
  });

  it('fails with TG_IPVS_PROTOCOL on a reply lacking a mandatory attribute', () => {
    try {
      decodeService(NlAttrs.parse(hex('06 00 01 00 02 00 00 00')));
      expect.unreachable();
    } catch (err) {
      expect(isTgError(err, 'TG_IPVS_PROTOCOL')).toBe(true);
    }
  });
});
