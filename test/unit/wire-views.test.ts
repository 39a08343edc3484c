// Byte-literal tests for every wire view: parse a literal and check each RFC field, emit and
// compare with the literal, and one test per malformed shape that bind() must refuse.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseHex as h } from '../fixtures/load';
import {
  ArpOp, ArpView, ARP_LEN, emitArp,
  EthernetView, emitEthernet, EtherType, ETH_HDR_LEN,
  Ipv4View, emitIpv4Header, setIpv4TotalLength, IpProtocol,
  IcmpView, IcmpType, emitIcmpEcho, emitIcmpError, finishIcmpChecksum, setIcmpIdentifier,
  UdpView, emitUdpHeader, setUdpChecksum,
  TcpView, TcpFlags, emitTcpHeader, emitSynAckOptions, patchTcpHeader, newTcpSynOptions, setTcpChecksum,
  Ipv6View, emitIpv6Header, ipv6ToString, IPV6_HDR_LEN, Ipv6NextHeader,
  GsoType, VnetFlags, emitVnetHeader, emitVnetNone,
  vnetFlags, vnetGsoType, vnetHdrLen, vnetGsoSize, vnetCsumStart, vnetCsumOffset,
  macToString, ipv4ToString,
} from '../../src/wire';

const GW_MAC = h('02 54 53 00 00 02');
const GUEST_MAC = h('02 54 53 00 00 64');

describe('virtio-net header', () => {
  // flags NEEDS_CSUM, gso TCPV4, hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16
  const literal = h('01 01 42 00 a8 05 22 00 10 00');

  test('parse: fields are little-endian', () => {
    assert.equal(vnetFlags(literal, 0), VnetFlags.NEEDS_CSUM);
    assert.equal(vnetGsoType(literal, 0), GsoType.TCPV4);
    assert.equal(vnetHdrLen(literal, 0), 66);
    assert.equal(vnetGsoSize(literal, 0), 1448);
    assert.equal(vnetCsumStart(literal, 0), 34);
    assert.equal(vnetCsumOffset(literal, 0), 16);
  });

  test('emit equals the literal, at an offset', () => {
    const b = new Uint8Array(13).fill(0xee);
    emitVnetHeader(b, 3, VnetFlags.NEEDS_CSUM, GsoType.TCPV4, 66, 1448, 34, 16);
    assert.deepEqual(b.subarray(3), literal);
    assert.deepEqual(b.subarray(0, 3), h('ee ee ee'));
  });

  test('emitVnetNone zeroes exactly ten bytes', () => {
    const b = new Uint8Array(12).fill(0xff);
    emitVnetNone(b, 1);
    assert.deepEqual(b, h('ff 00 00 00 00 00 00 00 00 00 00 ff'));
  });
});

describe('Ethernet', () => {
  const literal = h('02 54 53 00 00 02  02 54 53 00 00 64  08 00  de ad');

  test('parse', () => {
    const v = new EthernetView();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(macToString(literal, v.dstOffset), '02:54:53:00:00:02');
    assert.equal(macToString(literal, v.srcOffset), '02:54:53:00:00:64');
    assert.equal(v.etherType, EtherType.IPV4);
    assert.equal(v.payloadOffset, 14);
    assert.equal(v.payloadLength, 2);
  });

  test('emit equals the literal', () => {
    const b = new Uint8Array(16);
    emitEthernet(b, 0, GW_MAC, GUEST_MAC, EtherType.IPV4);
    b.set([0xde, 0xad], 14);
    assert.deepEqual(b, literal);
  });

  test('bind at an offset inside a larger buffer', () => {
    const b = new Uint8Array(40);
    b.set(literal, 10);
    const v = new EthernetView();
    assert.equal(v.bind(b, 10, literal.length), true);
    assert.equal(v.payloadOffset, 24);
    assert.equal(v.etherType, 0x0800);
  });

  test('malformed: shorter than 14 bytes', () => {
    assert.equal(new EthernetView().bind(literal, 0, ETH_HDR_LEN - 1), false);
  });

  test('malformed: range runs past the buffer', () => {
    assert.equal(new EthernetView().bind(literal, 4, literal.length), false);
  });
});

