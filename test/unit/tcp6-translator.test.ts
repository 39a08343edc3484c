// TcpTranslator over IPv6 (slirp4netns -6): scripted guest segments over a MemoryDevice, real host
// sockets on ::1 (the gateway fd00::2 maps to the host's ::1). The same translator serves IPv4;
// these tests prove the IPv6 path: handshake (MSS = MTU - 60, window scaling), data both ways with
// TSO superframes (GSO TCPV6, the IPv6 pseudo-header seed) or full checksums, refusal, ICMPv6
// errors, half-close, stray segments, address rules, and IPv4 + IPv6 flows side by side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { checksum, fold, pseudoHeaderSum6 } from '../../src/wire/checksum';
import { fold6, FlowTable, type FlowEntry } from '../../src/translate/flow-table';
import { MAX_SUPERFRAME_PAYLOAD6 } from '../../src/translate/tcp-emit';
import {
  DNS6, F, GATEWAY, GATEWAY6, GUEST6, GUEST_MAC, GW_MAC, Guest, Harness, config, freePort, handshake, ip6,
  listen, parseSynAckOptions, sha, sleep, synOptions, tcp6ChecksumOk, tcpFrame, waitFor,
} from '../helpers/tcp-guest';

const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

test('IPv6 handshake: SYN to fd00::2 -> connect to ::1 first -> SYN-ACK from fd00::2 with MSS 1440 and window scale', async () => {
  let peer = '';
  const srv = await listen((s) => { peer = s.remoteAddress ?? ''; }, {}, '::1');
  const h = new Harness();
  try {
    const g = new Guest(h, srv.port, GATEWAY6);
    g.syn();
    await waitFor(() => g.established, 'SYN-ACK');
    const sa = g.synAck!;
    assert.equal(peer, '::1', 'the host socket is an AF_INET6 one on loopback');
    assert.equal(sa.family, 6);
    assert.equal(sa.etherType, 0x86dd);
    assert.equal(sa.flags, F.SYN | F.ACK);
    assert.equal(sa.ack, (g.isn + 1) >>> 0);
    assert.ok(same(sa.src6, GATEWAY6), 'from the address the guest dialled');
    assert.ok(same(sa.dst6, GUEST6));
    assert.equal(sa.sport, srv.port);
    assert.equal(sa.dport, g.sport);
    assert.deepEqual(sa.ethDst, GUEST_MAC);
    assert.deepEqual(sa.ethSrc, GW_MAC);
    const o = parseSynAckOptions(sa.options);
    assert.equal(o.mss, 1440, 'MTU 1500 - 40 (IPv6) - 20 (TCP)');
    assert.ok(o.ws >= 7, `window scale ${o.ws}`);
    assert.deepEqual(o.other, []);
    assert.equal(sa.vnetFlags, 1, 'NEEDS_CSUM');
    assert.equal(sa.gsoType, 0);
    assert.equal(sa.csumStart, 54, 'Ethernet 14 + IPv6 40');
    assert.equal(sa.csumOffset, 16);
    assert.equal(sa.csumField, fold(pseudoHeaderSum6(GATEWAY6, 0, GUEST6, 0, 6, sa.ipTotal - 40)));
    assert.equal(h.counters.tcp_flows6_opened, 1);
    await waitFor(() => h.tcp.flows()[0]?.state === 'ESTABLISHED', 'established');
    assert.match(h.tcp.flows()[0]!.guest, /^\[fd00::5054:ff:fe12:3456\]:\d+$/);
  } finally {
    h.close();
    await srv.close();
  }
});

