import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { Router, type RouterConfig, ARP_REQUESTS_PER_SECOND } from '../../src/gateway/router';
import { Switch, TapPort } from '../../src/switch/switch';
import { MemoryDevice } from '../../src/link/memory';
import { parseIpv4, parseMac } from '../../src/wire/addr';
import { ArpOp, emitArp } from '../../src/wire/arp';
import { checksum, pseudoHeaderSum4 } from '../../src/wire/checksum';
import { emitEthernet, EtherType, EthernetView } from '../../src/wire/ethernet';
import type { Frame } from '../../src/wire/frame';
import { emitIcmpEcho, finishIcmpChecksum, IcmpType } from '../../src/wire/icmp';
import { emitIpv4Header, IpProtocol, Ipv4View, IPV4_HDR_LEN } from '../../src/wire/ipv4';
import { emitTcpHeader, TcpFlags } from '../../src/wire/tcp';
import { emitUdpHeader } from '../../src/wire/udp';
import { setU16 } from '../../src/wire/bytes';
import { BCAST, DNS, ETH, gatewayOnMemory, GW, GW_MAC, IP, L4, ROUTER_CFG } from '../helpers/frames';
import { emitIpv6Header, ipv6ToString, Ipv6View } from '../../src/wire/ipv6';
import { emitMulticastMac6, parseIpv6Address } from '../../src/wire/ipv6-addr';
import {
  emitIcmpv6Echo, emitLinkLayerAddrOption, emitNeighborAdvert, emitNeighborSolicit, emitRouterSolicit, finishIcmpv6Checksum,
  Icmpv6Type, Icmpv6View, MtuOptionView, NaFlags, NdpOptionReader, NdpOptionType, NeighborAdvertView, RouterAdvertView,
} from '../../src/wire/icmpv6';
import { macToString } from '../../src/wire/addr';
import { loadFixture as loadFixtureSync } from '../fixtures/load';

const ip = (s: string): number => parseIpv4(s)!;
const mac = (s: string): Uint8Array => parseMac(s)!;
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const GUEST_MAC = mac('5a:94:ef:e4:0c:ee');
const ZERO = new Uint8Array(6);
const GUEST = ip('10.0.2.100');

const CFG = ROUTER_CFG;

function setup(cfg: RouterConfig = CFG) {
  const forwarded: Array<{ proto: number; src: number; dst: number; len: number }> = [];
  const g = gatewayOnMemory(cfg, 1_000_000, (f: Frame, eth: EthernetView, v: Ipv4View) => {
    assert.equal(eth.etherType, EtherType.IPV4);
    assert.ok(v.b === f.buf);
    forwarded.push({ proto: v.protocol, src: v.srcAddr, dst: v.dstAddr, len: v.totalLength });
  });
  return { ...g, forwarded };
}

function arpFrame(oper: number, sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number, ethDst = BCAST): Uint8Array {
  const b = new Uint8Array(IP + 28);
  emitEthernet(b, ETH, ethDst, sha, EtherType.ARP);
  emitArp(b, IP, oper, sha, spa, tha, tpa);
  return b;
}

function ipv4Frame(proto: number, src: number, dst: number, l4: Uint8Array, dstMac = GW_MAC, srcMac = GUEST_MAC): Uint8Array {
  const b = new Uint8Array(L4 + l4.length);
  emitEthernet(b, ETH, dstMac, srcMac, EtherType.IPV4);
  emitIpv4Header(b, IP, IPV4_HDR_LEN + l4.length, 0x4d2, 64, proto, src, dst);
  b.set(l4, L4);
  return b;
}

function echoRequest(id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  emitIcmpEcho(m, 0, IcmpType.ECHO_REQUEST, id, seq);
  m.set(data, 8);
  finishIcmpChecksum(m, 0, m.length);
  return m;
}

function tcpSyn(src: number, dst: number, sport: number, dport: number): Uint8Array {
  const t = new Uint8Array(20);
  emitTcpHeader(t, 0, sport, dport, 12345, 0, TcpFlags.SYN, 64240);
  setU16(t, 16, checksum(t, 0, 20, pseudoHeaderSum4(src, dst, IpProtocol.TCP, 20)));
  return t;
}

function udpDatagram(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  emitUdpHeader(u, 0, sport, dport, u.length);
  u.set(payload, 8);
  return u;
}

test('ARP request for the gateway: exact reply bytes', () => {
  const { dev, counters } = setup();
  dev.inject(arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, GW));
  assert.equal(dev.sent.length, 1);
  assert.equal(toHex(dev.sent[0]!), toHex(hex(`
    00000000000000000000
    5a94efe40cee 52550a000202 0806
    0001 0800 06 04 0002 52550a000202 0a000202 5a94efe40cee 0a000264`)));
  assert.equal(counters.arp_reply_sent, 1);
});

test('ARP request for the DNS address is answered; not when DNS is disabled', () => {
  {
    const { dev } = setup();
    dev.inject(arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, DNS));
    assert.equal(dev.sent.length, 1);
    assert.equal(toHex(dev.sent[0]!.subarray(IP)),
      '000108000604000252550a0002020a0002035a94efe40cee0a000264');
  }
  {
    const { dev, counters } = setup({ ...CFG, dns: 0 });
    dev.inject(arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, DNS));
    assert.equal(dev.sent.length, 0);
    assert.equal(counters.arp_request_ignored, 1);
  }
});

test('ARP requests for other addresses are ignored (only gateway and DNS exist)', () => {
  const { dev, counters } = setup();
  dev.inject(arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, ip('10.0.2.50')));
  dev.inject(arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, ip('198.51.100.2')));
  dev.inject(arpFrame(ArpOp.REPLY, GUEST_MAC, GUEST, GW_MAC, GW, GW_MAC));
  dev.inject(arpFrame(7, GUEST_MAC, GUEST, ZERO, GW));
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.arp_request_ignored, 2);
  assert.equal(counters.arp_reply_rx, 1);
  assert.equal(counters.arp_bad_oper, 1);
});

test('ARP table: learned from ARP and IPv4 sources in the subnet; macFor asks when unknown', () => {
  const { dev, router, counters, advance } = setup();
  assert.equal(router.macFor(GUEST), null);
  assert.equal(dev.sent.length, 1, 'an ARP request went out');
  assert.equal(toHex(dev.sent[0]!), toHex(hex(`
    00000000000000000000
    ffffffffffff 52550a000202 0806
    0001 0800 06 04 0001 52550a000202 0a000202 000000000000 0a000264`)));
  assert.equal(router.macFor(GUEST), null);
  assert.equal(dev.sent.length, 1, 'rate limited per address');
  advance(1000);
  assert.equal(router.macFor(GUEST), null);
  assert.equal(dev.sent.length, 2);
  // The guest answers.
  dev.inject(arpFrame(ArpOp.REPLY, GUEST_MAC, GUEST, GW_MAC, GW, GW_MAC));
  assert.deepEqual(router.macFor(GUEST), GUEST_MAC);
  // Off-link: never ARPed.
  assert.equal(router.macFor(ip('8.8.8.8')), null);
  assert.equal(router.macFor(GW), null);
  assert.equal(dev.sent.length, 2);
  assert.equal(counters.arp_lookup_offlink, 2);
  // Learned from an IPv4 source; a source outside the subnet is not learned.
  const other = mac('02:00:00:00:00:99');
  dev.inject(ipv4Frame(IpProtocol.TCP, ip('10.0.2.101'), ip('198.51.100.2'), tcpSyn(ip('10.0.2.101'), ip('198.51.100.2'), 40000, 80), GW_MAC, other));
  dev.inject(ipv4Frame(IpProtocol.TCP, ip('192.0.2.1'), ip('198.51.100.2'), tcpSyn(ip('192.0.2.1'), ip('198.51.100.2'), 40000, 80), GW_MAC, other));
  assert.deepEqual(router.macFor(ip('10.0.2.101')), other);
  assert.deepEqual(router.arpEntries().map(([a]) => a).sort(), [GUEST, ip('10.0.2.101')]);
  // A changed MAC replaces the entry.
  dev.inject(arpFrame(ArpOp.REQUEST, other, GUEST, ZERO, GW));
  assert.deepEqual(router.macFor(GUEST), other);
  assert.equal(counters.arp_table_updated, 1);
});

