// Byte-literal tests for ICMPv6 and Neighbor Discovery (src/wire/icmpv6.ts) and the IPv6 address
// helpers (src/wire/ipv6-addr.ts): parse a literal and check each RFC field, emit and compare with
// the literal, and one test per malformed shape that bind() (or the option walk) must refuse.
// Checksums in the literals were computed independently of tapswitch's code (a separate script
// summing the RFC 8200 §8.1 pseudo-header by hand); the captured frames are the kernel's own.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadFixture, parseHex as h } from '../fixtures/load';
import {
  Icmpv6View, Icmpv6Type, RouterSolicitView, RouterAdvertView, NeighborSolicitView, NeighborAdvertView,
  NdpOptionReader, NdpOptionType, PrefixInfoView, MtuOptionView, RdnssView, RaFlags, NaFlags, PrefixFlags,
  emitRouterSolicit, emitRouterAdvert, emitNeighborSolicit, emitNeighborAdvert, emitLinkLayerAddrOption,
  emitPrefixInfoOption, emitMtuOption, emitRdnssOption, emitIcmpv6Echo, emitIcmpv6Error, finishIcmpv6Checksum,
  Icmpv6UnreachCode,
  parseIpv6Address, ipv6Equal, isUnspecified6, isLoopback6, isMulticast6, isLinkLocal6, isIpv4Mapped6,
  isSolicitedNodeMulticast6, ipv6PrefixEqual, emitSolicitedNodeMulticast6, emitMulticastMac6, ipv6Hash,
  Ipv6View, ipv6ToString, macToString,
} from '../../src/wire';

const a6 = (s: string): Uint8Array => {
  const a = parseIpv6Address(s);
  assert.ok(a !== null, `parseIpv6Address(${s})`);
  return a;
};
const GW_MAC = h('52 55 0a 00 02 02');

/** An "IPv6 header" of just the two addresses the pseudo-header needs: src at 0, dst at 16. */
function addrs(src: string, dst: string): Uint8Array {
  const b = new Uint8Array(32);
  b.set(a6(src), 0);
  b.set(a6(dst), 16);
  return b;
}

describe('ICMPv6 header (RFC 4443 §2.1) on a captured Router Solicitation', () => {
  const frame = loadFixture('ipv6-rs');
  const ip = new Ipv6View();
  assert.ok(ip.bind(frame, 24, frame.length - 24));

  test('parse: type, code, checksum; the pseudo-header checksum verifies', () => {
    const v = new Icmpv6View();
    assert.equal(v.bind(frame, ip.payloadOffset, ip.payloadLength), true);
    assert.equal(v.type, Icmpv6Type.ROUTER_SOLICIT);
    assert.equal(v.code, 0);
    assert.equal(v.checksum, 0xd3bd);
    assert.equal(v.payloadLength, 8);
    assert.equal(v.checksumValid(frame, ip.srcAddrOffset, ip.dstAddrOffset), true);
    assert.equal(ipv6ToString(frame, ip.srcAddrOffset), 'fe80::54:53ff:fe00:64');
  });

  test('a flipped bit anywhere in the message or the addresses breaks the checksum', () => {
    for (const at of [ip.payloadOffset + 9, ip.srcAddrOffset + 15, ip.dstAddrOffset + 1]) {
      const b = frame.slice();
      b[at]! ^= 0x10;
      const v = new Icmpv6View();
      assert.ok(v.bind(b, ip.payloadOffset, ip.payloadLength));
      assert.equal(v.checksumValid(b, ip.srcAddrOffset, ip.dstAddrOffset), false, `flip at ${at}`);
    }
  });

  test('Router Solicitation view (RFC 4861 §4.1) and its Source Link-Layer Address option (§4.6.1)', () => {
    const rs = new RouterSolicitView();
    assert.equal(rs.bind(frame, ip.payloadOffset, ip.payloadLength), true);
    assert.equal(rs.code, 0);
    assert.equal(rs.optionsLength, 8);
    const r = new NdpOptionReader();
    const at = r.findLinkLayerAddr(frame, rs.optionsOffset, rs.optionsLength, NdpOptionType.SOURCE_LL_ADDR);
    assert.equal(macToString(frame, at), '02:54:53:00:00:64');
    assert.equal(r.findLinkLayerAddr(frame, rs.optionsOffset, rs.optionsLength, NdpOptionType.TARGET_LL_ADDR), -1);
    assert.equal(r.validate(frame, rs.optionsOffset, rs.optionsLength), true);
  });
});