test('IPv6 data both ways: 2 MB each direction, SHA-256 verified; superframes are GSO TCPV6 with the right seed', async () => {
  const up = randomBytes(2 << 20);
  const down = randomBytes(2 << 20);
  let serverGot = '';
  let serverBytes = 0;
  const srv = await listen((s) => {
    const hh = createHash('sha256');
    s.on('data', (b) => { hh.update(b); serverBytes += b.length; });
    s.on('end', () => { serverGot = hh.digest('hex'); s.end(); });
    s.write(down);
  }, {}, '::1');
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port, new Guest(h, srv.port, GATEWAY6));
    g.write(up);
    g.end();
    await waitFor(() => serverGot !== '' && g.finReceived && g.finAcked, 'transfer', 30000);
    assert.equal(serverBytes, up.length);
    assert.equal(serverGot, sha(up));
    assert.equal(g.recvBytes, down.length);
    assert.equal(sha(g.received()), sha(down));
    const data = h.framesTo(g.sport).filter((s) => s.payload.length > 0);
    assert.ok(data.length > 0);
    assert.ok(data.every((s) => s.family === 6 && tcp6ChecksumOk(s)), 'every data frame: IPv6, seed right');
    const supers = data.filter((s) => s.payload.length > 1440);
    assert.ok(supers.length > 0, 'superframes were sent');
    for (const s of supers) {
      assert.equal(s.gsoType, 4, 'GSO TCPV6');
      assert.equal(s.gsoSize, 1440);
      assert.equal(s.hdrLen, 14 + 40 + 20);
      assert.ok(s.payload.length <= MAX_SUPERFRAME_PAYLOAD6);
      assert.ok(40 + 20 + s.payload.length <= 0xffff, 'the IPv6 packet fits 64 KiB');
    }
    await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
    assert.equal(h.counters.tcp_internal_error ?? 0, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('IPv6 without offloads: MSS segments with full checksums, data intact', async () => {
  const down = randomBytes(300_000);
  const srv = await listen((s) => { s.end(down); }, {}, '::1');
  const h = new Harness(config(), {}, false);
  try {
    const g = await handshake(h, srv.port, new Guest(h, srv.port, GATEWAY6));
    await waitFor(() => g.finReceived, 'host FIN', 20000);
    assert.equal(sha(g.received()), sha(down));
    const segs = h.framesTo(g.sport);
    assert.ok(segs.every((s) => s.vnetFlags === 0 && s.gsoType === 0), 'no offload flags');
    assert.ok(segs.every((s) => s.payload.length <= 1440), 'at most one MSS each');
    assert.ok(segs.every((s) => tcp6ChecksumOk(s)), 'full checksums verify');
  } finally {
    h.close();
    await srv.close();
  }
});

test('IPv6 refused port -> RST,ACK acking the SYN', async () => {
  const port = await freePort('::1');
  const h = new Harness();
  try {
    const g = new Guest(h, port, GATEWAY6);
    g.syn();
    await waitFor(() => g.rst !== null, 'RST');
    const r = g.rst!;
    assert.equal(r.family, 6);
    assert.equal(r.flags, F.RST | F.ACK);
    assert.equal(r.ack, (g.isn + 1) >>> 0);
    assert.ok(tcp6ChecksumOk(r));
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_connect_refused, 1);
  } finally {
    h.close();
  }
});

test('IPv6 gateway with host loopback disabled -> ICMPv6 no route (type 1 code 0) from fd00::2 quoting the SYN', async () => {
  const h = new Harness(config({ hostLoopback: false }));
  try {
    const syn = tcpFrame({ dst: GATEWAY6, sport: 41000, dport: 80, seq: 12345, flags: F.SYN, options: synOptions() });
    h.inject(syn);
    assert.equal(h.out.length, 1);
    const m = h.out[0]!;
    assert.equal(m.family, 6);
    assert.equal(m.proto, 58);
    assert.equal(m.icmpType, 1);
    assert.equal(m.icmpCode, 0);
    assert.ok(same(m.src6, GATEWAY6));
    assert.ok(same(m.dst6, GUEST6));
    const len = m.ipTotal - 40;
    assert.equal(checksum(m.raw, 64, len, pseudoHeaderSum6(m.raw, 32, m.raw, 48, 58, len)), 0, 'ICMPv6 checksum');
    assert.ok(same(m.icmpQuote!, syn.subarray(24)), 'the whole SYN is quoted (it fits 1280 bytes)');
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_unreachable_icmp, 1);
  } finally {
    h.close();
  }
});