test('ARP requests from macFor are capped overall', () => {
  const { dev, router, counters } = setup({ ...CFG, network: ip('10.0.0.0'), prefixLength: 16 });
  for (let i = 0; i < 200; i++) router.macFor(ip('10.0.0.0') + 1000 + i);
  assert.equal(dev.sent.length, ARP_REQUESTS_PER_SECOND);
  assert.equal(counters.arp_request_rate_limited, 200 - ARP_REQUESTS_PER_SECOND);
});

test('the ARP table is bounded', () => {
  let t = 0;
  const sw = new Switch({ now: () => t });
  const dev = new MemoryDevice('g');
  const p = new TapPort(1, dev);
  sw.addPort(p); p.start(sw);
  const router = new Router({ ...CFG, network: ip('10.0.0.0'), prefixLength: 16 }, { switch: sw, onForward: () => {}, arpTableSize: 10, now: () => t });
  for (let i = 0; i < 100; i++) {
    const m = new Uint8Array([2, 0, 0, 0, 1, i]);
    dev.inject(arpFrame(ArpOp.REQUEST, m, ip('10.0.5.0') + i, ZERO, GW));
    t += 10;
  }
  assert.equal(router.arpEntries().length, 10);
  assert.equal(router.counters.arp_table_evicted, 90);
});

function verifyEchoReply(f: Uint8Array, from: number, id: number, seq: number, data: Uint8Array): void {
  assert.equal(toHex(f.subarray(0, ETH)), '00'.repeat(10), 'vnet header of zeros');
  assert.equal(toHex(f.subarray(ETH, ETH + 6)), toHex(GUEST_MAC));
  assert.equal(toHex(f.subarray(ETH + 6, ETH + 12)), toHex(GW_MAC));
  const v = new Ipv4View();
  assert.ok(v.bind(f, IP, f.length - IP));
  assert.ok(v.headerChecksumValid);
  assert.equal(v.srcAddr, from);
  assert.equal(v.dstAddr, GUEST);
  assert.equal(v.protocol, IpProtocol.ICMP);
  assert.equal(v.totalLength, f.length - IP);
  const o = v.payloadOffset;
  assert.equal(f[o], IcmpType.ECHO_REPLY);
  assert.equal(f[o + 1], 0);
  assert.equal(checksum(f, o, v.payloadLength), 0, 'ICMP checksum');
  assert.equal((f[o + 4]! << 8) | f[o + 5]!, id);
  assert.equal((f[o + 6]! << 8) | f[o + 7]!, seq);
  assert.equal(toHex(f.subarray(o + 8)), toHex(data));
}

test('ICMP echo to the gateway and DNS addresses is answered', () => {
  const { dev, counters, forwarded } = setup();
  const data = new TextEncoder().encode('tapswitch ping payload 0123456789');
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, GW, echoRequest(0x1234, 7, data)));
  assert.equal(dev.sent.length, 1);
  verifyEchoReply(dev.sent[0]!, GW, 0x1234, 7, data);
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, DNS, echoRequest(0xbeef, 65535, data.subarray(0, 5))));
  verifyEchoReply(dev.sent[1]!, DNS, 0xbeef, 65535, data.subarray(0, 5));
  // A large ping (odd length) also works.
  const big = new Uint8Array(9001).map((_, i) => i * 7);
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, GW, echoRequest(1, 2, big)));
  verifyEchoReply(dev.sent[2]!, GW, 1, 2, big);
  assert.equal(counters.icmp_echo_reply_sent, 3);
  assert.equal(forwarded.length, 0);
});

test('ICMP echo with IPv4 options is answered; bad ICMP checksum and non-echo ICMP dropped', () => {
  const { dev, counters } = setup();
  const data = new Uint8Array([1, 2, 3, 4]);
  const icmp = echoRequest(9, 9, data);
  const b = new Uint8Array(IP + 24 + icmp.length);
  emitEthernet(b, ETH, GW_MAC, GUEST_MAC, EtherType.IPV4);
  emitIpv4Header(b, IP, 24 + icmp.length, 1, 64, IpProtocol.ICMP, GUEST, GW);
  b[IP] = 0x46; // IHL 6: four bytes of options (NOP NOP NOP EOL)
  b.set([1, 1, 1, 0], IP + 20);
  setU16(b, IP + 10, 0);
  setU16(b, IP + 10, checksum(b, IP, 24));
  b.set(icmp, IP + 24);
  dev.inject(b);
  assert.equal(dev.sent.length, 1);
  verifyEchoReply(dev.sent[0]!, GW, 9, 9, data);

  const bad = echoRequest(9, 9, data);
  bad[9] = bad[9]! ^ 0xff;
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, GW, bad));
  const unreach = new Uint8Array(8 + 28);
  unreach[0] = IcmpType.DEST_UNREACHABLE;
  finishIcmpChecksum(unreach, 0, unreach.length);
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, GW, unreach));
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, GW, new Uint8Array(4)));
  assert.equal(dev.sent.length, 1);
  assert.equal(counters.icmp_bad_checksum, 1);
  assert.equal(counters.icmp_to_gateway_dropped, 1);
  assert.equal(counters.icmp_malformed, 1);
});

test('onForward gets TCP to 198.51.100.2, TCP/UDP to the gateway and DNS, ICMP elsewhere', () => {
  const { dev, forwarded, counters } = setup();
  const dst = ip('198.51.100.2');
  dev.inject(ipv4Frame(IpProtocol.TCP, GUEST, dst, tcpSyn(GUEST, dst, 40000, 80)));
  assert.deepEqual(forwarded, [{ proto: IpProtocol.TCP, src: GUEST, dst, len: 40 }]);
  dev.inject(ipv4Frame(IpProtocol.TCP, GUEST, GW, tcpSyn(GUEST, GW, 40001, 22)));
  dev.inject(ipv4Frame(IpProtocol.UDP, GUEST, DNS, udpDatagram(5353, 53, new Uint8Array(12))));
  dev.inject(ipv4Frame(IpProtocol.UDP, GUEST, GW, udpDatagram(5353, 53, new Uint8Array(12))));
  dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, dst, echoRequest(1, 1, new Uint8Array(8))));
  dev.inject(ipv4Frame(IpProtocol.UDP, GUEST, dst, udpDatagram(68, 67, new Uint8Array(12))));
  assert.deepEqual(forwarded.map((f) => [f.proto, f.dst]), [
    [IpProtocol.TCP, dst], [IpProtocol.TCP, GW], [IpProtocol.UDP, DNS], [IpProtocol.UDP, GW],
    [IpProtocol.ICMP, dst], [IpProtocol.UDP, dst],
  ]);
  assert.equal(counters.ipv4_forwarded, 6);
  assert.equal(dev.sent.length, 0);
  // With DNS disabled, the DNS address is ordinary traffic, ICMP included.
  const s2 = setup({ ...CFG, dns: 0 });
  s2.dev.inject(ipv4Frame(IpProtocol.ICMP, GUEST, DNS, echoRequest(1, 1, new Uint8Array(8))));
  assert.equal(s2.forwarded.length, 1);
  assert.equal(s2.dev.sent.length, 0);
});