describe('ARP', () => {
  // Reply: 10.0.2.2 is at 02:54:53:00:00:02, to 10.0.2.100 at 02:54:53:00:00:64 (RFC 826).
  const literal = h(`
    00 01 08 00 06 04 00 02
    02 54 53 00 00 02 0a 00 02 02
    02 54 53 00 00 64 0a 00 02 64`);

  test('parse', () => {
    const v = new ArpView();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(v.oper, ArpOp.REPLY);
    assert.equal(macToString(literal, v.shaOffset), '02:54:53:00:00:02');
    assert.equal(ipv4ToString(v.spa), '10.0.2.2');
    assert.equal(macToString(literal, v.thaOffset), '02:54:53:00:00:64');
    assert.equal(ipv4ToString(v.tpa), '10.0.2.100');
  });

  test('emit equals the literal', () => {
    const b = new Uint8Array(ARP_LEN);
    emitArp(b, 0, ArpOp.REPLY, GW_MAC, 0x0a000202, GUEST_MAC, 0x0a000264);
    assert.deepEqual(b, literal);
  });

  test('trailing Ethernet padding is accepted', () => {
    const padded = new Uint8Array(46);
    padded.set(literal);
    assert.equal(new ArpView().bind(padded, 0, padded.length), true);
  });

  const mutated = (at: number, bytes: number[]): Uint8Array => {
    const b = literal.slice();
    b.set(bytes, at);
    return b;
  };

  test('malformed: shorter than 28 bytes', () => {
    assert.equal(new ArpView().bind(literal, 0, ARP_LEN - 1), false);
  });

  test('malformed: htype is not Ethernet (6 = IEEE 802)', () => {
    const b = mutated(0, [0x00, 0x06]);
    assert.equal(new ArpView().bind(b, 0, b.length), false);
  });

  test('malformed: ptype is not IPv4', () => {
    const b = mutated(2, [0x86, 0xdd]);
    assert.equal(new ArpView().bind(b, 0, b.length), false);
  });

  test('malformed: hlen is not 6', () => {
    const b = mutated(4, [8]);
    assert.equal(new ArpView().bind(b, 0, b.length), false);
  });

  test('malformed: plen is not 4', () => {
    const b = mutated(5, [16]);
    assert.equal(new ArpView().bind(b, 0, b.length), false);
  });
});

