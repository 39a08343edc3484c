// The data plane with config.ipv6 (slirp4netns -6) over an in-memory device: the router's RA goes out
// at start, NDP and echo to our addresses are answered through the whole loop (TapPort, switch,
// router), an IPv6 TCP SYN reaches the translators (onForward6), and without config.ipv6 the same
// frames are only counted. The SYN goes to fd00::2 with host loopback disabled, so no host socket
// opens.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MemoryDevice } from '../../src/link/memory';
import { DataPlane } from '../../src/worker/dataplane';
import { buildDataPlaneConfig, parseCidr } from '../../src/control/config';
import type { Logger } from '../../src/translate/types';
import {
  EtherType, Icmpv6Type, Icmpv6View, Ipv6View, NdpOptionType, emitEthernet, emitIcmpv6Echo, emitIpv6Header,
  emitLinkLayerAddrOption, emitMulticastMac6, emitNeighborSolicit, finishIcmpv6Checksum, ipv6ToString, macToString,
  parseIpv6Address, emitTcpHeader, TcpFlags,
} from '../../src/wire';

const quiet: Logger = { enabled: () => false, log: () => {} };
const GUEST_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const G6 = 'fd00::5054:ff:fe12:3456';
const IP = 24;
const L4 = 64;

function plane(ipv6: boolean): { dev: MemoryDevice; dp: DataPlane; gwMac: Uint8Array } {
  const config = buildDataPlaneConfig({
    cidr: parseCidr('10.0.2.0/24'), mtu: 1500, hostLoopback: false, dnsUpstreams: [], dnsEnabled: false, logLevel: 'error',
    ipv6: ipv6 ? {} : null,
  });
  const dev = new MemoryDevice('v6', 16);
  const dp = new DataPlane(dev, config, quiet, true);
  dp.start();
  return { dev, dp, gwMac: Uint8Array.from(config.gatewayMac) };
}

function frame6(nh: number, src: string, dst: string, payload: Uint8Array, dstMac: Uint8Array, hop = 64): Uint8Array {
  const b = new Uint8Array(L4 + payload.length);
  const d = parseIpv6Address(dst)!;
  const mac = new Uint8Array(6);
  if (d[0] === 0xff) emitMulticastMac6(mac, 0, d, 0); else mac.set(dstMac);
  emitEthernet(b, 10, mac, GUEST_MAC, EtherType.IPV6);
  emitIpv6Header(b, IP, 0, 0, payload.length, nh, hop, parseIpv6Address(src)!, d);
  b.set(payload, L4);
  if (nh === 58) finishIcmpv6Checksum(b, L4, payload.length, b, IP + 8, IP + 24);
  return b;
}

function icmpOf(f: Uint8Array): { type: number; src: string; dst: string; ethDst: string } {
  const ip = new Ipv6View();
  assert.ok(ip.bind(f, IP, f.length - IP));
  const m = new Icmpv6View();
  assert.ok(m.bind(f, ip.payloadOffset, ip.payloadLength));
  assert.equal(m.checksumValid(f, ip.srcAddrOffset, ip.dstAddrOffset), true);
  return { type: m.type, src: ipv6ToString(f, ip.srcAddrOffset), dst: ipv6ToString(f, ip.dstAddrOffset), ethDst: macToString(f, 10) };
}

test('with config.ipv6: RA at start, NS and echo answered through the loop, TCP/UDP/echo handed to the translators', (t) => {
  const { dev, dp, gwMac } = plane(true);
  t.after(() => dp.close());
  assert.equal(dev.sent.length, 1, 'the start-up RA');
  assert.deepEqual(icmpOf(dev.sent[0]!), { type: Icmpv6Type.ROUTER_ADVERT, src: 'fe80::2', dst: 'ff02::1', ethDst: '33:33:00:00:00:01' });
  const ns = new Uint8Array(32);
  emitNeighborSolicit(ns, 0, parseIpv6Address('fd00::2')!, 0);
  emitLinkLayerAddrOption(ns, 24, NdpOptionType.SOURCE_LL_ADDR, GUEST_MAC, 0);
  dev.inject(frame6(58, G6, 'ff02::1:ff00:2', ns, gwMac, 255));
  const echo = new Uint8Array(16);
  emitIcmpv6Echo(echo, 0, Icmpv6Type.ECHO_REQUEST, 7, 1);
  dev.inject(frame6(58, G6, 'fd00::2', echo, gwMac));
  const replies = dev.sent.slice(1).map(icmpOf);
  assert.deepEqual(replies.map((r) => [r.type, r.src, r.dst, r.ethDst]), [
    [Icmpv6Type.NEIGHBOR_ADVERT, 'fd00::2', G6, '52:54:00:12:34:56'],
    [Icmpv6Type.ECHO_REPLY, 'fd00::2', G6, '52:54:00:12:34:56'],
  ]);
  // To the translators: TCP to fd00::2 (host loopback off: no socket).
  const syn = new Uint8Array(20);
  emitTcpHeader(syn, 0, 40000, 80, 1, 0, TcpFlags.SYN, 64240);
  dev.inject(frame6(6, G6, 'fd00::2', syn, gwMac));
  const c = dp.snapshot();
  assert.equal(c.ipv6_forwarded, 1);
  assert.equal(c.packet_loop_exceptions ?? 0, 0);
  assert.equal(c.gw_ipv6_dropped ?? 0, 0);
});

test('without config.ipv6: the same frames are counted and dropped, no RA', (t) => {
  const { dev, dp, gwMac } = plane(false);
  t.after(() => dp.close());
  const echo = new Uint8Array(16);
  emitIcmpv6Echo(echo, 0, Icmpv6Type.ECHO_REQUEST, 7, 1);
  dev.inject(frame6(58, G6, 'fd00::2', echo, gwMac));
  assert.equal(dev.sent.length, 0);
  const c = dp.snapshot();
  assert.equal(c.gw_ipv6_dropped, 1);
  assert.equal(c.ipv6_forwarded ?? 0, 0);
});