test('IPv6 connect errors map to ICMPv6 codes (no route 0, address unreachable 3, admin prohibited 1) or RST', async () => {
  const remote = ip6('2001:db8::7');
  const cases: Array<[string, number | 'rst']> = [['ENETUNREACH', 0], ['EHOSTUNREACH', 3], ['ETIMEDOUT', 3], ['EACCES', 1], ['EADDRNOTAVAIL', 'rst']];
  for (const [code, want] of cases) {
    let dialled = '';
    const h = new Harness(config(), {
      connect: (o) => {
        dialled = String(o.host);
        const sock = new net.Socket();
        setImmediate(() => sock.destroy(Object.assign(new Error(code), { code })));
        return sock;
      },
    });
    try {
      const g = new Guest(h, 80, remote);
      g.syn();
      await waitFor(() => h.out.length > 0, `answer to ${code}`);
      assert.equal(dialled, '2001:db8::7', 'dialled the address itself');
      const m = h.out[0]!;
      assert.equal(m.family, 6);
      if (want === 'rst') {
        assert.equal(m.flags, F.RST | F.ACK, code);
        assert.ok(same(m.src6, remote));
      } else {
        assert.equal(m.proto, 58, code);
        assert.equal(m.icmpType, 1, code);
        assert.equal(m.icmpCode, want, code);
        assert.ok(same(m.src6, GATEWAY6), 'from the gateway');
        assert.ok(same(m.icmpQuote!.subarray(8, 24), GUEST6) && same(m.icmpQuote!.subarray(24, 40), remote), 'quotes the SYN');
        assert.equal(m.icmpQuote!.length, 40 + 20 + 8, 'IPv6 header + the SYN with its options (MSS, NOP, WS)');
      }
      assert.equal(h.tcp.flowCount, 0);
    } finally {
      h.close();
    }
  }
});

test('IPv6 half-close: guest FIN first while the host still sends, then host FIN; the flow finishes', async () => {
  let hostSock: net.Socket | null = null;
  let hostEnded = false;
  const srv = await listen((s) => { hostSock = s; s.on('end', () => { hostEnded = true; }); }, {}, '::1');
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port, new Guest(h, srv.port, GATEWAY6));
    await waitFor(() => hostSock !== null, 'accepted');
    g.end();
    await waitFor(() => hostEnded, 'host saw the guest FIN');
    hostSock!.write('after-half-close');
    await waitFor(() => g.recvBytes === 16, 'data after the half-close');
    hostSock!.end();
    await waitFor(() => g.finReceived && g.finAcked, 'FIN both ways');
    await waitFor(() => h.tcp.flows().every((f) => f.state === 'LINGER'), 'linger');
    assert.equal(h.counters.tcp_flows_finished, 1);
  } finally {
    h.close();
    await srv.close();
  }
});