describe('IPv4', () => {
  // UDP 10.0.2.100 -> 10.0.2.3, DF, TTL 64, id 0x1234, 16 bytes of UDP, checksum 0x102f.
  const header = '45 00 00 24 12 34 40 00 40 11 10 2f 0a 00 02 64 0a 00 02 03';
  const literal = h(`${header} 9c 75 00 35 00 10 00 00 74 61 70 73 77 69 74 63`);

  test('parse', () => {
    const v = new Ipv4View();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(v.version, 4);
    assert.equal(v.headerLength, 20);
    assert.equal(v.tos, 0);
    assert.equal(v.totalLength, 36);
    assert.equal(v.identification, 0x1234);
    assert.equal(v.dontFragment, true);
    assert.equal(v.moreFragments, false);
    assert.equal(v.fragmentOffset, 0);
    assert.equal(v.isFragment, false);
    assert.equal(v.ttl, 64);
    assert.equal(v.protocol, IpProtocol.UDP);
    assert.equal(v.headerChecksum, 0x102f);
    assert.equal(v.headerChecksumValid, true);
    assert.equal(ipv4ToString(v.srcAddr), '10.0.2.100');
    assert.equal(ipv4ToString(v.dstAddr), '10.0.2.3');
    assert.equal(v.payloadOffset, 20);
    assert.equal(v.payloadLength, 16);
  });

  test('emit equals the literal header (checksum included)', () => {
    const b = new Uint8Array(20);
    emitIpv4Header(b, 0, 36, 0x1234, 64, IpProtocol.UDP, 0x0a000264, 0x0a000203);
    assert.deepEqual(b, h(header));
  });

  test('emit without DF', () => {
    const b = new Uint8Array(20);
    emitIpv4Header(b, 0, 36, 0x1234, 64, IpProtocol.UDP, 0x0a000264, 0x0a000203, false);
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, 20), false, 'total length 36 does not fit 20 bytes');
    const full = new Uint8Array(36);
    full.set(b);
    assert.equal(v.bind(full, 0, 36), true);
    assert.equal(v.dontFragment, false);
    assert.equal(v.headerChecksumValid, true);
  });

  test('setIpv4TotalLength rewrites length and identification and keeps the checksum valid', () => {
    const b = literal.slice();
    setIpv4TotalLength(b, 0, 28, 0xbeef);
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.totalLength, 28);
    assert.equal(v.identification, 0xbeef);
    assert.equal(v.headerChecksumValid, true);
  });

  test('a corrupted header fails the checksum but still binds', () => {
    const b = literal.slice();
    b[8] = 63;
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.headerChecksumValid, false);
  });

  test('fragment fields: MF set and offset 185 * 8', () => {
    const b = literal.slice();
    b.set([0x20, 0xb9], 6);
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.moreFragments, true);
    assert.equal(v.dontFragment, false);
    assert.equal(v.fragmentOffset, 1480);
    assert.equal(v.isFragment, true);
  });

  test('last fragment (offset only) is a fragment too', () => {
    const b = literal.slice();
    b.set([0x00, 0x01], 6);
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.isFragment, true);
    assert.equal(v.fragmentOffset, 8);
  });

  test('options: IHL 6 moves the payload', () => {
    // Same datagram with one 4-byte NOP,NOP,NOP,EOL option; total length 40.
    const b = h(`46 00 00 28 12 34 40 00 40 11 00 00 0a 00 02 64 0a 00 02 03 01 01 01 00
      9c 75 00 35 00 10 00 00 74 61 70 73 77 69 74 63`);
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.headerLength, 24);
    assert.equal(v.payloadOffset, 24);
    assert.equal(v.payloadLength, 16);
  });

  test('Ethernet padding after Total Length is ignored', () => {
    const b = new Uint8Array(46);
    b.set(literal);
    const v = new Ipv4View();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.payloadLength, 16);
  });

  const mutated = (at: number, bytes: number[]): Uint8Array => {
    const b = literal.slice();
    b.set(bytes, at);
    return b;
  };

  test('malformed: shorter than 20 bytes', () => {
    assert.equal(new Ipv4View().bind(literal, 0, 19), false);
  });

  test('malformed: version 6 in an IPv4 frame', () => {
    const b = mutated(0, [0x65]);
    assert.equal(new Ipv4View().bind(b, 0, b.length), false);
  });

  test('malformed: IHL < 5', () => {
    const b = mutated(0, [0x44]);
    assert.equal(new Ipv4View().bind(b, 0, b.length), false);
  });

  test('malformed: Total Length beyond the frame', () => {
    const b = mutated(2, [0x00, 0x25]);
    assert.equal(new Ipv4View().bind(b, 0, b.length), false);
  });

  test('malformed: Total Length smaller than the header', () => {
    const b = mutated(2, [0x00, 0x13]);
    assert.equal(new Ipv4View().bind(b, 0, b.length), false);
  });

  test('malformed: IHL (options) beyond Total Length', () => {
    const b = mutated(0, [0x4f]); // 60-byte header in a 36-byte datagram
    assert.equal(new Ipv4View().bind(b, 0, b.length), false);
  });

  test('malformed: range runs past the buffer', () => {
    assert.equal(new Ipv4View().bind(literal, 1, literal.length), false);
  });
});

