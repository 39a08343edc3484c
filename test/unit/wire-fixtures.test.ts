// The views against real frames: everything in test/fixtures was read from a TAP with the
// virtio-net header and TSO offloads on (see test/fixtures/README.md). These assertions are the
// kernel's own values, not ours.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { loadFixture } from '../fixtures/load';
import {
  VNET_HDR_LEN, VnetFlags, GsoType,
  vnetFlags, vnetGsoType, vnetHdrLen, vnetGsoSize, vnetCsumStart, vnetCsumOffset,
  EthernetView, EtherType, ArpView, ArpOp, Ipv4View, IpProtocol, IcmpView, IcmpType, UdpView,
  TcpView, TcpFlags, newTcpSynOptions, Ipv6View, Ipv6NextHeader, ipv6ToString,
  macToString, ipv4ToString, checksum, fold, pseudoHeaderSum4, u16, u32, setU16,
} from '../../src/wire';

const GUEST_MAC = '02:54:53:00:00:64';
const GW_MAC = '02:54:53:00:00:02';
const GUEST = 0x0a000264;
const GW = 0x0a000202;
/** The client's SYN sequence number; data byte k of the stream has sequence SYN + 1 + k. */
const SYN_SEQ = 0x0d0ca2b2;

/** Bind Ethernet at its place after the virtio-net header. */
function eth(b: Uint8Array): EthernetView {
  const e = new EthernetView();
  assert.equal(e.bind(b, VNET_HDR_LEN, b.length - VNET_HDR_LEN), true);
  return e;
}

function ipv4(b: Uint8Array): Ipv4View {
  const e = eth(b);
  assert.equal(e.etherType, EtherType.IPV4);
  const ip = new Ipv4View();
  assert.equal(ip.bind(b, e.payloadOffset, e.payloadLength), true);
  assert.equal(ip.headerChecksumValid, true);
  return ip;
}

function tcp(b: Uint8Array): { ip: Ipv4View; t: TcpView } {
  const ip = ipv4(b);
  assert.equal(ip.protocol, IpProtocol.TCP);
  const t = new TcpView();
  assert.equal(t.bind(b, ip.payloadOffset, ip.payloadLength), true);
  return { ip, t };
}

function assertNoOffload(b: Uint8Array): void {
  assert.deepEqual(b.subarray(0, VNET_HDR_LEN), new Uint8Array(VNET_HDR_LEN));
}

/**
 * What the consumer of a NEEDS_CSUM frame does: sum from csum_start to the end of the packet
 * (the field already holds the pseudo-header seed) and store the result at csum_start + offset.
 * Then the ordinary receiver check (pseudo-header + segment sums to 0) must pass.
 */
function completeAndVerifyL4Checksum(b: Uint8Array, ip: Ipv4View): void {
  assert.equal(vnetFlags(b, 0) & VnetFlags.NEEDS_CSUM, VnetFlags.NEEDS_CSUM);
  const start = VNET_HDR_LEN + vnetCsumStart(b, 0);
  assert.equal(start, ip.payloadOffset, 'csum_start is the L4 header');
  const field = start + vnetCsumOffset(b, 0);
  const end = ip.o + ip.totalLength;
  const c = b.slice();
  setU16(c, field, checksum(c, start, end - start));
  assert.equal(checksum(c, start, end - start, pseudoHeaderSum4(ip.srcAddr, ip.dstAddr, ip.protocol, ip.payloadLength)), 0);
}