test('IPv6 DNS address port 53 reaches the (IPv4) upstream resolver; other ports are unreachable', async () => {
  let peerFamily = '';
  const up = await listen((s) => { peerFamily = s.remoteFamily ?? ''; s.end('dns-over-tcp'); });
  const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${up.port}`] }));
  try {
    const g = await handshake(h, 53, new Guest(h, 53, DNS6));
    await waitFor(() => g.finReceived, 'answer');
    assert.equal(g.received().toString(), 'dns-over-tcp');
    assert.equal(peerFamily, 'IPv4', 'dialled the IPv4 upstream');
    assert.ok(same(g.synAck!.src6, DNS6), 'answers come from fd00::3');
    h.inject(tcpFrame({ dst: DNS6, sport: 41999, dport: 80, seq: 1, flags: F.SYN, options: synOptions() }));
    const m = h.out[h.out.length - 1]!;
    assert.equal(m.proto, 58);
    assert.equal(m.icmpType, 1);
  } finally {
    h.close();
    await up.close();
  }
});

test('IPv6 segment for an unknown flow -> RST (RFC 9293 3.10.7.1); RST for unknown ignored', () => {
  const h = new Harness();
  try {
    h.inject(tcpFrame({ dst: GATEWAY6, sport: 42000, dport: 80, seq: 1000, ack: 5555, flags: F.ACK, payload: new Uint8Array(10) }));
    assert.equal(h.out.length, 1);
    const r = h.out[0]!;
    assert.equal(r.family, 6);
    assert.equal(r.flags, F.RST);
    assert.equal(r.seq, 5555);
    assert.ok(same(r.src6, GATEWAY6) && same(r.dst6, GUEST6));
    assert.equal(r.sport, 80);
    assert.equal(r.dport, 42000);
    assert.ok(tcp6ChecksumOk(r));
    h.inject(tcpFrame({ dst: GATEWAY6, sport: 42000, dport: 80, seq: 1000, flags: F.FIN, payload: new Uint8Array(3) }));
    assert.equal(h.out[1]!.flags, F.RST | F.ACK);
    assert.equal(h.out[1]!.ack, 1004);
    h.inject(tcpFrame({ dst: GATEWAY6, sport: 42000, dport: 80, seq: 1000, flags: F.RST }));
    assert.equal(h.out.length, 2);
    assert.equal(h.counters.tcp_no_flow_rst_ignored, 1);
  } finally {
    h.close();
  }
});

test('IPv6 addresses that are never translated: loopback, v4-mapped, unspecified, multicast, link-local destination', () => {
  let dials = 0;
  const h = new Harness(config(), { connect: () => { dials++; return new net.Socket(); } });
  try {
    const bad: Array<[Uint8Array, Uint8Array]> = [
      [GUEST6, ip6('::1')], [GUEST6, ip6('::ffff:127.0.0.1')], [GUEST6, ip6('::')], [GUEST6, ip6('ff02::1')],
      [GUEST6, ip6('fe80::2')], [ip6('::'), GATEWAY6], [ip6('ff02::2'), GATEWAY6], [ip6('::1'), GATEWAY6],
    ];
    for (const [src, dst] of bad) {
      h.inject(tcpFrame({ src, dst, sport: 43000, dport: 80, seq: 1, flags: F.SYN, options: synOptions() }));
    }
    assert.equal(h.out.length, 0, 'no answer at all');
    assert.equal(dials, 0, 'no host socket');
    assert.equal(h.counters.tcp_bad_address, bad.length);
  } finally {
    h.close();
  }
});

test('IPv6 off (no config.ipv6): segments are dropped and counted, nothing dialled', () => {
  let dials = 0;
  const h = new Harness(config({ ipv6: null }), { connect: () => { dials++; return new net.Socket(); } });
  try {
    h.inject(tcpFrame({ dst: GATEWAY6, sport: 43001, dport: 80, seq: 1, flags: F.SYN, options: synOptions() }));
    assert.equal(h.out.length, 0);
    assert.equal(dials, 0);
    assert.equal(h.counters.tcp_ipv6_off_dropped, 1);
  } finally {
    h.close();
  }
});

test('IPv4 and IPv6 flows side by side with the same ports stay apart', async () => {
  const srv4 = await listen((s) => s.end('four'));
  const srv6 = await listen((s) => s.end('six'), {}, '::1');
  const h = new Harness();
  try {
    const g4 = await handshake(h, srv4.port, new Guest(h, srv4.port, GATEWAY));
    const g6 = await handshake(h, srv6.port, new Guest(h, srv6.port, GATEWAY6));
    await waitFor(() => g4.finReceived && g6.finReceived, 'both answers');
    assert.equal(g4.received().toString(), 'four');
    assert.equal(g6.received().toString(), 'six');
    assert.equal(h.tcp.flowCount, 2);
    await sleep(5);
  } finally {
    h.close();
    await srv4.close();
    await srv6.close();
  }
});

test('flow table: IPv6 entries by fold6 + bytes; an IPv4 lookup never finds one, whatever its fold', () => {
  interface E extends FlowEntry { tag: string }
  const mk = (g: Uint8Array, gp: number, r: Uint8Array, rp: number, tag: string): E => ({
    guestIp: fold6(g, 0), guestPort: gp, remoteIp: fold6(r, 0), remotePort: rp, guestIp6: g, remoteIp6: r,
    hashNext: null, allPrev: null, allNext: null, tag,
  });
  const t = new FlowTable<E>(8);
  const a = ip6('2001:db8::1');
  // Same XOR fold as a (words swapped), different address: must not match a.
  const b = ip6('0:0:2001:db8::1');
  assert.equal(fold6(a, 0), fold6(b, 0), 'a fold collision by construction');
  assert.ok(fold6(a, 0) < 0, 'folds are negative');
  const ea = mk(GUEST6, 1000, a, 80, 'a');
  const eb = mk(GUEST6, 1000, b, 80, 'b');
  assert.ok(t.insert(ea));
  assert.ok(t.insert(eb));
  assert.equal(t.lookup6(GUEST6, 0, 1000, a, 0, 80)?.tag, 'a');
  assert.equal(t.lookup6(GUEST6, 0, 1000, b, 0, 80)?.tag, 'b');
  assert.equal(t.lookup6(GUEST6, 0, 1001, a, 0, 80), null);
  // An IPv4 address equal to the fold's unsigned value never finds the IPv6 entry.
  assert.equal(t.lookup(fold6(GUEST6, 0) >>> 0, 1000, fold6(a, 0) >>> 0, 80), null);
  assert.ok(t.remove(ea));
  assert.equal(t.lookup6(GUEST6, 0, 1000, a, 0, 80), null);
  assert.equal(t.lookup6(GUEST6, 0, 1000, b, 0, 80)?.tag, 'b');
});

test('IPv6 fuzz: random and mutated segments (IPv4 and IPv6 mixed) never throw, flows stay bounded, slots come back', async () => {
  const srv = await listen((s) => s.on('data', () => {}), {}, '::1');
  const srv4 = await listen((s) => s.on('data', () => {}));
  const h = new Harness(config(), { maxFlows: 64, maxConnecting: 16 });
  try {
    const g = await handshake(h, srv.port, new Guest(h, srv.port, GATEWAY6));
    const g4 = await handshake(h, srv4.port, new Guest(h, srv4.port, GATEWAY));
    const valid = tcpFrame({ dst: GATEWAY6, sport: g.sport, dport: srv.port, seq: g.sndNxt, ack: g.rcvNxt, flags: F.ACK | F.PSH, payload: randomBytes(3000) });
    const syn = tcpFrame({ dst: GATEWAY6, sport: 50000, dport: srv.port, seq: 1, flags: F.SYN, options: synOptions() });
    const valid4 = tcpFrame({ sport: g4.sport, dport: srv4.port, seq: g4.sndNxt, ack: g4.rcvNxt, flags: F.ACK, payload: randomBytes(100) });
    fc.assert(fc.property(
      fc.oneof(
        // A valid frame with bytes flipped anywhere after the Ethernet header (the version nibble too).
        fc.tuple(fc.constantFrom(valid, syn, valid4), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }))
          .map(([base, muts]) => { const b = Uint8Array.from(base); for (const [i, v] of muts) b[24 + (i % (b.length - 24))] = v; return b; }),
        // A well-formed IPv6 header around random TCP bytes.
        fc.uint8Array({ minLength: 0, maxLength: 200 }).map((t) => {
          const b = tcpFrame({ dst: GATEWAY6, sport: g.sport, dport: srv.port, seq: 0, flags: 0 });
          const out = new Uint8Array(64 + t.length);
          out.set(b.subarray(0, 64));
          out.set(t, 64);
          new DataView(out.buffer).setUint16(28, t.length);
          return out;
        }),
        // Segments with random header fields for the live tuple and its neighbours.
        fc.record({
          seq: fc.nat(), ack: fc.nat(), flags: fc.integer({ min: 0, max: 255 }), win: fc.integer({ min: 0, max: 65535 }),
          len: fc.integer({ min: 0, max: 2000 }), opts: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }),
          sport: fc.constantFrom(g.sport, 50001, 50002), dst: fc.constantFrom(GATEWAY6, DNS6),
        }).map((r) => tcpFrame({ dst: r.dst, sport: r.sport, dport: srv.port, seq: r.seq, ack: r.ack, flags: r.flags, win: r.win, payload: new Uint8Array(r.len), options: r.opts })),
      ),
      (frame) => {
        h.inject(frame);
        return h.tcp.flowCount <= 64 && (h.counters.tcp_internal_error ?? 0) === 0;
      },
    ), { numRuns: 3000 });
    await sleep(50);
    h.close();
    await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
    assert.equal(h.counters.tcp_internal_error ?? 0, 0);
  } finally {
    h.close();
    await srv.close();
    await srv4.close();
  }
});