describe('ICMP', () => {
  // Echo reply id 0x1ca6 seq 1 data "ping", checksum 0x0488.
  const literal = h('00 00 04 88 1c a6 00 01 70 69 6e 67');

  test('parse', () => {
    const v = new IcmpView();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(v.type, IcmpType.ECHO_REPLY);
    assert.equal(v.code, 0);
    assert.equal(v.checksum, 0x0488);
    assert.equal(v.identifier, 0x1ca6);
    assert.equal(v.sequence, 1);
    assert.equal(v.payloadOffset, 8);
    assert.equal(v.payloadLength, 4);
    assert.equal(v.checksumValid, true);
  });

  test('emit echo + finish checksum equals the literal', () => {
    const b = new Uint8Array(12);
    emitIcmpEcho(b, 0, IcmpType.ECHO_REPLY, 0x1ca6, 1);
    b.set([0x70, 0x69, 0x6e, 0x67], 8);
    finishIcmpChecksum(b, 0, 12);
    assert.deepEqual(b, literal);
  });

  test('emit error: port unreachable with next-hop field', () => {
    const b = new Uint8Array(8);
    emitIcmpError(b, 0, IcmpType.DEST_UNREACHABLE, 3, 0x000005dc);
    finishIcmpChecksum(b, 0, 8);
    assert.deepEqual(b, h('03 03 f7 20 00 00 05 dc'));
    const v = new IcmpView();
    assert.equal(v.bind(b, 0, 8), true);
    assert.equal(v.checksumValid, true);
  });

  test('setIcmpIdentifier then finish keeps the checksum valid', () => {
    const b = literal.slice();
    setIcmpIdentifier(b, 0, 0x4242);
    const v = new IcmpView();
    v.bind(b, 0, b.length);
    assert.equal(v.checksumValid, false);
    finishIcmpChecksum(b, 0, b.length);
    assert.equal(v.identifier, 0x4242);
    assert.equal(v.checksumValid, true);
  });

  test('malformed: shorter than 8 bytes', () => {
    assert.equal(new IcmpView().bind(literal, 0, 7), false);
  });
});

describe('UDP', () => {
  // 40053 -> 53, length 16, checksum 0, 8 bytes "tapswitc".
  const literal = h('9c 75 00 35 00 10 00 00 74 61 70 73 77 69 74 63');

  test('parse', () => {
    const v = new UdpView();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(v.srcPort, 40053);
    assert.equal(v.dstPort, 53);
    assert.equal(v.length, 16);
    assert.equal(v.checksum, 0);
    assert.equal(v.payloadOffset, 8);
    assert.equal(v.payloadLength, 8);
  });

  test('emit equals the literal; setUdpChecksum writes the field', () => {
    const b = new Uint8Array(16);
    emitUdpHeader(b, 0, 40053, 53, 16);
    b.set(literal.subarray(8), 8);
    assert.deepEqual(b, literal);
    setUdpChecksum(b, 0, 0xabcd);
    assert.deepEqual(b.subarray(6, 8), h('ab cd'));
  });

  test('Length shorter than the IP payload: the rest is ignored', () => {
    const b = literal.slice();
    b.set([0x00, 0x0a], 4);
    const v = new UdpView();
    assert.equal(v.bind(b, 0, b.length), true);
    assert.equal(v.payloadLength, 2);
  });

  test('malformed: shorter than 8 bytes', () => {
    assert.equal(new UdpView().bind(literal, 0, 7), false);
  });

  test('malformed: Length < 8', () => {
    const b = literal.slice();
    b.set([0x00, 0x07], 4);
    assert.equal(new UdpView().bind(b, 0, b.length), false);
  });

  test('malformed: Length beyond the IP payload', () => {
    const b = literal.slice();
    b.set([0x00, 0x11], 4);
    assert.equal(new UdpView().bind(b, 0, b.length), false);
  });
});