describe('captured frames', () => {
  test('arp-request: who-has 10.0.2.3 tell 10.0.2.100, broadcast, no padding on a TAP', () => {
    const b = loadFixture('arp-request');
    assert.equal(b.length, 52);
    assertNoOffload(b);
    const e = eth(b);
    assert.equal(macToString(b, e.dstOffset), 'ff:ff:ff:ff:ff:ff');
    assert.equal(macToString(b, e.srcOffset), GUEST_MAC);
    assert.equal(e.etherType, EtherType.ARP);
    const a = new ArpView();
    assert.equal(a.bind(b, e.payloadOffset, e.payloadLength), true);
    assert.equal(a.oper, ArpOp.REQUEST);
    assert.equal(macToString(b, a.shaOffset), GUEST_MAC);
    assert.equal(ipv4ToString(a.spa), '10.0.2.100');
    assert.equal(macToString(b, a.thaOffset), '00:00:00:00:00:00');
    assert.equal(ipv4ToString(a.tpa), '10.0.2.3');
  });

  test('dhcp-discover: udhcpc broadcast from 0.0.0.0:68 with a full UDP checksum', () => {
    const b = loadFixture('dhcp-discover');
    assertNoOffload(b);
    const e = eth(b);
    assert.equal(macToString(b, e.dstOffset), 'ff:ff:ff:ff:ff:ff');
    const ip = ipv4(b);
    assert.equal(ip.srcAddr, 0);
    assert.equal(ip.dstAddr, 0xffffffff);
    assert.equal(ip.protocol, IpProtocol.UDP);
    assert.equal(ip.ttl, 64);
    const u = new UdpView();
    assert.equal(u.bind(b, ip.payloadOffset, ip.payloadLength), true);
    assert.equal(u.srcPort, 68);
    assert.equal(u.dstPort, 67);
    assert.equal(u.length, ip.payloadLength);
    assert.equal(checksum(b, u.o, u.length, pseudoHeaderSum4(ip.srcAddr, ip.dstAddr, IpProtocol.UDP, u.length)), 0);
    // BOOTP (RFC 2131): op BOOTREQUEST, htype 1, hlen 6, chaddr = the TAP's MAC, magic cookie,
    // first option 53 (message type) = 1 DHCPDISCOVER.
    const m = u.payloadOffset;
    assert.deepEqual([b[m], b[m + 1], b[m + 2]], [1, 1, 6]);
    assert.equal(macToString(b, m + 28), GUEST_MAC);
    assert.equal(u32(b, m + 236), 0x63825363);
    assert.deepEqual([b[m + 240], b[m + 241], b[m + 242]], [53, 1, 1]);
  });

  test('icmp-echo-request: busybox ping to the gateway, checksum filled in by the sender', () => {
    const b = loadFixture('icmp-echo-request');
    assertNoOffload(b);
    const e = eth(b);
    assert.equal(macToString(b, e.dstOffset), GW_MAC);
    const ip = ipv4(b);
    assert.equal(ip.srcAddr, GUEST);
    assert.equal(ip.dstAddr, GW);
    assert.equal(ip.protocol, IpProtocol.ICMP);
    assert.equal(ip.totalLength, 84);
    assert.equal(ip.dontFragment, true);
    const i = new IcmpView();
    assert.equal(i.bind(b, ip.payloadOffset, ip.payloadLength), true);
    assert.equal(i.type, IcmpType.ECHO_REQUEST);
    assert.equal(i.code, 0);
    assert.equal(i.identifier, 0x1ca6);
    assert.equal(i.sequence, 0);
    assert.equal(i.payloadLength, 56);
    assert.equal(i.checksumValid, true);
  });

  test('udp-dns-query: NEEDS_CSUM with the pseudo-header seed in the field', () => {
    const b = loadFixture('udp-dns-query');
    assert.equal(vnetFlags(b, 0), VnetFlags.NEEDS_CSUM);
    assert.equal(vnetGsoType(b, 0), GsoType.NONE);
    assert.equal(vnetCsumStart(b, 0), 34);
    assert.equal(vnetCsumOffset(b, 0), 6);
    const ip = ipv4(b);
    assert.equal(ipv4ToString(ip.srcAddr), '10.0.2.100');
    assert.equal(ipv4ToString(ip.dstAddr), '10.0.2.3');
    const u = new UdpView();
    assert.equal(u.bind(b, ip.payloadOffset, ip.payloadLength), true);
    assert.equal(u.srcPort, 40053);
    assert.equal(u.dstPort, 53);
    assert.equal(u.length, 37);
    assert.equal(u.checksum, fold(pseudoHeaderSum4(GUEST, 0x0a000203, IpProtocol.UDP, 37)));
    // DNS header: id 0x7a5c, RD, one question.
    assert.equal(u16(b, u.payloadOffset), 0x7a5c);
    assert.equal(u16(b, u.payloadOffset + 2), 0x0100);
    assert.equal(u16(b, u.payloadOffset + 4), 1);
    completeAndVerifyL4Checksum(b, ip);
  });

  test('tcp-syn: Linux options MSS 1460, SACK-permitted, timestamps, window scale 10', () => {
    const b = loadFixture('tcp-syn');
    assert.equal(vnetFlags(b, 0), VnetFlags.NEEDS_CSUM);
    assert.equal(vnetGsoType(b, 0), GsoType.NONE);
    assert.equal(vnetCsumStart(b, 0), 34);
    assert.equal(vnetCsumOffset(b, 0), 16);
    const { ip, t } = tcp(b);
    assert.equal(ip.srcAddr, GUEST);
    assert.equal(ip.dstAddr, GW);
    assert.equal(ip.dontFragment, true);
    assert.equal(t.srcPort, 41000);
    assert.equal(t.dstPort, 8080);
    assert.equal(t.seqNumber, SYN_SEQ);
    assert.equal(t.ackNumber, 0);
    assert.equal(t.flags, TcpFlags.SYN);
    assert.equal(t.headerLength, 40);
    assert.equal(t.windowLen, 64240);
    assert.equal(t.payloadLength, 0);
    assert.equal(t.segmentLength, 1);
    assert.equal(t.checksum, fold(pseudoHeaderSum4(GUEST, GW, IpProtocol.TCP, 40)));
    const o = newTcpSynOptions();
    t.parseSynOptions(o);
    assert.deepEqual(o, { mss: 1460, windowScale: 10, sackPermitted: true, timestamps: true });
    completeAndVerifyL4Checksum(b, ip);
  });

  test('tcp-ack: completes the handshake against ISS 0x5eed0000', () => {
    const b = loadFixture('tcp-ack');
    const { t } = tcp(b);
    assert.equal(t.flags, TcpFlags.ACK);
    assert.equal(t.seqNumber, SYN_SEQ + 1);
    assert.equal(t.ackNumber, 0x5eed0001);
    assert.equal(t.headerLength, 32, 'timestamps: NOP NOP TS');
    assert.equal(t.segmentLength, 0);
  });

  test('tcp-superframe: gso TCPV4, 45 segments of 1448 in one 64 KiB frame', () => {
    const b = loadFixture('tcp-superframe');
    assert.equal(b.length, 65236);
    assert.equal(vnetFlags(b, 0), VnetFlags.NEEDS_CSUM);
    assert.equal(vnetGsoType(b, 0), GsoType.TCPV4);
    assert.equal(vnetGsoSize(b, 0), 1448);
    assert.equal(vnetHdrLen(b, 0), 66, 'Ethernet 14 + IPv4 20 + TCP 32');
    assert.equal(vnetCsumStart(b, 0), 34);
    assert.equal(vnetCsumOffset(b, 0), 16);
    const { ip, t } = tcp(b);
    assert.equal(ip.totalLength, 65212, 'Total Length covers the whole superframe');
    assert.equal(ip.totalLength, b.length - VNET_HDR_LEN - 14);
    assert.equal(t.srcPort, 41000);
    assert.equal(t.flags, TcpFlags.ACK | TcpFlags.PSH);
    assert.equal(t.headerLength, 32);
    assert.equal(t.payloadLength, 45 * 1448);
    assert.equal(t.segmentLength, 65160);
    assert.equal(t.checksum, fold(pseudoHeaderSum4(GUEST, GW, IpProtocol.TCP, 65192)),
      'seed uses the full L4 length, not gso_size');
    // The payload is the harness's pattern at its stream offset.
    const streamOffset = (t.seqNumber - (SYN_SEQ + 1)) >>> 0;
    assert.equal(streamOffset, 0x2c8b0);
    for (let k = 0; k < t.payloadLength; k += 997) {
      assert.equal(b[t.payloadOffset + k], (7 * (streamOffset + k) + 3) & 0xff, `payload byte ${k}`);
    }
    completeAndVerifyL4Checksum(b, ip);
  });

  test('tcp-fin: FIN|ACK right after 512 KiB of data', () => {
    const b = loadFixture('tcp-fin');
    const { t } = tcp(b);
    assert.equal(t.flags, TcpFlags.FIN | TcpFlags.ACK);
    assert.equal(t.fin, true);
    assert.equal(t.seqNumber, (SYN_SEQ + 1 + 512 * 1024) >>> 0);
    assert.equal(t.payloadLength, 0);
    assert.equal(t.segmentLength, 1);
  });

  test('ipv6-rs: router solicitation from the link-local address', () => {
    const b = loadFixture('ipv6-rs');
    assertNoOffload(b);
    const e = eth(b);
    assert.equal(e.etherType, EtherType.IPV6);
    assert.equal(macToString(b, e.dstOffset), '33:33:00:00:00:02');
    const v = new Ipv6View();
    assert.equal(v.bind(b, e.payloadOffset, e.payloadLength), true);
    assert.equal(v.version, 6);
    assert.equal(v.trafficClass, 0);
    assert.equal(v.flowLabel, 0);
    assert.equal(v.payloadLength, 16);
    assert.equal(v.nextHeader, Ipv6NextHeader.ICMPV6);
    assert.equal(v.hopLimit, 255);
    assert.equal(ipv6ToString(b, v.srcAddrOffset), 'fe80::54:53ff:fe00:64');
    assert.equal(ipv6ToString(b, v.dstAddrOffset), 'ff02::2');
    assert.equal(b[v.payloadOffset], 133, 'ICMPv6 Router Solicitation');
    // ICMPv6 checksum (RFC 8200 §8.1 pseudo-header) verifies.
    let pseudo = v.payloadLength + Ipv6NextHeader.ICMPV6;
    for (let i = 0; i < 32; i += 2) pseudo += u16(b, v.srcAddrOffset + i);
    assert.equal(checksum(b, v.payloadOffset, v.payloadLength, pseudo), 0);
  });

  test('ipv6-ns-dad: neighbour solicitation from :: to the solicited-node group', () => {
    const b = loadFixture('ipv6-ns-dad');
    const e = eth(b);
    const v = new Ipv6View();
    assert.equal(v.bind(b, e.payloadOffset, e.payloadLength), true);
    assert.equal(ipv6ToString(b, v.srcAddrOffset), '::');
    assert.equal(ipv6ToString(b, v.dstAddrOffset), 'ff02::1:ff00:64');
    assert.equal(v.nextHeader, Ipv6NextHeader.ICMPV6);
    assert.equal(v.hopLimit, 255);
    assert.equal(b[v.payloadOffset], 135);
    assert.equal(ipv6ToString(b, v.payloadOffset + 8), 'fe80::54:53ff:fe00:64', 'target address');
  });

  test('ipv6-mld2-report: hop-by-hop header first, hop limit 1', () => {
    const b = loadFixture('ipv6-mld2-report');
    const e = eth(b);
    assert.equal(macToString(b, e.dstOffset), '33:33:00:00:00:16');
    const v = new Ipv6View();
    assert.equal(v.bind(b, e.payloadOffset, e.payloadLength), true);
    assert.equal(v.nextHeader, Ipv6NextHeader.HOP_BY_HOP);
    assert.equal(v.hopLimit, 1);
    assert.equal(ipv6ToString(b, v.dstAddrOffset), 'ff02::16');
    assert.equal(v.payloadLength, 36);
    assert.equal(b[v.payloadOffset], Ipv6NextHeader.ICMPV6, 'hop-by-hop says ICMPv6 follows');
    assert.equal(b[v.payloadOffset + 8], 143, 'MLDv2 report');
  });

  test('udp-fragment-first: MF set, offset 0, UDP header present with the whole length', () => {
    const b = loadFixture('udp-fragment-first');
    assertNoOffload(b);
    const ip = ipv4(b);
    assert.equal(ip.totalLength, 1500);
    assert.equal(ip.moreFragments, true);
    assert.equal(ip.dontFragment, false);
    assert.equal(ip.fragmentOffset, 0);
    assert.equal(ip.isFragment, true);
    assert.equal(ip.protocol, IpProtocol.UDP);
    // The UDP header's Length is the whole datagram, longer than this fragment: UdpView refuses
    // it, which is right: a fragment must be reassembled (or dropped) before L4 parsing.
    assert.equal(u16(b, ip.payloadOffset + 4), 3008);
    assert.equal(new UdpView().bind(b, ip.payloadOffset, ip.payloadLength), false);
    assert.equal(u16(b, ip.payloadOffset), 40054);
    assert.equal(u16(b, ip.payloadOffset + 2), 9);
  });

  test('udp-fragment-last: offset 2960, no MF, same identification', () => {
    const first = ipv4(loadFixture('udp-fragment-first'));
    const b = loadFixture('udp-fragment-last');
    const ip = ipv4(b);
    assert.equal(ip.identification, first.identification);
    assert.equal(ip.moreFragments, false);
    assert.equal(ip.fragmentOffset, 2960);
    assert.equal(ip.isFragment, true);
    assert.equal(ip.payloadLength, 48);
    assert.equal(ip.payloadLength + ip.fragmentOffset, 3008, 'UDP header + 3000 bytes');
    // The payload pattern continues at datagram offset 2960 (UDP data offset 2952).
    assert.equal(b[ip.payloadOffset], (5 * 2952 + 1) & 0xff);
  });

  test('tcp6-syn: IPv6 fixed header and TCP options over IPv6', () => {
    const b = loadFixture('tcp6-syn');
    assert.equal(vnetFlags(b, 0), VnetFlags.NEEDS_CSUM);
    assert.equal(vnetCsumStart(b, 0), 54, 'Ethernet 14 + IPv6 40');
    assert.equal(vnetCsumOffset(b, 0), 16);
    const e = eth(b);
    assert.equal(e.etherType, EtherType.IPV6);
    const v = new Ipv6View();
    assert.equal(v.bind(b, e.payloadOffset, e.payloadLength), true);
    assert.equal(v.trafficClass, 0);
    assert.equal(v.flowLabel, 0x81639);
    assert.equal(v.payloadLength, 40);
    assert.equal(v.nextHeader, Ipv6NextHeader.TCP);
    assert.equal(v.hopLimit, 64);
    assert.equal(ipv6ToString(b, v.srcAddrOffset), 'fd00::100');
    assert.equal(ipv6ToString(b, v.dstAddrOffset), 'fd00::2');
    const t = new TcpView();
    assert.equal(t.bind(b, v.payloadOffset, v.payloadLength), true);
    assert.equal(t.srcPort, 41006);
    assert.equal(t.dstPort, 8080);
    assert.equal(t.flags, TcpFlags.SYN);
    const o = newTcpSynOptions();
    t.parseSynOptions(o);
    assert.deepEqual(o, { mss: 1440, windowScale: 10, sackPermitted: true, timestamps: true });
  });

  test('tcp6-superframe: gso TCPV6, 45 segments of 1428, seed over the IPv6 pseudo-header', () => {
    const b = loadFixture('tcp6-superframe');
    assert.equal(vnetFlags(b, 0), VnetFlags.NEEDS_CSUM);
    assert.equal(vnetGsoType(b, 0), GsoType.TCPV6);
    assert.equal(vnetGsoSize(b, 0), 1428);
    assert.equal(vnetHdrLen(b, 0), 86, 'Ethernet 14 + IPv6 40 + TCP 32');
    assert.equal(vnetCsumStart(b, 0), 54);
    const e = eth(b);
    const v = new Ipv6View();
    assert.equal(v.bind(b, e.payloadOffset, e.payloadLength), true);
    assert.equal(v.payloadLength, b.length - VNET_HDR_LEN - 14 - 40, 'Payload Length covers the superframe');
    const t = new TcpView();
    assert.equal(t.bind(b, v.payloadOffset, v.payloadLength), true);
    assert.equal(t.payloadLength, 45 * 1428);
    assert.equal(t.flags, TcpFlags.ACK | TcpFlags.PSH);
    // RFC 8200 §8.1 pseudo-header: addresses, upper-layer length, next header.
    let pseudo = v.payloadLength + IpProtocol.TCP;
    for (let i = 0; i < 32; i += 2) pseudo += u16(b, v.srcAddrOffset + i);
    assert.equal(t.checksum, fold(pseudo));
    const c = b.slice();
    setU16(c, t.o + 16, checksum(c, t.o, v.payloadLength));
    assert.equal(checksum(c, t.o, v.payloadLength, pseudo), 0);
    const syn = new TcpView();
    const s = loadFixture('tcp6-syn');
    assert.equal(syn.bind(s, 64, 40), true);
    const streamOffset = (t.seqNumber - (syn.seqNumber + 1)) >>> 0;
    for (let k = 0; k < t.payloadLength; k += 1001) {
      assert.equal(b[t.payloadOffset + k], (7 * (streamOffset + k) + 3) & 0xff, `payload byte ${k}`);
    }
  });

  test('no IPv4 view accepts an IPv6 frame and vice versa', () => {
    const six = loadFixture('ipv6-rs');
    const four = loadFixture('tcp-syn');
    assert.equal(new Ipv4View().bind(six, 24, six.length - 24), false);
    assert.equal(new Ipv6View().bind(four, 24, four.length - 24), false);
  });
});