test('broadcast, multicast, other protocols to the gateway, IPv6 and other ethertypes are dropped and counted', () => {
  const { dev, forwarded, counters } = setup();
  dev.inject(ipv4Frame(IpProtocol.UDP, GUEST, ip('255.255.255.255'), udpDatagram(5000, 5000, new Uint8Array(4)), BCAST));
  dev.inject(ipv4Frame(IpProtocol.UDP, GUEST, ip('10.0.2.255'), udpDatagram(137, 137, new Uint8Array(4)), BCAST));
  dev.inject(ipv4Frame(IpProtocol.UDP, GUEST, ip('224.0.0.251'), udpDatagram(5353, 5353, new Uint8Array(4)), mac('01:00:5e:00:00:fb')));
  dev.inject(ipv4Frame(47, GUEST, GW, new Uint8Array(8)));
  const v6 = new Uint8Array(IP + 40);
  emitEthernet(v6, ETH, mac('33:33:00:00:00:01'), GUEST_MAC, EtherType.IPV6);
  dev.inject(v6);
  const other = new Uint8Array(IP + 40);
  emitEthernet(other, ETH, GW_MAC, GUEST_MAC, 0x88cc);
  dev.inject(other);
  // A unicast frame for some other station (flooded as unknown unicast) is not ours.
  dev.inject(ipv4Frame(IpProtocol.TCP, GUEST, ip('198.51.100.2'), tcpSyn(GUEST, ip('198.51.100.2'), 1, 2), mac('02:00:00:00:00:01')));
  assert.equal(forwarded.length, 0);
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.ipv4_broadcast_dropped, 2);
  assert.equal(counters.ipv4_multicast_dropped, 1);
  assert.equal(counters.ipv4_to_gateway_dropped, 1);
  assert.equal(counters.gw_ipv6_dropped, 1);
  assert.equal(counters.gw_ethertype_dropped, 1);
  assert.equal(counters.gw_not_for_us, 1);
});

test('malformed frames are counted per reason, never thrown', () => {
  const { dev, forwarded, counters } = setup();
  const dst = ip('198.51.100.2');
  const good = ipv4Frame(IpProtocol.TCP, GUEST, dst, tcpSyn(GUEST, dst, 40000, 80));
  // bad header checksum
  const badSum = good.slice(); badSum[IP + 10] = badSum[IP + 10]! ^ 1;
  // total length beyond the frame
  const longTl = good.slice(); setU16(longTl, IP + 2, 400); setU16(longTl, IP + 10, 0); setU16(longTl, IP + 10, checksum(longTl, IP, 20));
  // IHL < 5
  const shortIhl = good.slice(); shortIhl[IP] = 0x44;
  // version 6 inside an IPv4 ethertype
  const v6in4 = good.slice(); v6in4[IP] = 0x65;
  // truncated IPv4 header
  const trunc = good.slice(0, IP + 12);
  // fragment (MF set)
  const frag = good.slice(); setU16(frag, IP + 6, 0x2000); setU16(frag, IP + 10, 0); setU16(frag, IP + 10, checksum(frag, IP, 20));
  // later fragment (offset != 0)
  const frag2 = good.slice(); setU16(frag2, IP + 6, 0x0010); setU16(frag2, IP + 10, 0); setU16(frag2, IP + 10, checksum(frag2, IP, 20));
  // truncated ARP
  const arpShort = arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, GW).slice(0, IP + 20);
  // ARP for a non-IPv4 protocol type
  const arpBad = arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, GW); arpBad[IP + 2] = 0x86;
  // runt
  const runt = new Uint8Array(ETH + 10);
  // DHCP with a bad UDP length
  const badUdp = ipv4Frame(IpProtocol.UDP, 0, 0xffffffff, udpDatagram(68, 67, new Uint8Array(4)), BCAST); setU16(badUdp, L4 + 4, 500);
  for (const f of [badSum, longTl, shortIhl, v6in4, trunc, frag, frag2, arpShort, arpBad, runt, badUdp]) dev.inject(f);
  assert.equal(forwarded.length, 0);
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.ipv4_bad_checksum, 1);
  assert.equal(counters.ipv4_malformed, 4);
  assert.equal(counters.ipv4_fragment_dropped, 2);
  assert.equal(counters.arp_malformed, 2);
  assert.equal(counters.udp_malformed, 1);
  assert.equal(counters.switch_runt_dropped, 1);
  // Ethernet padding after the IPv4 packet is fine.
  const padded = new Uint8Array(good.length + 6); padded.set(good);
  dev.inject(padded);
  assert.equal(forwarded.length, 1);
});

test('fuzz: random and mutated frames never throw', () => {
  const { sw, dev, router } = setup();
  const dst = ip('198.51.100.2');
  const seeds = [
    arpFrame(ArpOp.REQUEST, GUEST_MAC, GUEST, ZERO, GW),
    ipv4Frame(IpProtocol.ICMP, GUEST, GW, echoRequest(1, 1, new Uint8Array(16))),
    ipv4Frame(IpProtocol.TCP, GUEST, dst, tcpSyn(GUEST, dst, 40000, 80)),
    ipv4Frame(IpProtocol.UDP, 0, 0xffffffff, udpDatagram(68, 67, new Uint8Array(300)), BCAST),
  ];
  // A plausible DHCP DISCOVER as a seed too.
  const disc = seeds[3]!;
  disc.set([1, 1, 6, 0], L4 + 8);
  disc.set([0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255], L4 + 8 + 236);
  disc.set(GUEST_MAC, L4 + 8 + 28);
  const frameArb = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 400 }),
    fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), fc.boolean())
      .map(([seed, muts, cut, fixSum]) => {
        const f = seed.slice(0, Math.max(0, seed.length - (cut % 8 === 0 ? cut % seed.length : 0)));
        // Mutate mostly past the Ethernet header, where the interesting parsing is.
        for (const [pos, val] of muts) if (f.length > IP) f[IP + (pos % (f.length - IP))] = val;
        // Keep the IPv4 header checksum right half the time so mutations reach ICMP/UDP/DHCP.
        if (fixSum && f.length >= L4 && (f[IP]! >> 4) === 4) {
          const hl = (f[IP]! & 0x0f) * 4;
          if (hl >= 20 && IP + hl <= f.length) { setU16(f, IP + 10, 0); setU16(f, IP + 10, checksum(f, IP, hl)); }
        }
        return f;
      }),
  );
  const owner = { retain(): void {}, release(): void {} };
  const before = { ...router.counters };
  fc.assert(fc.property(frameArb, (f) => {
    // Straight into the router, through the switch, and as parts.
    router.deliver({ buf: f, off: 0, len: f.length, slot: 0, owner });
    sw.input(router, { buf: f, off: 0, len: f.length, slot: 0, owner });
    if (f.length > 0) dev.inject(f);
    router.deliverParts([f.subarray(0, f.length >> 1), f.subarray(f.length >> 1)]);
    return true;
  }), { numRuns: 5000 });
  // The mutations did reach the deeper parsers, and every table stayed bounded.
  const grew = (k: string) => (router.counters[k] ?? 0) > (before[k] ?? 0);
  for (const k of ['ipv4_bad_checksum', 'ipv4_malformed', 'icmp_echo_reply_sent', 'dhcp_rx', 'arp_reply_sent', 'ipv4_forwarded']) {
    assert.ok(grew(k), `fuzzing reached ${k}`);
  }
  assert.ok(router.arpEntries().length <= 1024);
  assert.ok(sw.macCount <= 4096);
});