describe('TCP', () => {
  // SYN-ACK 8080 -> 41000, seq 0x5eed0000, ack 0x0d0ca2b3, window 65535, options MSS 1460, NOP, WS 7.
  const literal = h(`
    1f 90 a0 28 5e ed 00 00 0d 0c a2 b3 70 12 ff ff 00 00 00 00
    02 04 05 b4 01 03 03 07`);

  test('parse', () => {
    const v = new TcpView();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(v.srcPort, 8080);
    assert.equal(v.dstPort, 41000);
    assert.equal(v.seqNumber, 0x5eed0000);
    assert.equal(v.ackNumber, 0x0d0ca2b3);
    assert.equal(v.headerLength, 28);
    assert.equal(v.flags, TcpFlags.SYN | TcpFlags.ACK);
    assert.equal(v.syn, true);
    assert.equal(v.ack, true);
    assert.equal(v.fin, false);
    assert.equal(v.rst, false);
    assert.equal(v.windowLen, 65535);
    assert.equal(v.checksum, 0);
    assert.equal(v.urgentPointer, 0);
    assert.equal(v.payloadOffset, 28);
    assert.equal(v.payloadLength, 0);
    assert.equal(v.segmentLength, 1);
    const o = newTcpSynOptions();
    v.parseSynOptions(o);
    assert.deepEqual(o, { mss: 1460, windowScale: 7, sackPermitted: false, timestamps: false });
  });

  test('emit header + SYN-ACK options equals the literal', () => {
    const b = new Uint8Array(28);
    emitTcpHeader(b, 0, 8080, 41000, 0x5eed0000, 0x0d0ca2b3, TcpFlags.SYN | TcpFlags.ACK, 65535, 28);
    assert.equal(emitSynAckOptions(b, 20, 1460, 7), 8);
    assert.deepEqual(b, literal);
  });

  test('emitSynAckOptions without window scale writes MSS only', () => {
    const b = new Uint8Array(8).fill(0xee);
    assert.equal(emitSynAckOptions(b, 0, 1400, -1), 4);
    assert.deepEqual(b, h('02 04 05 78 ee ee ee ee'));
  });

  test('patchTcpHeader rewrites seq/ack/flags/window and clears the checksum', () => {
    const b = literal.slice();
    setTcpChecksum(b, 0, 0x1234);
    patchTcpHeader(b, 0, 0xffffffff, 1, TcpFlags.ACK | TcpFlags.PSH, 512);
    assert.deepEqual(b.subarray(4, 20), h('ff ff ff ff 00 00 00 01 70 18 02 00 00 00 00 00'));
  });

  test('segmentLength counts payload, SYN and FIN', () => {
    const b = new Uint8Array(25);
    emitTcpHeader(b, 0, 1, 2, 0, 0, TcpFlags.FIN | TcpFlags.ACK, 0);
    const v = new TcpView();
    assert.equal(v.bind(b, 0, 25), true);
    assert.equal(v.payloadLength, 5);
    assert.equal(v.segmentLength, 6);
  });

  const withOptions = (opts: string): Uint8Array => {
    const o = h(opts);
    assert.equal(o.length % 4, 0, 'options must fill whole 32-bit words');
    const b = new Uint8Array(20 + o.length);
    emitTcpHeader(b, 0, 41000, 8080, 1, 0, TcpFlags.SYN, 64240, 20 + o.length);
    b.set(o, 20);
    return b;
  };
  const synOptions = (b: Uint8Array): ReturnType<typeof newTcpSynOptions> => {
    const v = new TcpView();
    assert.equal(v.bind(b, 0, b.length), true);
    const o = newTcpSynOptions();
    o.mss = 99; // parseSynOptions must reset what a previous segment left
    v.parseSynOptions(o);
    return o;
  };

  test('options: all four, in Linux order', () => {
    assert.deepEqual(synOptions(withOptions('02 04 05 b4 04 02 08 0a 00 00 00 01 00 00 00 00 01 03 03 0a')),
      { mss: 1460, windowScale: 10, sackPermitted: true, timestamps: true });
  });

  test('options: window scale above 14 is clamped (RFC 7323 §2.3)', () => {
    assert.equal(synOptions(withOptions('03 03 0f 00')).windowScale, 14);
  });

  test('options: END stops the parse', () => {
    assert.deepEqual(synOptions(withOptions('00 00 00 00 02 04 05 b4')), newTcpSynOptions());
  });

  test('options: unknown kinds are skipped by their length', () => {
    assert.equal(synOptions(withOptions('fe 06 01 02 03 04 02 04 05 b4 01 01')).mss, 1460);
  });

  test('options: wrong-length MSS is ignored', () => {
    assert.equal(synOptions(withOptions('02 05 05 b4 00 01 01 01')).mss, 0);
  });

  test('malformed option: length 0 ends the parse (no endless loop)', () => {
    assert.deepEqual(synOptions(withOptions('04 00 02 04 05 b4 01 01')), newTcpSynOptions());
  });

  test('malformed option: length 1 ends the parse', () => {
    assert.deepEqual(synOptions(withOptions('04 01 02 04 05 b4 01 01')), newTcpSynOptions());
  });

  test('malformed option: length runs past the header', () => {
    assert.deepEqual(synOptions(withOptions('04 02 08 0a 00 00 00 00')).timestamps, false);
    assert.equal(synOptions(withOptions('04 02 08 0a 00 00 00 00')).sackPermitted, true);
  });

  test('malformed option: kind without a length byte at the end', () => {
    assert.equal(synOptions(withOptions('01 01 01 02')).mss, 0);
  });

  test('malformed: shorter than 20 bytes', () => {
    assert.equal(new TcpView().bind(literal, 0, 19), false);
  });

  test('malformed: data offset < 5', () => {
    const b = literal.slice();
    b[12] = 0x40;
    assert.equal(new TcpView().bind(b, 0, b.length), false);
  });

  test('malformed: data offset beyond the segment', () => {
    const b = literal.slice();
    b[12] = 0x80; // 32-byte header in 28 bytes
    assert.equal(new TcpView().bind(b, 0, b.length), false);
  });

  test('malformed: range runs past the buffer', () => {
    assert.equal(new TcpView().bind(literal, 8, 21), false);
  });
});