describe('Neighbor Solicitation (RFC 4861 §4.3)', () => {
  test('parse the captured DAD probe: target, a Nonce option (RFC 7527), no link-layer address', () => {
    const frame = loadFixture('ipv6-ns-dad');
    const ip = new Ipv6View();
    assert.ok(ip.bind(frame, 24, frame.length - 24));
    assert.equal(isUnspecified6(frame, ip.srcAddrOffset), true);
    assert.equal(isSolicitedNodeMulticast6(frame, ip.dstAddrOffset), true);
    const ns = new NeighborSolicitView();
    assert.equal(ns.bind(frame, ip.payloadOffset, ip.payloadLength), true);
    assert.equal(ipv6ToString(frame, ns.targetAddrOffset), 'fe80::54:53ff:fe00:64');
    const r = new NdpOptionReader();
    r.reset(frame, ns.optionsOffset, ns.optionsLength);
    assert.equal(r.next(), true);
    assert.equal(r.type, NdpOptionType.NONCE);
    assert.equal(r.length, 8);
    assert.equal(r.next(), false);
    assert.equal(r.malformed, false);
    assert.equal(r.findLinkLayerAddr(frame, ns.optionsOffset, ns.optionsLength, NdpOptionType.SOURCE_LL_ADDR), -1);
    const v = new Icmpv6View();
    assert.ok(v.bind(frame, ip.payloadOffset, ip.payloadLength));
    assert.equal(v.checksumValid(frame, ip.srcAddrOffset, ip.dstAddrOffset), true);
  });

  // fe80::2 asks ff02::1:ff12:3456 who has fd00::5054:ff:fe12:3456, with its Source Link-Layer Address.
  const literal = h(`87 00 67 9f 00 00 00 00  fd 00 00 00 00 00 00 00 50 54 00 ff fe 12 34 56
    01 01 52 55 0a 00 02 02`);
  const ips = addrs('fe80::2', 'ff02::1:ff12:3456');

  test('emit equals the literal (checksum included)', () => {
    const b = new Uint8Array(32).fill(0xee);
    let n = emitNeighborSolicit(b, 0, a6('fd00::5054:ff:fe12:3456'), 0);
    n += emitLinkLayerAddrOption(b, n, NdpOptionType.SOURCE_LL_ADDR, GW_MAC, 0);
    finishIcmpv6Checksum(b, 0, n, ips, 0, 16);
    assert.deepEqual(b, literal);
  });

  test('parse the literal', () => {
    const ns = new NeighborSolicitView();
    assert.equal(ns.bind(literal, 0, literal.length), true);
    assert.equal(ipv6ToString(literal, ns.targetAddrOffset), 'fd00::5054:ff:fe12:3456');
    const r = new NdpOptionReader();
    assert.equal(macToString(literal, r.findLinkLayerAddr(literal, ns.optionsOffset, ns.optionsLength, NdpOptionType.SOURCE_LL_ADDR)), '52:55:0a:00:02:02');
  });
});