test('a network above 128.0.0.0 (addresses are int32 inside the router) works the same', () => {
  const cfg: RouterConfig = {
    network: ip('192.168.0.0'), prefixLength: 24, gateway: ip('192.168.0.2'), dns: ip('192.168.0.3'),
    dhcpStart: ip('192.168.0.15'), dhcpCount: 16, gatewayMac: [...GW_MAC], mtu: 1500,
  };
  const { dev, router, counters, forwarded } = setup(cfg);
  const guest = ip('192.168.0.100');
  dev.inject(arpFrame(ArpOp.REQUEST, GUEST_MAC, guest, ZERO, ip('192.168.0.3')));
  assert.equal(toHex(dev.sent[0]!.subarray(IP)), '000108000604000252550a000202c0a800035a94efe40ceec0a80064');
  assert.deepEqual(router.macFor(guest), GUEST_MAC);
  assert.deepEqual(router.arpEntries(), [[guest, GUEST_MAC]]);
  const data = new Uint8Array([9, 8, 7]);
  const req = ipv4Frame(IpProtocol.ICMP, guest, ip('192.168.0.2'), echoRequest(5, 6, data));
  dev.inject(req);
  const reply = dev.sent[1]!;
  const v = new Ipv4View();
  assert.ok(v.bind(reply, IP, reply.length - IP));
  assert.equal(v.srcAddr, ip('192.168.0.2'));
  assert.equal(v.dstAddr, guest);
  assert.ok(v.headerChecksumValid);
  dev.inject(ipv4Frame(IpProtocol.UDP, guest, ip('192.168.0.255'), udpDatagram(1, 2, new Uint8Array(4)), BCAST));
  assert.equal(counters.ipv4_broadcast_dropped, 1);
  const dst = ip('203.0.113.9');
  dev.inject(ipv4Frame(IpProtocol.TCP, guest, dst, tcpSyn(guest, dst, 1234, 443)));
  assert.deepEqual(forwarded, [{ proto: IpProtocol.TCP, src: guest, dst, len: 40 }]);
  assert.equal(router.macFor(ip('192.168.0.77')), null);
  assert.equal(toHex(dev.sent[2]!.subarray(IP)), '000108000604000152550a000202c0a80002000000000000c0a8004d');
  assert.equal(router.macFor(ip('192.168.1.77')), null);
  assert.equal(dev.sent.length, 3);
});

test('captured kernel frames: answered, forwarded or dropped as they should be', async () => {
  const { loadFixture } = await import('../fixtures/load');
  const { dev, counters, forwarded } = setup();
  const load = (name: Parameters<typeof loadFixture>[0]): Uint8Array => {
    const f = loadFixture(name);
    // The capture's peer had other MACs: address unicast frames to this router's.
    if ((f[ETH]! & 1) === 0) f.set(GW_MAC, ETH);
    return f;
  };
  dev.inject(load('arp-request'));
  assert.equal(counters.arp_reply_sent, 1);
  dev.inject(load('icmp-echo-request'));
  assert.equal(counters.icmp_echo_reply_sent, 1);
  assert.equal(dev.sent.length, 2);
  for (const n of ['udp-dns-query', 'tcp-syn', 'tcp-ack', 'tcp-superframe', 'tcp-fin'] as const) dev.inject(load(n));
  assert.deepEqual(forwarded.map((f) => [f.proto, f.dst]), [
    [IpProtocol.UDP, DNS], [IpProtocol.TCP, GW], [IpProtocol.TCP, GW], [IpProtocol.TCP, GW], [IpProtocol.TCP, GW],
  ]);
  assert.equal(forwarded[3]!.len, 65212, 'the superframe whole');
  for (const n of ['udp-fragment-first', 'udp-fragment-last'] as const) dev.inject(load(n));
  assert.equal(counters.ipv4_fragment_dropped, 2);
  for (const n of ['ipv6-rs', 'ipv6-ns-dad', 'ipv6-mld2-report', 'tcp6-syn', 'tcp6-superframe'] as const) dev.inject(load(n));
  assert.equal(counters.gw_ipv6_dropped, 5);
  assert.equal(dev.sent.length, 2);
  assert.equal(forwarded.length, 5);
});

// ---------------------------------------------------------------------------------------------
// IPv6 (config.ipv6: slirp4netns -6). Frames are built with the wire emitters; replies are
// checked against byte literals (the ICMPv6 parts equal the RFC literals of wire-icmpv6.test.ts,
// whose checksums were computed independently) and re-parsed with the views.

const V6: NonNullable<RouterConfig['ipv6']> = { prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2' };
const V6CFG: RouterConfig = { ...CFG, ipv6: V6 };
const a6 = (s: string): Uint8Array => parseIpv6Address(s)!;
const G6 = 'fd00::5054:ff:fe12:3456';
const G6_LL = 'fe80::5054:ff:fe12:3456';
const G6_MAC = mac('52:54:00:12:34:56');
const IP6 = IP;
const L4_6 = IP + 40;

interface Fwd6 { nh: number; src: string; dst: string; len: number }

function setup6(cfg: RouterConfig = V6CFG, opts: { neighborCacheSize?: number; startRa?: boolean } = {}) {
  let t = 1_000_000;
  const now = () => t;
  const counters: Record<string, number> = {};
  const sw = new Switch({ now, counters });
  const dev = new MemoryDevice('guest');
  const port = new TapPort(1, dev);
  sw.addPort(port);
  port.start(sw);
  const forwarded: Array<{ proto: number }> = [];
  const forwarded6: Fwd6[] = [];
  const router = new Router(cfg, {
    switch: sw, counters, now, random: () => 0.5,
    onForward: (_f, _e, v) => { forwarded.push({ proto: v.protocol }); },
    onForward6: (f, eth, v) => {
      assert.equal(eth.etherType, EtherType.IPV6);
      assert.ok(v.b === f.buf);
      forwarded6.push({ nh: v.nextHeader, src: ipv6ToString(v.b, v.srcAddrOffset), dst: ipv6ToString(v.b, v.dstAddrOffset), len: v.totalLength });
    },
    ...(opts.neighborCacheSize !== undefined ? { neighborCacheSize: opts.neighborCacheSize } : {}),
  });
  // The data plane ticks at start: the first RA goes out then. Most tests start after it.
  if (opts.startRa !== false) { router.tick(); dev.sent.length = 0; }
  return { sw, dev, router, counters, forwarded, forwarded6, advance: (ms: number) => { t += ms; } };
}

/** A frame carrying an IPv6 packet: next header nh, hop limit, the given payload. */
function ipv6Frame(nh: number, src: string, dst: string, payload: Uint8Array,
  o: { dstMac?: Uint8Array; srcMac?: Uint8Array; hop?: number } = {}): Uint8Array {
  const b = new Uint8Array(L4_6 + payload.length);
  const d = a6(dst);
  let dmac = o.dstMac;
  if (dmac === undefined) {
    dmac = new Uint8Array(6);
    if (d[0] === 0xff) emitMulticastMac6(dmac, 0, d, 0); else dmac.set(GW_MAC);
  }
  emitEthernet(b, ETH, dmac, o.srcMac ?? G6_MAC, EtherType.IPV6);
  emitIpv6Header(b, IP6, 0, 0, payload.length, nh, o.hop ?? 64, a6(src), d);
  b.set(payload, L4_6);
  return b;
}

/** An ICMPv6 message in a frame, checksum filled in (or broken when badSum). */
function icmp6Frame(src: string, dst: string, msg: Uint8Array, o: { dstMac?: Uint8Array; srcMac?: Uint8Array; hop?: number; badSum?: boolean } = {}): Uint8Array {
  const f = ipv6Frame(58, src, dst, msg, { hop: 255, ...o });
  finishIcmpv6Checksum(f, L4_6, msg.length, f, IP6 + 8, IP6 + 24);
  if (o.badSum) f[L4_6 + 2] = f[L4_6 + 2]! ^ 0xff;
  return f;
}

function rsMsg(slla: Uint8Array | null): Uint8Array {
  const m = new Uint8Array(8 + (slla ? 8 : 0));
  emitRouterSolicit(m, 0);
  if (slla) emitLinkLayerAddrOption(m, 8, NdpOptionType.SOURCE_LL_ADDR, slla, 0);
  return m;
}

function nsMsg(target: string, slla: Uint8Array | null): Uint8Array {
  const m = new Uint8Array(24 + (slla ? 8 : 0));
  emitNeighborSolicit(m, 0, a6(target), 0);
  if (slla) emitLinkLayerAddrOption(m, 24, NdpOptionType.SOURCE_LL_ADDR, slla, 0);
  return m;
}

function naMsg(target: string, flags: number, tlla: Uint8Array | null): Uint8Array {
  const m = new Uint8Array(24 + (tlla ? 8 : 0));
  emitNeighborAdvert(m, 0, flags, a6(target), 0);
  if (tlla) emitLinkLayerAddrOption(m, 24, NdpOptionType.TARGET_LL_ADDR, tlla, 0);
  return m;
}

function echo6(id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  emitIcmpv6Echo(m, 0, Icmpv6Type.ECHO_REQUEST, id, seq);
  m.set(data, 8);
  return m;
}

/** A sent frame, parsed: Ethernet destination, IPv6 addresses and hop limit, the ICMPv6 message (checksum checked). */
function parse6(f: Uint8Array) {
  const ip6 = new Ipv6View();
  assert.equal(f.length >= L4_6, true);
  assert.deepEqual(f.subarray(0, ETH), new Uint8Array(ETH), 'virtio-net header of zeros');
  assert.equal((f[IP - 2]! << 8) | f[IP - 1]!, EtherType.IPV6);
  assert.ok(ip6.bind(f, IP6, f.length - IP6));
  assert.equal(ip6.totalLength, f.length - IP6, 'no padding, exact payload length');
  const icmp = new Icmpv6View();
  assert.ok(icmp.bind(f, ip6.payloadOffset, ip6.payloadLength));
  assert.equal(icmp.checksumValid(f, ip6.srcAddrOffset, ip6.dstAddrOffset), true, 'ICMPv6 checksum');
  return {
    ethDst: macToString(f, ETH), ethSrc: macToString(f, ETH + 6), src: ipv6ToString(f, ip6.srcAddrOffset),
    dst: ipv6ToString(f, ip6.dstAddrOffset), hop: ip6.hopLimit, type: icmp.type, msg: f.subarray(L4_6),
  };
}

/** The RA of wire-icmpv6.test.ts (MTU 1500, prefix fd00::/64, RDNSS fd00::3), checksum for fe80::2 -> ff02::1. */
const RA_TO_ALL_NODES = hex(`86 00 a9 d3 40 00 07 08 00 00 00 00 00 00 00 00
  01 01 52 55 0a 00 02 02  05 01 00 00 00 00 05 dc
  03 04 40 c0 00 27 8d 00 00 09 3a 80 00 00 00 00 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
  19 03 00 00 00 00 02 58 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03`);

test('IPv6 without config.ipv6: counted and dropped, nothing answered, macFor6 asks nobody', () => {
  const { dev, router, counters } = setup();
  dev.inject(icmp6Frame('::', 'ff02::2', rsMsg(null)));
  dev.inject(icmp6Frame(G6, 'fd00::2', nsMsg('fd00::2', G6_MAC)));
  router.tick();
  assert.equal(router.macFor6(a6(G6), 0), null);
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.gw_ipv6_dropped, 2);
});

