// UdpTranslator over IPv6 (slirp4netns -6) against real dgram servers on the host's ::1 (the
// gateway fd00::2 stands for it), through a MemoryDevice guest. The "no route" test runs inside a
// throwaway `unshare -Urn` namespace (only lo) so that its destination can never be reached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { UdpTranslator, UdpCounters } from '../../src/translate/udp';
import {
  config, DNS6, GATEWAY, GATEWAY6, GUEST6, GUEST_MAC, GW_MAC, Harness, canUnshare, echo6Frame, ip6,
  l4Checksum6Ok, parse, parse6, runInSandbox, u16, udp6Frame, udpFrame, waitFor,
} from '../helpers/translator-harness';
import { checksum, pseudoHeaderSum6 } from '../../src/wire/checksum';

const SANDBOX = process.env.TAPSWITCH_UDP6_SANDBOX === '1';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

interface Server {
  sock: dgram.Socket;
  port: number;
  seen: Array<{ data: string; address: string; port: number }>;
}

/** A UDP server on `host` (::1 by default) that records what it sees and answers with reply(data). */
async function server(reply: (data: Buffer) => Buffer | null = (d) => d, host = '::1'): Promise<Server> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const seen: Server['seen'] = [];
  sock.on('message', (m, r) => {
    seen.push({ data: m.toString(), address: r.address, port: r.port });
    const out = reply(m);
    if (out) sock.send(out, r.port, r.address);
  });
  await new Promise<void>((res) => sock.bind(0, host, () => res()));
  return { sock, port: sock.address().port, seen };
}

function udp6Payload(f: Uint8Array): Uint8Array {
  const p = parse6(f);
  return f.subarray(p.l4 + 8, p.l4 + p.l4Len);
}