describe('Neighbor Advertisement (RFC 4861 §4.4)', () => {
  // fd00::2 answers: Router, Solicited, Override; Target Link-Layer Address 52:55:0a:00:02:02.
  const literal = h(`88 00 bc 88 e0 00 00 00  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02
    02 01 52 55 0a 00 02 02`);
  const ips = addrs('fd00::2', 'fd00::5054:ff:fe12:3456');

  test('emit equals the literal', () => {
    const b = new Uint8Array(32);
    let n = emitNeighborAdvert(b, 0, NaFlags.ROUTER | NaFlags.SOLICITED | NaFlags.OVERRIDE, a6('fd00::2'), 0);
    n += emitLinkLayerAddrOption(b, n, NdpOptionType.TARGET_LL_ADDR, GW_MAC, 0);
    finishIcmpv6Checksum(b, 0, n, ips, 0, 16);
    assert.deepEqual(b, literal);
  });

  test('parse: flags, target, option; checksum verifies', () => {
    const na = new NeighborAdvertView();
    assert.equal(na.bind(literal, 0, literal.length), true);
    assert.equal(na.routerFlag, true);
    assert.equal(na.solicitedFlag, true);
    assert.equal(na.overrideFlag, true);
    assert.equal(ipv6ToString(literal, na.targetAddrOffset), 'fd00::2');
    const v = new Icmpv6View();
    assert.ok(v.bind(literal, 0, literal.length));
    assert.equal(v.checksumValid(ips, 0, 16), true);
    const only = literal.slice();
    only[4] = NaFlags.SOLICITED;
    assert.ok(na.bind(only, 0, only.length));
    assert.deepEqual([na.routerFlag, na.solicitedFlag, na.overrideFlag], [false, true, false]);
  });
});

describe('Router Advertisement (RFC 4861 §4.2) with MTU, Prefix Information and RDNSS (RFC 8106 §5.1)', () => {
  // From fe80::2 to ff02::1: hop limit 64, no M/O, router lifetime 1800 s, reachable/retrans
  // unspecified; SLLA; MTU 1500; prefix fd00::/64 on-link + autonomous, valid 30 d, preferred
  // 7 d; RDNSS fd00::3 for 600 s.
  const literal = h(`86 00 a9 d3 40 00 07 08 00 00 00 00 00 00 00 00
    01 01 52 55 0a 00 02 02
    05 01 00 00 00 00 05 dc
    03 04 40 c0 00 27 8d 00 00 09 3a 80 00 00 00 00 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    19 03 00 00 00 00 02 58 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03`);
  const ips = addrs('fe80::2', 'ff02::1');

  test('emit equals the literal', () => {
    const b = new Uint8Array(literal.length);
    let n = emitRouterAdvert(b, 0, 64, 0, 1800, 0, 0);
    n += emitLinkLayerAddrOption(b, n, NdpOptionType.SOURCE_LL_ADDR, GW_MAC, 0);
    n += emitMtuOption(b, n, 1500);
    n += emitPrefixInfoOption(b, n, 64, PrefixFlags.ON_LINK | PrefixFlags.AUTONOMOUS, 2_592_000, 604_800, a6('fd00::'), 0);
    n += emitRdnssOption(b, n, 600, [a6('fd00::3')]);
    assert.equal(n, literal.length);
    finishIcmpv6Checksum(b, 0, n, ips, 0, 16);
    assert.deepEqual(b, literal);
  });

  test('parse: every field and every option', () => {
    const ra = new RouterAdvertView();
    assert.equal(ra.bind(literal, 0, literal.length), true);
    assert.equal(ra.curHopLimit, 64);
    assert.equal(ra.managedAddrConfig, false);
    assert.equal(ra.otherConfig, false);
    assert.equal(ra.routerLifetime, 1800);
    assert.equal(ra.reachableTime, 0);
    assert.equal(ra.retransTimer, 0);
    const r = new NdpOptionReader();
    r.reset(literal, ra.optionsOffset, ra.optionsLength);
    const seen: number[] = [];
    while (r.next()) {
      seen.push(r.type);
      if (r.type === NdpOptionType.PREFIX_INFO) {
        const p = new PrefixInfoView();
        assert.equal(p.bind(literal, r.offset, r.length), true);
        assert.equal(p.prefixLength, 64);
        assert.equal(p.onLink, true);
        assert.equal(p.autonomous, true);
        assert.equal(p.validLifetime, 2_592_000);
        assert.equal(p.preferredLifetime, 604_800);
        assert.equal(ipv6ToString(literal, p.prefixOffset), 'fd00::');
      } else if (r.type === NdpOptionType.MTU) {
        const m = new MtuOptionView();
        assert.equal(m.bind(literal, r.offset, r.length), true);
        assert.equal(m.mtu, 1500);
      } else if (r.type === NdpOptionType.RDNSS) {
        const d = new RdnssView();
        assert.equal(d.bind(literal, r.offset, r.length), true);
        assert.equal(d.lifetime, 600);
        assert.equal(d.addressCount, 1);
        assert.equal(ipv6ToString(literal, d.addressOffset(0)), 'fd00::3');
      }
    }
    assert.equal(r.malformed, false);
    assert.deepEqual(seen, [NdpOptionType.SOURCE_LL_ADDR, NdpOptionType.MTU, NdpOptionType.PREFIX_INFO, NdpOptionType.RDNSS]);
    const v = new Icmpv6View();
    assert.ok(v.bind(literal, 0, literal.length));
    assert.equal(v.checksumValid(ips, 0, 16), true);
  });

  test('M and O flags (§4.2) are read from their bits; reserved bits are not emitted', () => {
    const b = new Uint8Array(16);
    emitRouterAdvert(b, 0, 0, RaFlags.MANAGED | RaFlags.OTHER | 0x3f, 0, 0, 0);
    assert.equal(b[5], 0xc0);
    const ra = new RouterAdvertView();
    assert.ok(ra.bind(b, 0, 16));
    assert.deepEqual([ra.managedAddrConfig, ra.otherConfig], [true, true]);
  });

  test('RDNSS with two servers: length 5 (RFC 8106 §5.1)', () => {
    const b = new Uint8Array(40);
    assert.equal(emitRdnssOption(b, 0, 0xffffffff, [a6('fd00::3'), a6('2001:db8::53')]), 40);
    assert.deepEqual(b.subarray(0, 8), h('19 05 00 00 ff ff ff ff'));
    const d = new RdnssView();
    assert.ok(d.bind(b, 0, 40));
    assert.equal(d.addressCount, 2);
    assert.equal(ipv6ToString(b, d.addressOffset(1)), '2001:db8::53');
  });
});