describe('IPv6', () => {
  // Traffic class 0xb8, flow label 0xabcde, 8-byte UDP payload, hop limit 64, fe80::1 -> ff02::1.
  const literal = h(`
    6b 8a bc de 00 08 11 40
    fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01
    ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01
    02 22 02 23 00 08 00 00`);

  test('parse', () => {
    const v = new Ipv6View();
    assert.equal(v.bind(literal, 0, literal.length), true);
    assert.equal(v.version, 6);
    assert.equal(v.trafficClass, 0xb8);
    assert.equal(v.flowLabel, 0xabcde);
    assert.equal(v.payloadLength, 8);
    assert.equal(v.nextHeader, Ipv6NextHeader.UDP);
    assert.equal(v.hopLimit, 64);
    assert.equal(v.srcAddrOffset, 8);
    assert.equal(v.dstAddrOffset, 24);
    assert.equal(ipv6ToString(literal, v.srcAddrOffset), 'fe80::1');
    assert.equal(ipv6ToString(literal, v.dstAddrOffset), 'ff02::1');
    assert.equal(v.payloadOffset, IPV6_HDR_LEN);
    assert.equal(v.totalLength, 48);
  });

  test('emit equals the literal header', () => {
    const b = new Uint8Array(48);
    emitIpv6Header(b, 0, 0xb8, 0xabcde, 8, Ipv6NextHeader.UDP, 64, literal.subarray(8, 24), literal.subarray(24, 40));
    b.set(literal.subarray(40), 40);
    assert.deepEqual(b, literal);
  });

  test('bind at an offset with Ethernet padding after the payload', () => {
    const b = new Uint8Array(70);
    b.set(literal, 14);
    const v = new Ipv6View();
    assert.equal(v.bind(b, 14, 56), true);
    assert.equal(v.payloadOffset, 54);
    assert.equal(v.payloadLength, 8);
  });

  test('ipv6ToString follows RFC 5952', () => {
    const a = (s: string): string => ipv6ToString(h(s), 0);
    assert.equal(a('00000000000000000000000000000000'), '::');
    assert.equal(a('00000000000000000000000000000001'), '::1');
    assert.equal(a('20010db8000000000000000000000000'), '2001:db8::');
    assert.equal(a('20010db8000000010000000000000001'), '2001:db8:0:1::1', 'one zero word stays 0');
    assert.equal(a('20010db8000000000001000000000001'), '2001:db8::1:0:0:1', 'first of two equal runs');
    assert.equal(a('20010db800000000000100000000000f'), '2001:db8::1:0:0:f');
    assert.equal(a('20010db8000100020003000400050006'), '2001:db8:1:2:3:4:5:6');
  });

  test('malformed: shorter than 40 bytes', () => {
    assert.equal(new Ipv6View().bind(literal, 0, 39), false);
  });

  test('malformed: version 4 in an IPv6 frame', () => {
    const b = literal.slice();
    b[0] = 0x4b;
    assert.equal(new Ipv6View().bind(b, 0, b.length), false);
  });

  test('malformed: Payload Length beyond the frame', () => {
    const b = literal.slice();
    b.set([0x00, 0x09], 4);
    assert.equal(new Ipv6View().bind(b, 0, b.length), false);
  });

  test('malformed: range runs past the buffer', () => {
    assert.equal(new Ipv6View().bind(literal, 1, literal.length), false);
  });
});