if (!SANDBOX) {
  test('IPv6: guest -> [fd00::2]:PORT reaches [::1]:PORT; the reply comes from fd00::2 (offloads: NEEDS_CSUM at 54/6)', async (t) => {
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    const srv = await server((d) => Buffer.from(`echo:${d.toString()}`));
    t.after(() => { tr.close(); srv.sock.close(); });

    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40000, dport: srv.port, payload: enc('hello') }));
    await waitFor(() => h.sent.length === 1, 3000, 'reply frame');
    assert.equal(srv.seen[0]!.data, 'hello');
    assert.equal(srv.seen[0]!.address, '::1');
    const f = h.sent[0]!;
    const p = parse6(f);
    assert.deepEqual(p.ethDst, GUEST_MAC);
    assert.deepEqual(p.ethSrc, GW_MAC);
    assert.equal(p.etherType, 0x86dd);
    assert.equal(p.nextHeader, 17);
    assert.ok(same(p.src, GATEWAY6));
    assert.ok(same(p.dst, GUEST6));
    assert.equal(u16(f, p.l4), srv.port, 'source port = the port the guest dialled');
    assert.equal(u16(f, p.l4 + 2), 40000);
    assert.equal(dec(udp6Payload(f)), 'echo:hello');
    assert.equal(p.vnetFlags, 1);
    assert.equal(p.csumStart, 54);
    assert.equal(p.csumOffset, 6);
    assert.ok(l4Checksum6Ok(f));
    assert.equal(tr.flowCount, 1);
    assert.equal(h.counters[UdpCounters.FLOWS6_CREATED], 1);
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('IPv6 without offloads: the full UDP checksum is computed', async (t) => {
    const h = new Harness(config(), false);
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    const srv = await server();
    t.after(() => { tr.close(); srv.sock.close(); });
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40001, dport: srv.port, payload: enc('odd-length!') }));
    await waitFor(() => h.sent.length === 1, 3000, 'reply');
    const f = h.sent[0]!;
    assert.equal(parse6(f).vnetFlags, 0);
    assert.notEqual(u16(f, 64 + 6), 0, 'IPv6 UDP checksums are mandatory');
    assert.ok(l4Checksum6Ok(f));
  });

  test('IPv6: [fd00::3]:53 goes to the IPv4 upstream resolver; answers come from [fd00::3]:53', async (t) => {
    const up = await server((d) => Buffer.from(`answer:${d.toString()}`), '127.0.0.1');
    const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${up.port}`] }));
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); up.sock.close(); });
    h.inject(udp6Frame({ dst: DNS6, sport: 40002, dport: 53, payload: enc('q') }));
    await waitFor(() => h.sent.length === 1, 3000, 'answer');
    assert.equal(up.seen[0]!.address, '127.0.0.1', 'the upstream saw an IPv4 query');
    const f = h.sent[0]!;
    const p = parse6(f);
    assert.ok(same(p.src, DNS6));
    assert.equal(u16(f, p.l4), 53);
    assert.equal(dec(udp6Payload(f)), 'answer:q');
    assert.ok(l4Checksum6Ok(f));
  });

  test('IPv6 with --outbound-addr6: sources are that address; the IPv4 upstream still answers through the flow', async (t) => {
    const up = await server((d) => Buffer.from(`answer:${d.toString()}`), '127.0.0.1');
    const gw = await server();
    const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${up.port}`],
      ipv6: { prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2', outboundAddr: '::1' } }));
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); up.sock.close(); gw.sock.close(); });
    h.inject(udp6Frame({ dst: DNS6, sport: 40008, dport: 53, payload: enc('q1') }));
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40008, dport: gw.port, payload: enc('hi') }));
    await waitFor(() => h.sent.length === 2, 3000, 'two answers');
    assert.equal(up.seen[0]!.address, '127.0.0.1');
    assert.equal(gw.seen[0]!.address, '::1', 'the IPv6 socket is bound to the outbound address');
    assert.equal(tr.flowCount, 1, 'one flow, two sockets');
    const dns = h.sent.find((f) => same(parse6(f).src, DNS6));
    assert.ok(dns, 'the answer comes from fd00::3');
    assert.equal(u16(dns, 64), 53);
    assert.equal(dec(udp6Payload(dns)), 'answer:q1');
    // The same source port upstream for every query of the flow (endpoint-independent).
    h.inject(udp6Frame({ dst: DNS6, sport: 40008, dport: 53, payload: enc('q2') }));
    await waitFor(() => up.seen.length === 2, 3000, 'second query');
    assert.equal(up.seen[1]!.port, up.seen[0]!.port);
    assert.equal(h.counters[UdpCounters.TX_ERROR] ?? 0, 0);
  });

  test('IPv6 endpoint-independent mapping: one host port per guest source; other ::1 ports appear as the gateway', async (t) => {
    const a = await server();
    // b answers from a different socket (port), as a server farm or STUN would.
    const other = dgram.createSocket('udp6');
    await new Promise<void>((res) => other.bind(0, '::1', () => res()));
    const b = await server((d) => { other.send(d, 0, d.length, b.seen[b.seen.length - 1]!.port, '::1'); return null; });
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); a.sock.close(); b.sock.close(); other.close(); });
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40003, dport: a.port, payload: enc('1') }));
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40003, dport: b.port, payload: enc('2') }));
    await waitFor(() => h.sent.length === 2, 3000, 'two replies');
    assert.equal(a.seen[0]!.port, b.seen[0]!.port, 'the same host port for both destinations');
    assert.equal(tr.flowCount, 1);
    const fromOther = h.sent.map((f) => u16(f, 64)).find((p) => p !== a.port);
    assert.equal(fromOther, other.address().port, 'the other ::1 port shows up as gateway:port');
    assert.ok(h.sent.every((f) => same(parse6(f).src, GATEWAY6)));
  });

  test('IPv6 host loopback disabled: fd00::2 is unreachable (ICMPv6 no route, the datagram quoted)', () => {
    const h = new Harness(config({ hostLoopback: false }));
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    try {
      const req = udp6Frame({ dst: GATEWAY6, sport: 40004, dport: 9, payload: enc('blocked') });
      h.inject(req);
      assert.equal(h.sent.length, 1);
      const f = h.sent[0]!;
      const p = parse6(f);
      assert.equal(p.nextHeader, 58);
      assert.equal(f[p.l4], 1, 'destination unreachable');
      assert.equal(f[p.l4 + 1], 0, 'no route');
      assert.ok(same(p.src, GATEWAY6));
      assert.ok(same(p.dst, GUEST6));
      assert.equal(checksum(f, p.l4, p.l4Len, pseudoHeaderSum6(f, 32, f, 48, 58, p.l4Len)), 0);
      assert.ok(same(f.subarray(p.l4 + 8), req.subarray(24)), 'the whole datagram is quoted');
      assert.equal(tr.flowCount, 0);
      assert.equal(h.counters[UdpCounters.TX_DROP_UNREACHABLE], 1);
    } finally {
      tr.close();
    }
  });

  test('IPv6 datagrams larger than the MTU are fragmented with Fragment headers (RFC 8200 4.5)', async (t) => {
    const big = Buffer.alloc(3000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const srv = await server((d) => (d.toString() === 'big' ? big : Buffer.alloc(60000)));
    const h = new Harness(config({ mtu: 1500 }));
    const tr = new UdpTranslator(h.ctx, { maxFragments: 8 });
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40005, dport: srv.port, payload: enc('big') }));
    await waitFor(() => h.sent.length === 3, 3000, 'three fragments');
    const whole = new Uint8Array(8 + big.length);
    let ident = -1;
    for (let i = 0; i < h.sent.length; i++) {
      const f = h.sent[i]!;
      const p = parse6(f);
      assert.equal(p.nextHeader, 44, 'a Fragment header follows');
      assert.ok(40 + p.payloadLength <= 1500, 'fits the MTU');
      assert.equal(p.vnetFlags, 0, 'no checksum offload across fragments');
      const fh = 64;
      assert.equal(f[fh], 17, 'the fragment header names UDP');
      const offM = u16(f, fh + 2);
      const id = new DataView(f.buffer, f.byteOffset).getUint32(fh + 4);
      if (ident < 0) ident = id; else assert.equal(id, ident, 'one Identification');
      assert.equal((offM & 1) === 1, i < h.sent.length - 1, 'M on all but the last');
      const off = offM & 0xfff8;
      whole.set(f.subarray(fh + 8, 24 + 40 + p.payloadLength), off);
    }
    assert.equal(u16(whole, 4), whole.length);
    assert.deepEqual(Buffer.from(whole.subarray(8)), big);
    assert.equal(checksum(whole, 0, whole.length, pseudoHeaderSum6(GATEWAY6, 0, GUEST6, 0, 17, whole.length)), 0);
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40005, dport: srv.port, payload: enc('huge') }));
    await waitFor(() => (h.counters[UdpCounters.RX_DROP_TOO_BIG] ?? 0) === 1);
    assert.equal(h.sent.length, 3);
  });

  test('IPv4 and IPv6 flows with the same source port are distinct', async (t) => {
    const s4 = await server((d) => Buffer.from(`v4:${d}`), '127.0.0.1');
    const s6 = await server((d) => Buffer.from(`v6:${d}`));
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); s4.sock.close(); s6.sock.close(); });
    h.inject(udpFrame({ dst: GATEWAY, sport: 40006, dport: s4.port, payload: enc('a') }));
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40006, dport: s6.port, payload: enc('b') }));
    await waitFor(() => h.sent.length === 2, 3000, 'two replies');
    assert.equal(tr.flowCount, 2);
    const v4 = h.sent.find((f) => parse(f).etherType === 0x0800)!;
    const v6 = h.sent.find((f) => parse(f).etherType === 0x86dd)!;
    assert.equal(dec(v4.subarray(52)), 'v4:a');
    assert.equal(dec(udp6Payload(v6)), 'v6:b');
  });

  test('IPv6: unknown guest MAC, malformed, non-unicast and bad-source input dropped and counted; IPv6 off', async (t) => {
    const srv = await server();
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    h.knowsMac = false;
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 40007, dport: srv.port, payload: enc('m') }));
    await waitFor(() => (h.counters[UdpCounters.RX_DROP_NO_MAC] ?? 0) === 1);
    for (const dst of ['ff02::1:3', '::1', '::ffff:127.0.0.1', 'fe80::2', '::']) {
      h.inject(udp6Frame({ dst: ip6(dst), sport: 5355, dport: 5355, payload: enc('x') }));
    }
    assert.equal(h.counters[UdpCounters.TX_DROP_NOT_UNICAST], 5);
    h.inject(udp6Frame({ src: ip6('ff02::1'), dst: GATEWAY6, sport: 1, dport: srv.port, payload: enc('x') }));
    h.inject(udp6Frame({ src: ip6('::'), dst: GATEWAY6, sport: 1, dport: srv.port, payload: enc('x') }));
    assert.equal(h.counters[UdpCounters.TX_DROP_BAD_SOURCE], 2);
    h.inject(udp6Frame({ dst: GATEWAY6, sport: 1, dport: 0, payload: enc('zero') }));
    assert.equal(h.counters[UdpCounters.TX_DROP_PORT_ZERO], 1);
    const bad = udp6Frame({ dst: GATEWAY6, sport: 1, dport: srv.port, payload: enc('len') });
    bad[64 + 5] = 200; // UDP length beyond the packet
    h.inject(bad);
    h.inject(echo6Frame(GATEWAY6, 1, 1, enc('ping')));
    assert.equal(h.counters[UdpCounters.TX_DROP_MALFORMED], 2);

    const off = new Harness(config({ ipv6: null }));
    const tr2 = new UdpTranslator(off.ctx);
    off.use(tr2);
    off.inject(udp6Frame({ dst: GATEWAY6, sport: 1, dport: srv.port, payload: enc('x') }));
    assert.equal(off.counters[UdpCounters.TX_DROP_IPV6_OFF], 1);
    assert.equal(tr2.flowCount, 0);
    tr2.close();
  });

  test('sandboxed: IPv6 "no route" errors (inside unshare -Urn)', (t) => {
    if (!canUnshare()) { t.skip('unshare -Urn is not available here'); return; }
    const r = runInSandbox(__filename, { TAPSWITCH_UDP6_SANDBOX: '1' });
    if (r.status !== 0) {
      assert.fail(`sandboxed tests failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    }
    assert.match(r.stdout, /# pass 1\b/);
  });
} else {
  test('[sandbox] IPv6 no route: the guest gets ICMPv6 no route from fd00::2 quoting its datagram', async (t) => {
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    const req = udp6Frame({ dst: ip6('2001:db8::7'), sport: 40100, dport: 9999, payload: enc('nowhere') });
    h.inject(req);
    await waitFor(() => h.sent.length === 1, 2000, 'ICMPv6 error');
    const f = h.sent[0]!;
    const p = parse6(f);
    assert.equal(p.nextHeader, 58);
    assert.equal(f[p.l4], 1);
    assert.equal(f[p.l4 + 1], 0);
    assert.ok(same(p.src, GATEWAY6));
    assert.ok(same(f.subarray(p.l4 + 8), req.subarray(24, 24 + 48)), 'IPv6 header + 8 bytes, as the ring keeps');
    assert.equal(checksum(f, p.l4, p.l4Len, pseudoHeaderSum6(f, 32, f, 48, 58, p.l4Len)), 0);
    assert.equal(h.counters[UdpCounters.TX_ERROR], 1);
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });
}