describe('Router Solicitation, echo and error emitters', () => {
  test('RS (RFC 4861 §4.1) from fe80::5054:ff:fe12:3456 to ff02::2 equals the literal', () => {
    const b = new Uint8Array(8).fill(0xff);
    assert.equal(emitRouterSolicit(b, 0), 8);
    finishIcmpv6Checksum(b, 0, 8, addrs('fe80::5054:ff:fe12:3456', 'ff02::2'), 0, 16);
    assert.deepEqual(b, h('85 00 f9 7a 00 00 00 00'));
  });

  test('echo request (RFC 4443 §4.1) equals the literal and parses back', () => {
    const b = new Uint8Array(11);
    emitIcmpv6Echo(b, 0, Icmpv6Type.ECHO_REQUEST, 0x1234, 1);
    b.set([0x68, 0x69, 0x21], 8);
    const ips = addrs('fd00::5054:ff:fe12:3456', 'fd00::2');
    finishIcmpv6Checksum(b, 0, 11, ips, 0, 16);
    assert.deepEqual(b, h('80 00 66 5b 12 34 00 01 68 69 21'));
    const v = new Icmpv6View();
    assert.ok(v.bind(b, 0, 11));
    assert.deepEqual([v.type, v.code, v.identifier, v.sequence, v.payloadOffset, v.payloadLength], [128, 0, 0x1234, 1, 8, 3]);
    assert.equal(v.checksumValid(ips, 0, 16), true);
  });

  test('error header (RFC 4443 §3.2 Packet Too Big carries the MTU in the 32-bit field)', () => {
    const b = new Uint8Array(8).fill(0xaa);
    emitIcmpv6Error(b, 0, Icmpv6Type.PACKET_TOO_BIG, 0, 1280);
    assert.deepEqual(b, h('02 00 00 00 00 00 05 00'));
    emitIcmpv6Error(b, 0, Icmpv6Type.DEST_UNREACHABLE, Icmpv6UnreachCode.PORT);
    assert.deepEqual(b, h('01 04 00 00 00 00 00 00'));
    const v = new Icmpv6View();
    assert.ok(v.bind(b, 0, 8));
    assert.equal(v.rest, 0);
  });
});