test('unsolicited RA at start: exact frame (RFC 4861 §4.2, §6.2.3; RDNSS RFC 8106 §5.1)', () => {
  const { dev, counters } = setup6(V6CFG);
  // setup6 already ticked once; do it again on a fresh router to see the frame.
  const s = setup6(V6CFG, { startRa: false });
  s.router.tick();
  assert.equal(s.dev.sent.length, 1);
  assert.equal(toHex(s.dev.sent[0]!), toHex(new Uint8Array([
    ...hex('00000000000000000000'),
    ...hex('333300000001 52550a000202 86dd'),
    ...hex('60000000 0058 3a ff'), ...a6('fe80::2'), ...a6('ff02::1'),
    ...RA_TO_ALL_NODES,
  ])));
  assert.equal(s.counters.ndp_ra_unsolicited_sent, 1);
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.ndp_ra_sent, 1);
});

test('RA contents follow the config: no RDNSS without DNS, no MTU option below 1280, the MTU given', () => {
  const s = setup6({ ...V6CFG, mtu: 65520, ipv6: { ...V6, dns: null } }, { startRa: false });
  s.router.tick();
  const p = parse6(s.dev.sent[0]!);
  const ra = new RouterAdvertView();
  assert.ok(ra.bind(p.msg, 0, p.msg.length));
  const r = new NdpOptionReader();
  r.reset(p.msg, ra.optionsOffset, ra.optionsLength);
  const types: number[] = [];
  while (r.next()) {
    types.push(r.type);
    if (r.type === NdpOptionType.MTU) { const m = new MtuOptionView(); assert.ok(m.bind(p.msg, r.offset, r.length)); assert.equal(m.mtu, 65520); }
  }
  assert.deepEqual(types, [NdpOptionType.SOURCE_LL_ADDR, NdpOptionType.MTU, NdpOptionType.PREFIX_INFO]);
  const t = setup6({ ...V6CFG, mtu: 1000 }, { startRa: false });
  t.router.tick();
  const q = parse6(t.dev.sent[0]!);
  r.reset(q.msg, 16, q.msg.length - 16);
  const types2: number[] = [];
  while (r.next()) types2.push(r.type);
  assert.deepEqual(types2, [NdpOptionType.SOURCE_LL_ADDR, NdpOptionType.PREFIX_INFO, NdpOptionType.RDNSS]);
});

test('unsolicited RAs: three quick ones (≤ 16 s apart, RFC 4861 §6.2.4), then every 66-200 s', () => {
  const { dev, router, advance } = setup6(V6CFG, { startRa: false });
  const times: number[] = [];
  let t = 0;
  for (let s = 0; s < 1000; s++) {
    router.tick();
    if (dev.sent.length > times.length) times.push(t);
    advance(1000); t += 1000;
  }
  assert.ok(times.length >= 7, `RAs at ${times.join(', ')}`);
  const gaps = times.slice(1).map((x, i) => x - times[i]!);
  assert.ok(gaps[0]! <= 16_000 && gaps[1]! <= 16_000, `initial gaps ${gaps.slice(0, 2).join(', ')}`);
  for (const g of gaps.slice(2)) assert.ok(g >= 66_000 && g <= 201_000, `gap ${g}`);
  for (const f of dev.sent) assert.equal(parse6(f).dst, 'ff02::1');
});

test('the guest\'s first IPv6 frame triggers an RA at once (not again for later frames)', () => {
  const { dev, counters } = setup6(V6CFG, { startRa: false });
  dev.inject(loadFixtureSync('ipv6-mld2-report'));
  assert.equal(dev.sent.length, 1);
  assert.equal(parse6(dev.sent[0]!).type, Icmpv6Type.ROUTER_ADVERT);
  assert.equal(counters.ipv6_mld_dropped, 1);
  dev.inject(loadFixtureSync('ipv6-mld2-report'));
  assert.equal(dev.sent.length, 1);
  // Right after the start-up RA (within MIN_DELAY_BETWEEN_RAS) the first frame sends nothing more.
  const s = setup6();
  s.dev.inject(loadFixtureSync('ipv6-mld2-report'));
  assert.equal(s.dev.sent.length, 0);
  s.advance(3000);
  s.router.tick();
  assert.equal(s.dev.sent.length, 1, 'sent by the next tick instead');
});

