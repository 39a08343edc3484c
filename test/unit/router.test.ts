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