describe('malformed ICMPv6 / NDP: each refused', () => {
  const rs = h('85 00 00 00 00 00 00 00');
  test('ICMPv6 shorter than 8 bytes', () => {
    assert.equal(new Icmpv6View().bind(rs, 0, 7), false);
  });
  test('range past the end of the buffer', () => {
    assert.equal(new Icmpv6View().bind(rs, 1, 8), false);
    assert.equal(new RouterSolicitView().bind(rs, 1, 8), false);
  });
  test('RS shorter than 8 bytes', () => {
    assert.equal(new RouterSolicitView().bind(rs, 0, 6), false);
  });
  test('a view bound to another type', () => {
    assert.equal(new RouterSolicitView().bind(h('86 00 00 00 00 00 00 00'), 0, 8), false);
    assert.equal(new NeighborSolicitView().bind(new Uint8Array(24).fill(0x88, 0, 1), 0, 24), false);
    assert.equal(new NeighborAdvertView().bind(new Uint8Array(24).fill(0x87, 0, 1), 0, 24), false);
    assert.equal(new RouterAdvertView().bind(new Uint8Array(16).fill(0x85, 0, 1), 0, 16), false);
  });
  test('RA shorter than 16 bytes', () => {
    const b = new Uint8Array(15); b[0] = 134;
    assert.equal(new RouterAdvertView().bind(b, 0, 15), false);
  });
  test('NS shorter than 24 bytes (no full target)', () => {
    const b = new Uint8Array(23); b[0] = 135;
    assert.equal(new NeighborSolicitView().bind(b, 0, 23), false);
  });
  test('NA shorter than 24 bytes', () => {
    const b = new Uint8Array(23); b[0] = 136;
    assert.equal(new NeighborAdvertView().bind(b, 0, 23), false);
  });
  test('option with length 0 (RFC 4861 §4.6: discard)', () => {
    const r = new NdpOptionReader();
    assert.equal(r.validate(h('01 00 52 55 0a 00 02 02'), 0, 8), false);
    assert.equal(r.findLinkLayerAddr(h('01 00 52 55 0a 00 02 02'), 0, 8, 1), -1);
  });
  test('option running past the message', () => {
    assert.equal(new NdpOptionReader().validate(h('01 02 52 55 0a 00 02 02'), 0, 8), false);
  });
  test('a single trailing byte after a good option', () => {
    assert.equal(new NdpOptionReader().validate(h('01 01 52 55 0a 00 02 02 05'), 0, 9), false);
  });
  test('an options range past the buffer', () => {
    assert.equal(new NdpOptionReader().validate(h('01 01 52 55 0a 00 02 02'), 0, 16), false);
  });
  test('a link-layer address option of another length is not an Ethernet address', () => {
    const b = h('01 02 52 55 0a 00 02 02 00 00 00 00 00 00 00 00');
    const r = new NdpOptionReader();
    assert.equal(r.validate(b, 0, 16), true);
    assert.equal(r.findLinkLayerAddr(b, 0, 16, 1), -1);
  });
  test('Prefix Information with a length other than 4', () => {
    const b = new Uint8Array(32); b[0] = 3; b[1] = 3;
    assert.equal(new PrefixInfoView().bind(b, 0, 32), false);
    b[1] = 4;
    assert.equal(new PrefixInfoView().bind(b, 0, 31), false);
    assert.equal(new PrefixInfoView().bind(b, 0, 32), true);
  });
  test('MTU option with a length other than 1', () => {
    assert.equal(new MtuOptionView().bind(h('05 02 00 00 00 00 05 dc 00 00 00 00 00 00 00 00'), 0, 16), false);
    assert.equal(new MtuOptionView().bind(h('05 01 00 00 00 00 05'), 0, 7), false);
  });
  test('RDNSS without addresses (length 1), an even length, or a length past the range', () => {
    const b = new Uint8Array(40); b[0] = 25;
    b[1] = 1; assert.equal(new RdnssView().bind(b, 0, 40), false);
    b[1] = 4; assert.equal(new RdnssView().bind(b, 0, 40), false);
    b[1] = 5; assert.equal(new RdnssView().bind(b, 0, 32), false);
    b[1] = 3; assert.equal(new RdnssView().bind(b, 0, 40), true);
  });
});