test('RS (the captured one) -> unicast RA to its source and SLLA; the source is learned', () => {
  const { dev, router, counters } = setup6();
  const rs = loadFixtureSync('ipv6-rs');
  dev.inject(rs);
  assert.equal(dev.sent.length, 1);
  const p = parse6(dev.sent[0]!);
  assert.deepEqual([p.ethDst, p.ethSrc, p.src, p.dst, p.hop], ['02:54:53:00:00:64', '52:55:0a:00:02:02', 'fe80::2', 'fe80::54:53ff:fe00:64', 255]);
  // Same RA as to all-nodes but for the checksum (another destination).
  assert.equal(toHex(p.msg.subarray(4)), toHex(RA_TO_ALL_NODES.subarray(4)));
  assert.equal(counters.ndp_rs_rx, 1);
  assert.equal(counters.ndp_ra_solicited_sent, 1);
  assert.deepEqual(router.macFor6(a6('fe80::54:53ff:fe00:64'), 0), mac('02:54:53:00:00:64'));
});

test('RS from :: -> RA to all-nodes (rate-limited to one per 3 s); RS floods are capped', () => {
  const { dev, counters, advance } = setup6();
  advance(3000);
  dev.inject(icmp6Frame('::', 'ff02::2', rsMsg(null)));
  assert.equal(dev.sent.length, 1);
  const p = parse6(dev.sent[0]!);
  assert.deepEqual([p.ethDst, p.dst], ['33:33:00:00:00:01', 'ff02::1']);
  dev.inject(icmp6Frame('::', 'ff02::2', rsMsg(null)));
  assert.equal(dev.sent.length, 1);
  assert.equal(counters.ndp_ra_rate_limited, 1);
  advance(1000);
  for (let i = 0; i < 50; i++) dev.inject(icmp6Frame(G6_LL, 'ff02::2', rsMsg(G6_MAC)));
  assert.equal(dev.sent.length, 1 + 8, 'SOLICITED_RAS_PER_SECOND');
  assert.equal(counters.ndp_ra_rate_limited, 1 + 42);
});

test('invalid NDP is dropped per RFC 4861 §6.1.1/§7.1: hop limit, code, checksum, options, SLLA from ::', () => {
  const { dev, counters, router } = setup6();
  dev.inject(icmp6Frame(G6_LL, 'ff02::2', rsMsg(G6_MAC), { hop: 64 }));
  const coded = rsMsg(null); coded[1] = 1;
  dev.inject(icmp6Frame(G6_LL, 'ff02::2', coded));
  dev.inject(icmp6Frame(G6_LL, 'ff02::2', rsMsg(G6_MAC), { badSum: true }));
  const zeroOpt = rsMsg(G6_MAC); zeroOpt[9] = 0;
  dev.inject(icmp6Frame(G6_LL, 'ff02::2', zeroOpt));
  dev.inject(icmp6Frame('::', 'ff02::2', rsMsg(G6_MAC)));
  dev.inject(icmp6Frame(G6, 'fd00::2', nsMsg('ff02::1', G6_MAC)));
  dev.inject(icmp6Frame('::', 'fd00::2', nsMsg('fd00::2', null)), icmp6Frame('::', 'ff02::1:ff00:2', nsMsg('fd00::2', G6_MAC)));
  dev.inject(icmp6Frame('fd00::9', 'ff02::1', naMsg('fd00::9', NaFlags.SOLICITED, G6_MAC)));
  const shortNs = nsMsg('fd00::2', null).subarray(0, 20);
  dev.inject(icmp6Frame(G6, 'fd00::2', shortNs));
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.ndp_bad_hop_limit, 1);
  assert.equal(counters.ndp_bad_code, 1);
  assert.equal(counters.icmpv6_bad_checksum, 1);
  assert.equal(counters.ndp_bad_option, 1);
  assert.equal(counters.ndp_malformed, 6);
  // Nothing was learned from the invalid options (the IPv6 sources, from their Ethernet source, are).
  const other = mac('02:00:00:00:00:42');
  dev.inject(icmp6Frame(G6, 'fd00::2', nsMsg('fd00::2', other).fill(0, 24, 26)));
  assert.deepEqual(router.macFor6(a6(G6), 0), G6_MAC);
});

test('NS for fd00::2 -> NA with R/S/O and our MAC, to the soliciter; fe80::2 and fd00::3 answered too', () => {
  const { dev, router, counters } = setup6();
  dev.inject(icmp6Frame(G6, 'ff02::1:ff00:2', nsMsg('fd00::2', G6_MAC)));
  assert.equal(dev.sent.length, 1);
  const p = parse6(dev.sent[0]!);
  assert.deepEqual([p.ethDst, p.src, p.dst, p.hop], ['52:54:00:12:34:56', 'fd00::2', G6, 255]);
  // The NA literal of wire-icmpv6.test.ts (fd00::2 -> fd00::5054:ff:fe12:3456).
  assert.equal(toHex(p.msg), toHex(hex('88 00 bc 88 e0 00 00 00 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02 02 01 52 55 0a 00 02 02')));
  assert.deepEqual(router.macFor6(a6(G6), 0), G6_MAC);
  // A unicast NUD probe without SLLA: answered to the Ethernet source.
  dev.inject(icmp6Frame(G6_LL, 'fe80::2', nsMsg('fe80::2', null)));
  const q = parse6(dev.sent[1]!);
  assert.deepEqual([q.ethDst, q.src, q.dst], ['52:54:00:12:34:56', 'fe80::2', G6_LL]);
  const na = new NeighborAdvertView();
  assert.ok(na.bind(q.msg, 0, q.msg.length));
  assert.equal(ipv6ToString(q.msg, na.targetAddrOffset), 'fe80::2');
  dev.inject(icmp6Frame(G6, 'ff02::1:ff00:3', nsMsg('fd00::3', G6_MAC)));
  assert.equal(parse6(dev.sent[2]!).src, 'fd00::3');
  // Not ours: silence.
  dev.inject(icmp6Frame(G6, 'ff02::1:ff00:99', nsMsg('fd00::99', G6_MAC)));
  assert.equal(dev.sent.length, 3);
  assert.equal(counters.ndp_na_sent, 3);
  assert.equal(counters.ndp_ns_ignored, 1);
  // Without DNS, fd00::3 is nobody.
  const s = setup6({ ...V6CFG, ipv6: { ...V6, dns: null } });
  s.dev.inject(icmp6Frame(G6, 'ff02::1:ff00:3', nsMsg('fd00::3', G6_MAC)));
  assert.equal(s.dev.sent.length, 0);
});

test('DAD (RFC 4862 §5.4): the guest\'s own probes are never answered; a probe for our address is defended by a multicast NA', () => {
  const { dev, counters } = setup6();
  dev.inject(loadFixtureSync('ipv6-ns-dad'));
  dev.inject(icmp6Frame('::', 'ff02::1:ff12:3456', nsMsg(G6, null)));
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.ndp_dad_ignored, 2);
  dev.inject(icmp6Frame('::', 'ff02::1:ff00:2', nsMsg('fd00::2', null)));
  assert.equal(dev.sent.length, 1);
  const p = parse6(dev.sent[0]!);
  assert.deepEqual([p.ethDst, p.src, p.dst], ['33:33:00:00:00:01', 'fd00::2', 'ff02::1'], 'never to ::');
  const na = new NeighborAdvertView();
  assert.ok(na.bind(p.msg, 0, p.msg.length));
  assert.deepEqual([na.routerFlag, na.solicitedFlag, na.overrideFlag], [true, false, true]);
  assert.equal(counters.ndp_dad_defended, 1);
});

