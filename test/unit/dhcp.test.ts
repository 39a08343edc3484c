import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { DhcpServer, OFFER_HOLD_MS, type DhcpServerConfig } from '../../src/gateway/dhcp-server';
import type { RouterConfig } from '../../src/gateway/router';
import { parseIpv4, parseMac } from '../../src/wire/addr';
import { checksum, pseudoHeaderSum4 } from '../../src/wire/checksum';
import { emitEthernet, EtherType } from '../../src/wire/ethernet';
import { emitIpv4Header, IpProtocol, Ipv4View, IPV4_HDR_LEN } from '../../src/wire/ipv4';
import { emitUdpHeader, setUdpChecksum, UdpView } from '../../src/wire/udp';
import {
  BootpOp, DHCP_FLAG_BROADCAST, DhcpMessageType, DhcpOption, type DhcpRepr, DhcpView, dhcpBufferLen, emitDhcp,
  parseDhcp,
} from '../../src/wire/dhcp';
import { loadFixture } from '../fixtures/load';
import { BCAST, ETH, gatewayOnMemory, GW, GW_MAC, IP, L4, ROUTER_CFG } from '../helpers/frames';

const ip = (s: string): number => parseIpv4(s)!;
const mac = (s: string): Uint8Array => parseMac(s)!;
const hex = (s: string): string => s.replace(/\s+/g, '').toLowerCase();
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const u32b = (v: number): Uint8Array => new Uint8Array([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);

const CFG = ROUTER_CFG;
const MSG = L4 + 8;

/** The udhcpc client captured in test/fixtures/dhcp-discover.hex. */
const CLIENT_MAC = mac('02:54:53:00:00:64');
const XID = 0x43877c1f;

function setup(cfg: RouterConfig = CFG) {
  const counters: Record<string, number> = {};
  const { dev, router, advance } = gatewayOnMemory(cfg, 5_000,
    () => { counters.test_forwarded = (counters.test_forwarded ?? 0) + 1; }, counters);
  return { dev, router, counters, advance };
}

/** What udhcpc sends, shaped like the capture: client id, max size, parameter list, vendor class. */
function clientRepr(type: number, chaddr: Uint8Array, xid: number, extra: Array<[number, Uint8Array]> = [], ciaddr = 0, flags = 0): DhcpRepr {
  return {
    op: BootpOp.REQUEST, xid, secs: 0, flags, ciaddr, yiaddr: 0, siaddr: 0, giaddr: 0, chaddr,
    options: [
      [DhcpOption.MESSAGE_TYPE, new Uint8Array([type])],
      [DhcpOption.CLIENT_ID, new Uint8Array([1, ...chaddr])],
      ...extra,
      [DhcpOption.MAX_MESSAGE_SIZE, new Uint8Array([0x02, 0x40])],
      [DhcpOption.PARAMETER_REQUEST_LIST, new Uint8Array([1, 3, 6, 12, 15, 28, 42])],
      [DhcpOption.VENDOR_CLASS_ID, new TextEncoder().encode('udhcp 1.35.0')],
    ],
  };
}

function clientFrame(r: DhcpRepr, src = 0, dst = 0xffffffff, dstMac = BCAST): Uint8Array {
  const n = dhcpBufferLen(r);
  const b = new Uint8Array(MSG + n);
  emitEthernet(b, ETH, dstMac, r.chaddr, EtherType.IPV4);
  emitIpv4Header(b, IP, IPV4_HDR_LEN + 8 + n, 0, 64, IpProtocol.UDP, src, dst, false);
  emitUdpHeader(b, L4, 68, 67, 8 + n);
  assert.equal(emitDhcp(b, MSG, r), n);
  setUdpChecksum(b, L4, checksum(b, L4, 8 + n, pseudoHeaderSum4(src, dst, IpProtocol.UDP, 8 + n)));
  return b;
}

interface Reply { ethDst: string; ipSrc: number; ipDst: number; msg: Uint8Array; repr: DhcpRepr }

/** Check the IPv4/UDP envelope of a server reply and return its parts. */
function openReply(f: Uint8Array): Reply {
  assert.equal(toHex(f.subarray(0, ETH)), '00'.repeat(10));
  assert.equal(toHex(f.subarray(ETH + 6, ETH + 12)), toHex(GW_MAC));
  assert.equal((f[ETH + 12]! << 8) | f[ETH + 13]!, EtherType.IPV4);
  const v = new Ipv4View();
  assert.ok(v.bind(f, IP, f.length - IP));
  assert.equal(v.totalLength, f.length - IP);
  assert.ok(v.headerChecksumValid);
  assert.equal(v.protocol, IpProtocol.UDP);
  const u = new UdpView();
  assert.ok(u.bind(f, v.payloadOffset, v.payloadLength));
  assert.equal(u.srcPort, 67);
  assert.equal(u.dstPort, 68);
  assert.notEqual(u.checksum, 0);
  assert.equal(checksum(f, L4, u.length, pseudoHeaderSum4(v.srcAddr, v.dstAddr, IpProtocol.UDP, u.length)), 0, 'UDP checksum');
  const msg = f.slice(u.payloadOffset, u.payloadOffset + u.payloadLength);
  const repr = parseDhcp(msg, 0, msg.length);
  assert.ok(repr);
  return { ethDst: toHex(f.subarray(ETH, ETH + 6)), ipSrc: v.srcAddr, ipDst: v.dstAddr, msg, repr };
}

/** The options the server sends in OFFER/ACK, as hex: 54, 51, 1, 3, 6, 26 after 53. */
const PARAMS = '3604 0a000202 3304 00015180 0104 ffffff00 0304 0a000202 0604 0a000203 1a02 05dc ff';

function expectedMessage(type: number, yiaddr: string, ciaddr = '00000000', flags = '0000', options = PARAMS): string {
  const head = `0201 0600 43877c1f 0000 ${flags} ${ciaddr} ${yiaddr} 00000000 00000000 025453000064 ${'00'.repeat(10)}`;
  const body = hex(`${head}${'00'.repeat(64 + 128)} 63825363 3501${type.toString(16).padStart(2, '0')} ${options}`);
  return body.padEnd(600, '0');
}

test('the captured udhcpc DISCOVER parses', () => {
  const f = loadFixture('dhcp-discover');
  const v = new DhcpView();
  assert.ok(v.bind(f, MSG, f.length - MSG));
  assert.equal(v.op, BootpOp.REQUEST);
  assert.equal(v.xid, XID);
  assert.equal(v.ciaddr, 0);
  assert.equal(v.broadcastFlag, false);
  assert.equal(toHex(f.subarray(v.chaddrOffset, v.chaddrOffset + 6)), toHex(CLIENT_MAC));
  assert.equal(v.messageType, DhcpMessageType.DISCOVER);
  assert.equal(v.optionU32(DhcpOption.REQUESTED_IP), -1);
  const p = v.findOption(DhcpOption.VENDOR_CLASS_ID);
  assert.equal(new TextDecoder().decode(f.subarray(p, p + v.optionLength)), 'udhcp 1.35.0');
  const r = parseDhcp(f, MSG, f.length - MSG)!;
  assert.deepEqual(r.options.map(([c]) => c), [53, 57, 55, 60, 61]);
});

test('udhcpc exchange: DISCOVER -> OFFER, REQUEST -> ACK of 10.0.2.15, byte for byte', () => {
  const { dev, counters } = setup();
  dev.inject(loadFixture('dhcp-discover'));
  assert.equal(dev.sent.length, 1);
  const offer = openReply(dev.sent[0]!);
  assert.equal(offer.ethDst, 'ffffffffffff');
  assert.equal(offer.ipSrc, GW);
  assert.equal(offer.ipDst, 0xffffffff);
  assert.equal(toHex(offer.msg), expectedMessage(DhcpMessageType.OFFER, '0a00020f'));
  // The whole frame's fixed part, literally.
  assert.equal(toHex(dev.sent[0]!.subarray(0, L4)).slice(0, 2 * (IP + 10)),
    hex('00000000000000000000 ffffffffffff 52550a000202 0800 4500 0148 0000 0000 4011'));

  // udhcpc's REQUEST (selecting state): requested IP + server id, broadcast.
  const req = clientRepr(DhcpMessageType.REQUEST, CLIENT_MAC, XID,
    [[DhcpOption.REQUESTED_IP, u32b(ip('10.0.2.15'))], [DhcpOption.SERVER_ID, u32b(GW)]]);
  dev.inject(clientFrame(req));
  assert.equal(dev.sent.length, 2);
  const ack = openReply(dev.sent[1]!);
  assert.equal(ack.ethDst, 'ffffffffffff');
  assert.equal(ack.ipDst, 0xffffffff);
  assert.equal(toHex(ack.msg), expectedMessage(DhcpMessageType.ACK, '0a00020f'));
  assert.equal(counters.dhcp_offer, 1);
  assert.equal(counters.dhcp_ack, 1);
  assert.equal(counters.dhcp_reply_sent, 2);
  assert.equal(counters.test_forwarded, undefined);

  // Renewing: unicast from 10.0.2.15 to the server, ciaddr set -> unicast ACK to ciaddr/chaddr.
  const renew = clientRepr(DhcpMessageType.REQUEST, CLIENT_MAC, XID, [], ip('10.0.2.15'));
  dev.inject(clientFrame(renew, ip('10.0.2.15'), GW, GW_MAC));
  const ack2 = openReply(dev.sent[2]!);
  assert.equal(ack2.ethDst, toHex(CLIENT_MAC));
  assert.equal(ack2.ipDst, ip('10.0.2.15'));
  assert.equal(toHex(ack2.msg), expectedMessage(DhcpMessageType.ACK, '0a00020f', '0a00020f'));
});

test('NAK for addresses that are not ours; REQUEST for another server is silent', () => {
  const { dev, counters, router } = setup();
  const nakOptions = '3604 0a000202 ff';
  for (const addr of ['10.0.2.100', '192.168.1.50', '10.0.2.31']) {
    const r = clientRepr(DhcpMessageType.REQUEST, CLIENT_MAC, XID, [[DhcpOption.REQUESTED_IP, u32b(ip(addr))]]);
    dev.inject(clientFrame(r));
    const nak = openReply(dev.sent.at(-1)!);
    assert.equal(nak.ethDst, 'ffffffffffff');
    assert.equal(nak.ipDst, 0xffffffff);
    assert.equal(toHex(nak.msg), expectedMessage(DhcpMessageType.NAK, '00000000', '00000000', '0000', nakOptions));
  }
  assert.equal(counters.dhcp_nak, 3);
  // Offer, then the client picks another server: no reply and the offer is withdrawn.
  dev.inject(loadFixture('dhcp-discover'));
  const before = dev.sent.length;
  dev.inject(clientFrame(clientRepr(DhcpMessageType.REQUEST, CLIENT_MAC, XID,
    [[DhcpOption.REQUESTED_IP, u32b(ip('10.0.2.15'))], [DhcpOption.SERVER_ID, u32b(ip('10.0.2.254'))]])));
  assert.equal(dev.sent.length, before);
  assert.equal(counters.dhcp_request_other_server, 1);
  assert.equal(router.dhcp!.leases()[0]!.state, 'free');
});

test('broadcast flag honoured even with ciaddr; DNS option omitted when DNS is disabled; MTU option', () => {
  const { dev } = setup({ ...CFG, dns: 0, mtu: 65520 });
  dev.inject(loadFixture('dhcp-discover'));
  const offer = openReply(dev.sent[0]!);
  assert.equal(toHex(offer.msg), expectedMessage(DhcpMessageType.OFFER, '0a00020f', '00000000', '0000',
    '3604 0a000202 3304 00015180 0104 ffffff00 0304 0a000202 1a02 fff0 ff'));
  const renew = clientRepr(DhcpMessageType.REQUEST, CLIENT_MAC, XID, [], ip('10.0.2.15'), DHCP_FLAG_BROADCAST);
  dev.inject(clientFrame(renew, ip('10.0.2.15'), GW, GW_MAC));
  const ack = openReply(dev.sent[1]!);
  assert.equal(ack.ethDst, 'ffffffffffff');
  assert.equal(ack.ipDst, 0xffffffff);
  assert.equal(ack.repr.flags, DHCP_FLAG_BROADCAST);
});

// ---- pool logic, straight on the server ----

function server(cfg: Partial<DhcpServerConfig> = {}) {
  let t = 0;
  const s = new DhcpServer({ ...CFG, ...cfg }, { now: () => t });
  const out = new Uint8Array(400);
  const ask = (r: DhcpRepr): DhcpRepr | null => {
    const b = new Uint8Array(dhcpBufferLen(r));
    emitDhcp(b, 0, r);
    const n = s.handle(b, 0, b.length, out, 50);
    return n === 0 ? null : parseDhcp(out, 50, n);
  };
  const typeOf = (r: DhcpRepr | null): number => r?.options.find(([c]) => c === 53)?.[1][0] ?? -1;
  const discover = (m: Uint8Array, extra: Array<[number, Uint8Array]> = []) => ask(clientRepr(DhcpMessageType.DISCOVER, m, 1, extra));
  const request = (m: Uint8Array, addr: number) => ask(clientRepr(DhcpMessageType.REQUEST, m, 1,
    [[DhcpOption.REQUESTED_IP, u32b(addr)], [DhcpOption.SERVER_ID, u32b(GW)]]));
  const lease = (m: Uint8Array): number => {
    const o = discover(m);
    assert.equal(typeOf(o), DhcpMessageType.OFFER);
    const a = request(m, o!.yiaddr);
    assert.equal(typeOf(a), DhcpMessageType.ACK);
    return a!.yiaddr;
  };
  return { s, ask, typeOf, discover, request, lease, advance: (ms: number) => { t += ms; } };
}

const macN = (i: number): Uint8Array => new Uint8Array([0x02, 0, 0, 0, 0x10, i]);

test('pool: 16 leases from network+15, then exhaustion', () => {
  const { s, lease, discover, request, typeOf } = server();
  for (let i = 0; i < 16; i++) assert.equal(lease(macN(i)), ip('10.0.2.15') + i);
  assert.equal(discover(macN(100)), null);
  assert.equal(s.counters.dhcp_pool_exhausted, 1);
  // Asking for an address another client holds is refused.
  assert.equal(typeOf(request(macN(100), ip('10.0.2.20'))), DhcpMessageType.NAK);
  assert.deepEqual(s.leases().map((l) => l.state), Array(16).fill('bound'));
});

test('pool: the same MAC gets the same address again (after release too); others get fresh ones', () => {
  const { s, lease, discover, ask } = server();
  const a = macN(1), b = macN(2);
  assert.equal(lease(a), ip('10.0.2.15'));
  assert.equal(discover(a)!.yiaddr, ip('10.0.2.15'), 'rediscover while bound');
  assert.equal(lease(a), ip('10.0.2.15'));
  ask(clientRepr(DhcpMessageType.RELEASE, a, 9, [], ip('10.0.2.15')));
  assert.equal(s.counters.dhcp_release, 1);
  assert.equal(s.leases()[0]!.state, 'free');
  assert.equal(lease(b), ip('10.0.2.16'), 'never-used addresses first');
  assert.equal(lease(a), ip('10.0.2.15'), 'A comes back to its address');
  // A release for an address the client does not hold changes nothing.
  ask(clientRepr(DhcpMessageType.RELEASE, b, 9, [], ip('10.0.2.15')));
  assert.equal(s.counters.dhcp_release_unknown, 1);
  assert.equal(s.leases()[0]!.state, 'bound');
});

test('pool: a requested address is honoured when free; offers and leases expire', () => {
  const { s, lease, discover, advance } = server({ dhcpCount: 2 });
  assert.equal(discover(macN(1), [[DhcpOption.REQUESTED_IP, u32b(ip('10.0.2.16'))]])!.yiaddr, ip('10.0.2.16'));
  assert.equal(discover(macN(2))!.yiaddr, ip('10.0.2.15'));
  assert.equal(discover(macN(3)), null, 'both held by offers');
  advance(OFFER_HOLD_MS + 1);
  assert.equal(lease(macN(3)), ip('10.0.2.15'), 'offers ran out: least recently used first');
  assert.equal(lease(macN(4)), ip('10.0.2.16'));
  assert.equal(discover(macN(5)), null);
  advance(86_400_000 + 1);
  assert.equal(lease(macN(5)), ip('10.0.2.15'), 'leases ran out');
  assert.equal(s.leases()[1]!.state, 'free');
});

test('DECLINE parks the address; INFORM gets parameters only', () => {
  const { s, lease, ask, typeOf } = server();
  const a = macN(1);
  assert.equal(lease(a), ip('10.0.2.15'));
  ask(clientRepr(DhcpMessageType.DECLINE, a, 3, [[DhcpOption.REQUESTED_IP, u32b(ip('10.0.2.15'))]]));
  assert.equal(s.counters.dhcp_decline, 1);
  assert.equal(s.leases()[0]!.state, 'declined');
  assert.equal(lease(a), ip('10.0.2.16'));
  const inform = ask(clientRepr(DhcpMessageType.INFORM, macN(9), 4, [], ip('10.0.2.100')));
  assert.equal(typeOf(inform), DhcpMessageType.ACK);
  assert.equal(inform!.yiaddr, 0);
  assert.equal(inform!.ciaddr, ip('10.0.2.100'));
  assert.equal(inform!.options.some(([c]) => c === DhcpOption.LEASE_TIME), false);
  assert.equal(s.replyBroadcast, false);
  assert.equal(s.replyDstIp, ip('10.0.2.100'));
});

test('malformed DHCP messages are dropped and counted', () => {
  const { dev, counters } = setup();
  const good = loadFixture('dhcp-discover');
  const frames: Uint8Array[] = [];
  const withUdpPayload = (payload: Uint8Array): Uint8Array => {
    const b = new Uint8Array(MSG + payload.length);
    b.set(good.subarray(0, MSG));
    b.set(payload, MSG);
    b[IP + 2] = (IPV4_HDR_LEN + 8 + payload.length) >> 8; b[IP + 3] = (IPV4_HDR_LEN + 8 + payload.length) & 0xff;
    b[IP + 10] = 0; b[IP + 11] = 0;
    const c = checksum(b, IP, IPV4_HDR_LEN); b[IP + 10] = c >> 8; b[IP + 11] = c & 0xff;
    b[L4 + 4] = (8 + payload.length) >> 8; b[L4 + 5] = (8 + payload.length) & 0xff;
    b[L4 + 6] = 0; b[L4 + 7] = 0;
    return b;
  };
  const msg = good.slice(MSG);
  frames.push(withUdpPayload(msg.slice(0, 239))); // shorter than the fixed part
  const badCookie = msg.slice(); badCookie[236] = 0; frames.push(withUdpPayload(badCookie));
  const overrun = msg.slice(0, 244); overrun.set([53, 1, 1, 55], 240); frames.push(withUdpPayload(overrun)); // 55 has no length
  const overrun2 = msg.slice(0, 246); overrun2.set([53, 1, 1, 60, 40, 1], 240); frames.push(withUdpPayload(overrun2));
  const reply = msg.slice(); reply[0] = BootpOp.REPLY; frames.push(withUdpPayload(reply));
  const hlen = msg.slice(); hlen[2] = 16; frames.push(withUdpPayload(hlen));
  const bootp = msg.slice(); bootp[242] = 0; bootp[240] = 0; bootp[241] = 0; frames.push(withUdpPayload(bootp)); // 53 turned into PADs
  const offerFromClient = msg.slice(); offerFromClient[242] = DhcpMessageType.OFFER; frames.push(withUdpPayload(offerFromClient));
  const zeroMac = msg.slice(); zeroMac.fill(0, 28, 34); frames.push(withUdpPayload(zeroMac));
  const badType = msg.slice(); badType[242] = 200; frames.push(withUdpPayload(badType)); // no such message type
  for (const f of frames) dev.inject(f);
  assert.equal(dev.sent.length, 0);
  assert.equal(counters.dhcp_malformed, 5);
  assert.equal(counters.dhcp_not_request, 1);
  assert.equal(counters.dhcp_bootp_ignored, 1);
  assert.equal(counters.dhcp_unexpected_type, 2);
  assert.equal(counters.dhcp_bad_chaddr, 1);
  assert.equal(counters.test_forwarded, undefined);
  // END missing is tolerated: the options simply run to the end of the message.
  const noEnd = msg.slice(0, 240 + 3); frames.length = 0;
  dev.inject(withUdpPayload(noEnd));
  assert.equal(dev.sent.length, 1);
});

test('wire: emitDhcp/parseDhcp round trip; the view never throws on random input', () => {
  const r = clientRepr(DhcpMessageType.DISCOVER, CLIENT_MAC, 0xdeadbeef, [[DhcpOption.HOST_NAME, new TextEncoder().encode('c1')]]);
  const b = new Uint8Array(dhcpBufferLen(r));
  assert.equal(emitDhcp(b, 0, r), b.length);
  assert.equal(b.length, 300);
  assert.deepEqual(parseDhcp(b, 0, b.length), r);
  const v = new DhcpView();
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.boolean(), (bytes, cookie) => {
    if (cookie && bytes.length >= 240) bytes.set([0x63, 0x82, 0x53, 0x63], 236);
    if (v.bind(bytes, 0, bytes.length)) {
      for (const code of [1, 3, 50, 51, 53, 54, 55, 61, 255]) {
        const p = v.findOption(code);
        if (p >= 0) assert.ok(p + v.optionLength <= bytes.length);
      }
      void v.messageType;
      parseDhcp(bytes, 0, bytes.length);
    }
  }), { numRuns: 3000 });
  const s = new DhcpServer(CFG);
  const out = new Uint8Array(300);
  fc.assert(fc.property(fc.uint8Array({ minLength: 244, maxLength: 400 }), fc.integer({ min: 1, max: 10 }), (bytes, type) => {
    bytes.set([1, 1, 6], 0);
    bytes.set([0x63, 0x82, 0x53, 0x63, 53, 1, type], 236);
    const n = s.handle(bytes, 0, bytes.length, out, 0);
    assert.ok(n === 0 || n === 300);
  }), { numRuns: 3000 });
});