describe('IPv6 addresses (RFC 4291)', () => {
  test('parseIpv6Address: the text forms of §2.2', () => {
    assert.deepEqual(a6('fd00::2'), h('fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02'));
    assert.deepEqual(a6('::'), new Uint8Array(16));
    assert.deepEqual(a6('::1'), h('00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01'));
    assert.deepEqual(a6('2001:DB8:0:0:8:800:200C:417A'), h('20 01 0d b8 00 00 00 00 00 08 08 00 20 0c 41 7a'));
    assert.deepEqual(a6('fe80::'), h('fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00'));
    assert.deepEqual(a6('::ffff:192.0.2.1'), h('00 00 00 00 00 00 00 00 00 00 ff ff c0 00 02 01'));
    assert.deepEqual(a6('1:2:3:4:5:6:1.2.3.4'), h('00 01 00 02 00 03 00 04 00 05 00 06 01 02 03 04'));
  });

  test('parseIpv6Address: refuses everything else', () => {
    for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1',
      'fe80::1%eth0', 'fd00::/64', '[::1]', '::1.2.3', '::1.2.3.256', '::01.2.3.4', '1:2:3:4:5:6:7::8', '1.2.3.4']) {
      assert.equal(parseIpv6Address(bad), null, bad);
    }
  });

  test('classes', () => {
    assert.equal(isUnspecified6(a6('::'), 0), true);
    assert.equal(isUnspecified6(a6('::1'), 0), false);
    assert.equal(isLoopback6(a6('::1'), 0), true);
    assert.equal(isLoopback6(a6('::2'), 0), false);
    assert.equal(isMulticast6(a6('ff02::1'), 0), true);
    assert.equal(isMulticast6(a6('fe80::1'), 0), false);
    assert.equal(isLinkLocal6(a6('fe80::2'), 0), true);
    assert.equal(isLinkLocal6(a6('febf::2'), 0), true);
    assert.equal(isLinkLocal6(a6('fec0::2'), 0), false);
    assert.equal(isIpv4Mapped6(a6('::ffff:10.0.2.2'), 0), true);
    assert.equal(isIpv4Mapped6(a6('::fffe:10.0.2.2'), 0), false);
    assert.equal(isSolicitedNodeMulticast6(a6('ff02::1:ff12:3456'), 0), true);
    assert.equal(isSolicitedNodeMulticast6(a6('ff02::1:fe12:3456'), 0), false);
    assert.equal(isSolicitedNodeMulticast6(a6('ff02::1'), 0), false);
    assert.equal(ipv6PrefixEqual(a6('fd00::5054:ff:fe12:3456'), 0, a6('fd00::'), 0, 64), true);
    assert.equal(ipv6PrefixEqual(a6('fd00:0:0:1::1'), 0, a6('fd00::'), 0, 64), false);
    assert.equal(ipv6Equal(a6('fd00::2'), 0, a6('fd00:0::2'), 0), true);
    assert.equal(ipv6Equal(a6('fd00::2'), 0, a6('fd00::3'), 0), false);
  });

  test('solicited-node group (§2.7.1) and its Ethernet MAC (RFC 2464 §7)', () => {
    const g = new Uint8Array(16);
    emitSolicitedNodeMulticast6(g, 0, a6('fd00::5054:ff:fe12:3456'), 0);
    assert.deepEqual(g, a6('ff02::1:ff12:3456'));
    const m = new Uint8Array(6);
    emitMulticastMac6(m, 0, g, 0);
    assert.equal(macToString(m), '33:33:ff:12:34:56');
    emitMulticastMac6(m, 0, a6('ff02::1'), 0);
    assert.equal(macToString(m), '33:33:00:00:00:01');
  });

  test('ipv6Hash: a small integer, equal for equal addresses, spread over different ones', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const a = a6(`fd00::${i.toString(16)}`);
      const x = ipv6Hash(a, 0);
      assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 30);
      assert.equal(ipv6Hash(a6(`fd00:0::${i.toString(16)}`), 0), x);
      seen.add(x);
    }
    assert.ok(seen.size > 990, `only ${seen.size} distinct hashes of 1000`);
  });
});