test('NA from the guest fills the neighbour cache; an NA claiming our address is refused', () => {
  const { dev, router, counters } = setup6();
  const other = mac('02:00:00:00:00:77');
  dev.inject(icmp6Frame('fd00::77', 'fe80::2', naMsg('fd00::77', NaFlags.SOLICITED | NaFlags.OVERRIDE, other), { srcMac: other }));
  assert.deepEqual(router.macFor6(a6('fd00::77'), 0), other);
  // Without TLLA: the Ethernet source.
  const third = mac('02:00:00:00:00:78');
  dev.inject(icmp6Frame('fd00::78', 'fe80::2', naMsg('fd00::78', NaFlags.SOLICITED, null), { srcMac: third }));
  assert.deepEqual(router.macFor6(a6('fd00::78'), 0), third);
  dev.inject(icmp6Frame('fd00::79', 'ff02::1', naMsg('fd00::2', NaFlags.OVERRIDE, other), { srcMac: other }));
  assert.equal(counters.ndp_na_conflict, 1);
  assert.equal(dev.sent.length, 0);
  // The gateway's own MAC stays ours in the switch (a pinned entry), and macFor6 of fd00::2 is no guest.
  assert.equal(router.macFor6(a6('fd00::2'), 0), null);
  assert.equal(dev.sent.length, 0);
});

test('macFor6: unknown guest -> NS to its solicited-node group (exact bytes), rate-limited; off-link -> no NS', () => {
  const { dev, router, counters, advance } = setup6();
  assert.equal(router.macFor6(a6(G6), 0), null);
  assert.equal(dev.sent.length, 1);
  assert.equal(toHex(dev.sent[0]!), toHex(new Uint8Array([
    ...hex('00000000000000000000 3333ff123456 52550a000202 86dd 60000000 0020 3a ff'),
    ...a6('fe80::2'), ...a6('ff02::1:ff12:3456'),
    // The NS literal of wire-icmpv6.test.ts.
    ...hex('87 00 67 9f 00 00 00 00 fd 00 00 00 00 00 00 00 50 54 00 ff fe 12 34 56 01 01 52 55 0a 00 02 02'),
  ])));
  assert.equal(router.macFor6(a6(G6), 0), null);
  assert.equal(dev.sent.length, 1, 'one per address per second');
  advance(1000);
  assert.equal(router.macFor6(a6(G6), 0), null);
  assert.equal(dev.sent.length, 2);
  // The guest answers.
  dev.inject(icmp6Frame(G6, 'fe80::2', naMsg(G6, NaFlags.SOLICITED | NaFlags.OVERRIDE, G6_MAC)));
  assert.deepEqual(router.macFor6(a6(G6), 0), G6_MAC);
  for (const off of ['2001:db8::1', 'fd00:0:0:1::5', 'ff02::1', '::', 'fd00::', 'fd00::2', 'fe80::2']) {
    assert.equal(router.macFor6(a6(off), 0), null, off);
  }
  assert.equal(dev.sent.length, 2);
  assert.equal(counters.ndp_lookup_offlink, 7);
  // Overall cap.
  advance(1000);
  for (let i = 1; i <= 100; i++) router.macFor6(a6(`fd00::1:${i.toString(16)}`), 0);
  assert.equal(dev.sent.length, 2 + 32);
  assert.equal(counters.ndp_ns_rate_limited, 1 + 68);
});

test('the neighbour cache is bounded; learned from sources of ordinary packets too', () => {
  const { dev, router, counters } = setup6(V6CFG, { neighborCacheSize: 4 });
  for (let i = 1; i <= 10; i++) {
    const m = mac(`02:00:00:00:01:${i.toString(16).padStart(2, '0')}`);
    dev.inject(ipv6Frame(17, `fd00::a:${i}`, '2001:db8::1', udpDatagram(1000 + i, 53, new Uint8Array(4)), { srcMac: m }));
  }
  assert.equal(router.neighborEntries().length, 4);
  assert.equal(counters.ndp_cache_learned, 10);
  assert.equal(counters.ndp_cache_evicted, 6);
  assert.deepEqual(router.neighborEntries().map(([a]) => ipv6ToString(a, 0)), ['fd00::a:7', 'fd00::a:8', 'fd00::a:9', 'fd00::a:10']);
  assert.deepEqual(router.macFor6(a6('fd00::a:10'), 0), mac('02:00:00:00:01:0a'));
});

test('ICMPv6 echo to fd00::2, fd00::3 and fe80::2 is answered from the address asked; elsewhere forwarded', () => {
  const { dev, counters, forwarded6 } = setup6();
  const data = new Uint8Array([1, 2, 3, 4, 5]);
  for (const [i, to] of (['fd00::2', 'fd00::3', 'fe80::2'] as const).entries()) {
    const from = to === 'fe80::2' ? G6_LL : G6;
    dev.inject(icmp6Frame(from, to, echo6(0x77, i, data), { hop: 64 }));
    const p = parse6(dev.sent[i]!);
    assert.deepEqual([p.ethDst, p.src, p.dst, p.type], ['52:54:00:12:34:56', to, from, Icmpv6Type.ECHO_REPLY]);
    const v = new Icmpv6View();
    assert.ok(v.bind(p.msg, 0, p.msg.length));
    assert.deepEqual([v.identifier, v.sequence, [...p.msg.subarray(8)]], [0x77, i, [...data]]);
  }
  assert.equal(counters.icmpv6_echo_reply_sent, 3);
  // Bad checksum, non-echo to us, echo to a multicast group: dropped.
  dev.inject(icmp6Frame(G6, 'fd00::2', echo6(1, 1, data), { badSum: true, hop: 64 }));
  const unreach = new Uint8Array(48); unreach[0] = Icmpv6Type.DEST_UNREACHABLE;
  dev.inject(icmp6Frame(G6, 'fd00::2', unreach, { hop: 64 }));
  dev.inject(icmp6Frame(G6, 'ff02::1', echo6(1, 1, data), { hop: 64 }));
  assert.equal(dev.sent.length, 3);
  assert.equal(counters.icmpv6_bad_checksum, 1);
  assert.equal(counters.icmpv6_to_gateway_dropped, 1);
  assert.equal(counters.ipv6_multicast_dropped, 1);
  // Echo to the outside: the translators' job; ICMPv6 errors from the guest are not forwarded.
  dev.inject(icmp6Frame(G6, '2001:db8::1', echo6(9, 9, data), { hop: 64 }));
  dev.inject(icmp6Frame(G6, '2001:db8::1', unreach, { hop: 64 }));
  assert.deepEqual(forwarded6, [{ nh: 58, src: G6, dst: '2001:db8::1', len: 40 + 13 }]);
  assert.equal(counters.icmpv6_not_forwarded, 1);
  // Without DNS, fd00::3 is an ordinary destination.
  const s = setup6({ ...V6CFG, ipv6: { ...V6, dns: null } });
  s.dev.inject(icmp6Frame(G6, 'fd00::3', echo6(1, 1, data), { hop: 64 }));
  assert.equal(s.dev.sent.length, 0);
  assert.equal(s.forwarded6.length, 1);
});

test('the largest ICMPv6 echo (payload length 65535) is answered whole, through the switch and as parts', () => {
  const { dev, router, counters } = setup6();
  const data = new Uint8Array(65535 - 8).map((_, i) => (i * 7) & 0xff);
  const req = icmp6Frame(G6, 'fd00::2', echo6(3, 4, data), { hop: 64 });
  assert.equal(req.length, 24 + 40 + 65535);
  dev.inject(req);
  router.deliverParts([req.subarray(0, 100), req.subarray(100)]);
  assert.equal(counters.icmpv6_echo_reply_sent, 2);
  for (const f of dev.sent) {
    const p = parse6(f);
    assert.equal(p.msg.length, 65535);
    assert.deepEqual(p.msg.subarray(8), data);
  }
  assert.equal(counters.packet_loop_exceptions ?? 0, 0);
});

test('TCP/UDP to fd00::2, fd00::3 and outside go to onForward6; the captured IPv6 SYN and superframe whole', () => {
  const { dev, forwarded6, forwarded, counters } = setup6();
  dev.inject(ipv6Frame(6, G6, 'fd00::2', tcpSyn(0, 0, 40000, 8080)));
  dev.inject(ipv6Frame(17, G6, 'fd00::3', udpDatagram(5353, 53, new Uint8Array(12))));
  dev.inject(ipv6Frame(6, G6, '2001:db8::1', tcpSyn(0, 0, 40001, 80)));
  for (const n of ['tcp6-syn', 'tcp6-superframe'] as const) {
    const f = loadFixtureSync(n);
    f.set(GW_MAC, ETH);
    dev.inject(f);
  }
  assert.deepEqual(forwarded6.map((x) => [x.nh, x.src, x.dst]), [
    [6, G6, 'fd00::2'], [17, G6, 'fd00::3'], [6, G6, '2001:db8::1'], [6, 'fd00::100', 'fd00::2'], [6, 'fd00::100', 'fd00::2'],
  ]);
  assert.equal(forwarded6[4]!.len, 40 + 32 + 64260, 'the superframe whole');
  assert.equal(forwarded.length, 0);
  assert.equal(counters.ipv6_forwarded, 5);
  assert.equal(dev.sent.length, 0);
});

test('IPv6 that must not reach the translators: each dropped and counted', () => {
  const { dev, forwarded6, counters } = setup6();
  const udp = udpDatagram(1, 2, new Uint8Array(4));
  dev.inject(ipv6Frame(17, G6, 'ff02::fb', udp));                       // mDNS
  dev.inject(ipv6Frame(6, G6_LL, 'fe80::1', tcpSyn(0, 0, 1, 2)));        // link-local destination
  dev.inject(ipv6Frame(6, G6_LL, 'fe80::2', tcpSyn(0, 0, 1, 2)));        // ... ours too
  dev.inject(ipv6Frame(6, G6, '::ffff:192.0.2.1', tcpSyn(0, 0, 1, 2)));  // IPv4-mapped
  dev.inject(ipv6Frame(6, G6, '::1', tcpSyn(0, 0, 1, 2)));               // loopback
  dev.inject(ipv6Frame(6, '2001:db8::5', '2001:db8::1', tcpSyn(0, 0, 1, 2))); // source off the link
  dev.inject(ipv6Frame(6, '::', '2001:db8::1', tcpSyn(0, 0, 1, 2)));     // unspecified source
  dev.inject(ipv6Frame(6, 'fd00::2', '2001:db8::1', tcpSyn(0, 0, 1, 2), { srcMac: mac('02:00:00:00:00:66') })); // spoofing us
  dev.inject(ipv6Frame(6, 'ff02::1', '2001:db8::1', tcpSyn(0, 0, 1, 2))); // multicast source
  dev.inject(ipv6Frame(44, G6, '2001:db8::1', new Uint8Array(16)));      // fragment header
  dev.inject(ipv6Frame(60, G6, '2001:db8::1', new Uint8Array(16)));      // destination options
  dev.inject(ipv6Frame(0, G6, '2001:db8::1', new Uint8Array(16)));       // hop-by-hop, not MLD
  dev.inject(ipv6Frame(132, G6, '2001:db8::1', new Uint8Array(16)));     // SCTP
  assert.equal(forwarded6.length, 0);
  assert.equal(dev.sent.length, 0);
  assert.deepEqual([counters.ipv6_multicast_dropped, counters.ipv6_link_local_dst_dropped, counters.ipv6_bad_destination_dropped,
    counters.ipv6_bad_source_dropped, counters.ipv6_ext_header_dropped, counters.ipv6_protocol_unsupported], [1, 2, 2, 4, 3, 1]);
  // Malformed IPv6 and ICMPv6.
  const trunc = ipv6Frame(6, G6, '2001:db8::1', tcpSyn(0, 0, 1, 2)); setU16(trunc, IP6 + 4, 400);
  const ver = ipv6Frame(6, G6, '2001:db8::1', tcpSyn(0, 0, 1, 2)); ver[IP6] = 0x40;
  dev.inject(trunc, ver, ipv6Frame(58, G6, 'fd00::2', new Uint8Array(4)));
  assert.equal(counters.ipv6_malformed, 2);
  assert.equal(counters.icmpv6_malformed, 1);
});

test('without onForward6 the IPv6 data path is counted and dropped, NDP still works', () => {
  const counters: Record<string, number> = {};
  const sw = new Switch({ now: () => 0, counters });
  const dev = new MemoryDevice('guest');
  const port = new TapPort(1, dev);
  sw.addPort(port);
  port.start(sw);
  const router = new Router(V6CFG, { switch: sw, counters, now: () => 0, onForward: () => {} });
  router.tick(); dev.sent.length = 0;
  dev.inject(ipv6Frame(6, G6, '2001:db8::1', tcpSyn(0, 0, 1, 2)));
  assert.equal(counters.ipv6_forward_dropped, 1);
  dev.inject(icmp6Frame(G6, 'ff02::1:ff00:2', nsMsg('fd00::2', G6_MAC)));
  assert.equal(dev.sent.length, 1);
});

test('fuzz: random and mutated IPv6 frames never throw; tables stay bounded', () => {
  const { sw, dev, router, advance } = setup6(V6CFG, { neighborCacheSize: 64 });
  const seeds = [
    loadFixtureSync('ipv6-rs'), loadFixtureSync('ipv6-ns-dad'), loadFixtureSync('ipv6-mld2-report'), loadFixtureSync('tcp6-syn'),
    icmp6Frame(G6, 'ff02::1:ff00:2', nsMsg('fd00::2', G6_MAC)),
    icmp6Frame(G6, 'fe80::2', naMsg(G6, NaFlags.SOLICITED, G6_MAC)),
    icmp6Frame(G6, 'fd00::2', echo6(1, 2, new Uint8Array(20)), { hop: 64 }),
    icmp6Frame('::', 'ff02::2', rsMsg(null)),
  ];
  const frameArb = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 200 }).map((b) => {
      // Half of them look like IPv6 so the deeper parsers run.
      if (b.length > IP + 1) { b[IP - 2] = 0x86; b[IP - 1] = 0xdd; b[IP] = 0x60; }
      return b;
    }),
    fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), fc.boolean())
      .map(([seed, muts, cut, fixSum]) => {
        const f = seed.slice(0, Math.max(0, seed.length - (cut % 8 === 0 ? cut % seed.length : 0)));
        for (const [pos, val] of muts) if (f.length > IP) f[IP + (pos % (f.length - IP))] = val;
        // Keep the ICMPv6 checksum right half the time so mutations reach the NDP handlers.
        if (fixSum && f.length >= L4_6 + 4 && f[IP6 + 6] === 58) {
          const pl = Math.min((f[IP6 + 4]! << 8) | f[IP6 + 5]!, f.length - L4_6);
          if (pl >= 4) finishIcmpv6Checksum(f, L4_6, pl, f, IP6 + 8, IP6 + 24);
        }
        return f;
      }),
  );
  const owner = { retain(): void {}, release(): void {} };
  const before = { ...router.counters };
  fc.assert(fc.property(frameArb, fc.uint8Array({ minLength: 16, maxLength: 16 }), (f, addr) => {
    router.deliver({ buf: f, off: 0, len: f.length, slot: 0, owner });
    if (f.length > 0) dev.inject(f);
    router.deliverParts([f.subarray(0, f.length >> 1), f.subarray(f.length >> 1)]);
    router.macFor6(addr, 0);
    router.tick();
    advance(50); // so the rate limits let some answers through
    return true;
  }), { numRuns: 4000 });
  const grew = (k: string) => (router.counters[k] ?? 0) > (before[k] ?? 0);
  for (const k of ['ipv6_malformed', 'ndp_na_sent', 'ndp_ra_solicited_sent', 'icmpv6_echo_reply_sent', 'ndp_dad_ignored', 'ipv6_forwarded']) {
    assert.ok(grew(k), `fuzzing reached ${k}`);
  }
  assert.ok(router.neighborEntries().length <= 64);
  assert.ok(sw.macCount <= 4096);
});
