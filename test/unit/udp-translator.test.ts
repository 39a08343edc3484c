// UdpTranslator against real dgram servers on the host's loopback, through a MemoryDevice guest.
// The fuzz and "no route" tests run inside a throwaway `unshare -Urn` namespace (only lo, no
// routes) so that random destinations can never leave the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import fc from 'fast-check';
import { UdpTranslator, UdpCounters } from '../../src/translate/udp';
import {
  config, DNS, GATEWAY, GUEST, GUEST_MAC, GW_MAC, Harness, canUnshare, echoFrame, ip, parse, runInSandbox,
  sleep, u16, udpChecksumOk, udpFrame, waitFor,
} from '../helpers/translator-harness';
import { checksum, pseudoHeaderSum4 } from '../../src/wire/checksum';
import { ipv4FromString } from '../../src/translate/host-dgram';

const SANDBOX = process.env.TAPSWITCH_UDP_SANDBOX === '1';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

interface Server {
  sock: dgram.Socket;
  port: number;
  seen: Array<{ data: string; address: string; port: number }>;
}

/** A UDP server on 127.0.0.1 that records what it sees and answers with `reply(data)`. */
async function server(reply: (data: Buffer) => Buffer | null = (d) => d): Promise<Server> {
  const sock = dgram.createSocket('udp4');
  const seen: Server['seen'] = [];
  sock.on('message', (m, r) => {
    seen.push({ data: m.toString(), address: r.address, port: r.port });
    const out = reply(m);
    if (out) sock.send(out, r.port, r.address);
  });
  await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()));
  return { sock, port: sock.address().port, seen };
}

function udpPayload(f: Uint8Array): Uint8Array {
  const p = parse(f);
  return f.subarray(p.l4 + 8, p.l4 + p.l4Len);
}

if (!SANDBOX) {
  test('guest -> gateway:PORT reaches 127.0.0.1:PORT; the reply comes from the gateway (offloads)', async (t) => {
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    const srv = await server((d) => Buffer.from(`echo:${d.toString()}`));
    t.after(() => { tr.close(); srv.sock.close(); });

    h.inject(udpFrame({ dst: GATEWAY, sport: 40000, dport: srv.port, payload: enc('hello') }));
    await waitFor(() => h.sent.length === 1, 3000, 'reply frame');
    assert.equal(srv.seen[0]!.data, 'hello');
    assert.equal(srv.seen[0]!.address, '127.0.0.1');

    const f = h.sent[0]!;
    const p = parse(f);
    assert.deepEqual(p.ethDst, GUEST_MAC);
    assert.deepEqual(p.ethSrc, GW_MAC);
    assert.equal(p.etherType, 0x0800);
    assert.equal(p.proto, 17);
    assert.equal(p.src, GATEWAY);
    assert.equal(p.dst, GUEST);
    assert.ok(p.ipChecksumOk);
    assert.equal(u16(f, p.l4), srv.port, 'source port = the port the guest dialed');
    assert.equal(u16(f, p.l4 + 2), 40000);
    assert.equal(dec(udpPayload(f)), 'echo:hello');
    // NEEDS_CSUM from the UDP header on; the field holds the folded pseudo-header sum.
    assert.equal(p.vnetFlags, 1);
    assert.equal(p.csumStart, 34);
    assert.equal(p.csumOffset, 6);
    assert.ok(udpChecksumOk(f));
    assert.equal(tr.flowCount, 1);
    assert.equal(h.counters[UdpCounters.TX_DATAGRAMS], 1);
    assert.equal(h.counters[UdpCounters.RX_DATAGRAMS], 1);
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('without offloads the full UDP checksum is computed', async (t) => {
    const h = new Harness(config(), false);
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    const srv = await server((d) => Buffer.concat([d, Buffer.from('odd')]));
    t.after(() => { tr.close(); srv.sock.close(); });
    h.inject(udpFrame({ dst: GATEWAY, sport: 40001, dport: srv.port, payload: enc('x') }));
    await waitFor(() => h.sent.length === 1);
    const f = h.sent[0]!;
    assert.equal(parse(f).vnetFlags, 0);
    assert.ok(udpChecksumOk(f));
    assert.notEqual(u16(f, parse(f).l4 + 6), 0);
    assert.equal(dec(udpPayload(f)), 'xodd');
  });

  test('the DNS address:53 maps to the upstream resolver; answers come from dns:53', async (t) => {
    const resolver = await server((d) => Buffer.from(`answer:${d.toString()}`));
    const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${resolver.port}`] }));
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); resolver.sock.close(); });
    h.inject(udpFrame({ dst: DNS, sport: 33333, dport: 53, payload: enc('query') }));
    await waitFor(() => h.sent.length === 1);
    assert.equal(resolver.seen[0]!.data, 'query');
    const f = h.sent[0]!;
    const p = parse(f);
    assert.equal(p.src, DNS);
    assert.equal(u16(f, p.l4), 53);
    assert.equal(u16(f, p.l4 + 2), 33333);
    assert.equal(dec(udpPayload(f)), 'answer:query');
    assert.ok(udpChecksumOk(f));
  });

  test('one host port per guest source (endpoint-independent); other loopback ports appear as the gateway', async (t) => {
    const a = await server(() => null);
    const b = await server(() => null);
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); a.sock.close(); b.sock.close(); });
    h.inject(udpFrame({ dst: GATEWAY, sport: 40002, dport: a.port, payload: enc('to-a') }));
    h.inject(udpFrame({ dst: GATEWAY, sport: 40002, dport: b.port, payload: enc('to-b') }));
    await waitFor(() => a.seen.length === 1 && b.seen.length === 1);
    assert.equal(a.seen[0]!.port, b.seen[0]!.port, 'same host port for both destinations');
    assert.equal(tr.flowCount, 1);
    // A third loopback socket the guest never dialed writes to the flow's host port.
    const c = await server(() => null);
    t.after(() => c.sock.close());
    c.sock.send('from-c', a.seen[0]!.port, '127.0.0.1');
    await waitFor(() => h.sent.length === 1);
    const f = h.sent[0]!;
    assert.equal(parse(f).src, GATEWAY);
    assert.equal(u16(f, parse(f).l4), c.port);
    assert.equal(dec(udpPayload(f)), 'from-c');
  });

  test('loopback sources never pass unless the flow dialed the gateway', async (t) => {
    const resolver = await server(() => null);
    const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${resolver.port}`] }));
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    const other = await server(() => null);
    t.after(() => { tr.close(); resolver.sock.close(); other.sock.close(); });
    h.inject(udpFrame({ dst: DNS, sport: 40003, dport: 53, payload: enc('q') }));
    await waitFor(() => resolver.seen.length === 1);
    other.sock.send('spoof', resolver.seen[0]!.port, '127.0.0.1');
    await waitFor(() => (h.counters[UdpCounters.RX_DROP_LOOPBACK_SOURCE] ?? 0) === 1);
    assert.equal(h.sent.length, 0);
  });

  test('host loopback disabled: the gateway is unreachable (ICMP net unreachable, RFC 792 quote)', () => {
    const h = new Harness(config({ hostLoopback: false }));
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    const req = udpFrame({ dst: GATEWAY, sport: 40004, dport: 8080, payload: enc('0123456789abcdef') });
    h.inject(req);
    tr.close();
    assert.equal(tr.flowCount, 0);
    assert.equal(h.sent.length, 1);
    const f = h.sent[0]!;
    const p = parse(f);
    assert.equal(p.proto, 1);
    assert.equal(p.src, GATEWAY);
    assert.equal(p.dst, GUEST);
    assert.ok(p.ipChecksumOk);
    assert.equal(p.vnetFlags, 0);
    assert.deepEqual(p.ethDst, GUEST_MAC);
    // type 3 code 0, unused 0, then the offending IP header (20) + first 8 bytes (the UDP header).
    assert.deepEqual([...f.subarray(p.l4, p.l4 + 8)].map((x, i) => (i === 2 || i === 3 ? 0 : x)), [3, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(checksum(f, p.l4, p.l4Len), 0);
    assert.equal(p.l4Len, 8 + 20 + 8);
    assert.deepEqual(f.subarray(p.l4 + 8), req.subarray(24, 24 + 28));
    assert.equal(h.counters[UdpCounters.TX_DROP_UNREACHABLE], 1);
  });

  test('idle flows are closed (short injected timeouts; DNS flows sooner)', async (t) => {
    const srv = await server(() => null);
    const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${srv.port}`] }));
    const tr = new UdpTranslator(h.ctx, { idleTimeoutMs: 400, dnsIdleTimeoutMs: 60, sweepIntervalMs: 20 });
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    h.inject(udpFrame({ dst: DNS, sport: 50000, dport: 53, payload: enc('dns') }));
    h.inject(udpFrame({ dst: GATEWAY, sport: 50001, dport: srv.port, payload: enc('other') }));
    assert.equal(tr.flowCount, 2);
    await waitFor(() => tr.flowCount === 1, 1000, 'DNS flow expiry');
    await waitFor(() => tr.flowCount === 0, 2000, 'ordinary flow expiry');
    assert.equal(h.counters[UdpCounters.FLOWS_EXPIRED], 2);
    // The expired flow's host port no longer answers for the guest: a new flow is made.
    h.inject(udpFrame({ dst: GATEWAY, sport: 50001, dport: srv.port, payload: enc('again') }));
    assert.equal(h.counters[UdpCounters.FLOWS_CREATED], 3);
  });

  test('the flow table is bounded; the least recently used flow is evicted', async (t) => {
    const srv = await server(() => null);
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx, { maxFlows: 4 });
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    const send = (sport: number): void => h.inject(udpFrame({ dst: GATEWAY, sport, dport: srv.port, payload: enc(String(sport)) }));
    for (const p of [1001, 1002, 1003, 1004]) send(p);
    send(1001); // 1001 is now the most recent; 1002 the least
    send(1005);
    assert.equal(tr.flowCount, 4);
    assert.equal(h.counters[UdpCounters.FLOWS_EVICTED], 1);
    assert.equal(h.counters[UdpCounters.FLOWS_CREATED], 5);
    send(1001); // still there: no new flow
    assert.equal(h.counters[UdpCounters.FLOWS_CREATED], 5);
    send(1002); // was evicted: a new flow (evicting 1003)
    assert.equal(h.counters[UdpCounters.FLOWS_CREATED], 6);
    assert.equal(h.counters[UdpCounters.FLOWS_EVICTED], 2);
    for (let i = 0; i < 200; i++) send(2000 + i);
    assert.equal(tr.flowCount, 4);
    // Sends give their slot back by the end of the receive batch (batched sends flush in the
    // microtask after it, host-batch.ts): 200 frames through a 16-slot device in one tick, none
    // dropped for want of a slot.
    assert.equal(h.dev.counters.rxStalls, 0);
    await Promise.resolve();
    assert.equal(h.dev.slotsInUse, 0);
    await waitFor(() => srv.seen.length >= 200, 3000, 'datagrams');
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('guests whose addresses share the low 16 bits get distinct flows', async (t) => {
    const srv = await server((d) => d);
    const cfg = config({ network: ip('10.0.0.0'), prefixLength: 8 });
    const h = new Harness(cfg);
    const other = ip('10.1.2.100'); // same low 16 bits as 10.0.2.100
    h.sink.macFor = (a: number) => (a === GUEST || a === other ? GUEST_MAC : null);
    const tr = new UdpTranslator(h.ctx, { maxFlows: 2 });
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    h.inject(udpFrame({ dst: GATEWAY, src: GUEST, sport: 7000, dport: srv.port, payload: enc('g1') }));
    h.inject(udpFrame({ dst: GATEWAY, src: other, sport: 7000, dport: srv.port, payload: enc('g2') }));
    assert.equal(tr.flowCount, 2);
    await waitFor(() => h.sent.length === 2);
    const byDst = new Map(h.sent.map((f) => [parse(f).dst, dec(udpPayload(f))]));
    assert.equal(byDst.get(GUEST), 'g1');
    assert.equal(byDst.get(other), 'g2');
    // Evict through the chain: a third source pushes out the oldest (GUEST's flow).
    h.inject(udpFrame({ dst: GATEWAY, src: ip('10.2.2.100'), sport: 7000, dport: srv.port, payload: enc('g3') }));
    assert.equal(tr.flowCount, 2);
    h.inject(udpFrame({ dst: GATEWAY, src: other, sport: 7000, dport: srv.port, payload: enc('g2b') }));
    assert.equal(h.counters[UdpCounters.FLOWS_CREATED], 3);
  });

  test('datagrams larger than the MTU are IP-fragmented toward the guest', async (t) => {
    const big = Buffer.alloc(3000);
    for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
    const srv = await server((d) => (d.toString() === 'big' ? big : Buffer.alloc(60000)));
    const h = new Harness(config({ mtu: 1500 }));
    const tr = new UdpTranslator(h.ctx, { maxFragments: 8 });
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    h.inject(udpFrame({ dst: GATEWAY, sport: 40010, dport: srv.port, payload: enc('big') }));
    await waitFor(() => h.sent.length === 3, 3000, 'three fragments');
    // Reassemble (RFC 791) and check offsets, MF, the shared identification and the checksum.
    const ps = h.sent.map(parse);
    assert.ok(ps.every((p) => p.ident === ps[0]!.ident && p.ipChecksumOk && p.vnetFlags === 0));
    assert.ok(ps.every((p) => p.ipTotal <= 1500));
    const whole = new Uint8Array(8 + big.length);
    let last = false;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]!;
      const mf = (p.fragField & 0x2000) !== 0;
      const off = (p.fragField & 0x1fff) * 8;
      whole.set(h.sent[i]!.subarray(p.l4, p.l4 + p.l4Len), off);
      if (!mf) last = true;
      assert.equal(mf, i < ps.length - 1);
    }
    assert.ok(last);
    assert.equal(u16(whole, 4), whole.length);
    assert.deepEqual(Buffer.from(whole.subarray(8)), big);
    assert.equal(checksum(whole, 0, whole.length, pseudoHeaderSum4(GATEWAY, GUEST, 17, whole.length)), 0);
    // 60000 bytes would need 41 pieces: more than maxFragments (8), dropped and counted.
    h.inject(udpFrame({ dst: GATEWAY, sport: 40010, dport: srv.port, payload: enc('huge') }));
    await waitFor(() => (h.counters[UdpCounters.RX_DROP_TOO_BIG] ?? 0) === 1);
    assert.equal(h.sent.length, 3);
  });

  test('unknown guest MAC, malformed and non-unicast input: dropped and counted', async (t) => {
    const srv = await server((d) => d);
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => { tr.close(); srv.sock.close(); });
    h.knowsMac = false;
    h.inject(udpFrame({ dst: GATEWAY, sport: 40020, dport: srv.port, payload: enc('m') }));
    await waitFor(() => (h.counters[UdpCounters.RX_DROP_NO_MAC] ?? 0) === 1);
    h.inject(udpFrame({ dst: ip('255.255.255.255'), sport: 68, dport: 67, payload: enc('dhcp') }));
    h.inject(udpFrame({ dst: ip('10.0.2.255'), sport: 1, dport: 9, payload: enc('bcast') }));
    h.inject(udpFrame({ dst: ip('224.0.0.251'), sport: 5353, dport: 5353, payload: enc('mdns') }));
    assert.equal(h.counters[UdpCounters.TX_DROP_NOT_UNICAST], 3);
    h.inject(udpFrame({ dst: GATEWAY, sport: 1, dport: 0, payload: enc('zero') }));
    assert.equal(h.counters[UdpCounters.TX_DROP_PORT_ZERO], 1);
    const bad = udpFrame({ dst: GATEWAY, sport: 1, dport: srv.port, payload: enc('len') });
    bad[44 + 5] = 200; // UDP length beyond the packet
    h.inject(bad);
    assert.equal(h.counters[UdpCounters.TX_DROP_MALFORMED], 1);
    // An ICMP packet handed to the UDP translator by mistake.
    h.inject(echoFrame(GATEWAY, 1, 1, enc('ping')));
    assert.equal(h.counters[UdpCounters.TX_DROP_MALFORMED], 2);
  });

  test('an outbound address that cannot be bound: one warning, datagrams dropped and counted', () => {
    const h = new Harness(config({ outboundAddr: '192.0.2.77' })); // not an address of this host
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    for (let i = 0; i < 3; i++) h.inject(udpFrame({ dst: GATEWAY, sport: 41000 + i, dport: 9, payload: enc('x') }));
    tr.close();
    assert.equal(tr.flowCount, 0);
    assert.equal(h.counters[UdpCounters.TX_DROP_SOCKET], 3);
    assert.equal(h.log.count('warn'), 1);
    assert.match(h.log.lines[0]!.msg, /192\.0\.2\.77: EADDRNOTAVAIL/);
    assert.equal(h.dev.slotsInUse, 0);
  });

  test('ipv4FromString: dotted quads only', () => {
    assert.equal(ipv4FromString('127.0.0.1'), 0x7f000001);
    assert.equal(ipv4FromString('255.255.255.255'), 0xffffffff);
    assert.equal(ipv4FromString('0.0.0.0'), 0);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1.2.3.', '::1', '1.2.3.4a', '1234.1.1.1']) {
      assert.equal(ipv4FromString(bad), -1, bad);
    }
  });

  test('sandboxed: fuzzing and "no route" errors (inside unshare -Urn)', (t) => {
    if (!canUnshare()) { t.skip('unshare -Urn is not available here'); return; }
    const r = runInSandbox(__filename, { TAPSWITCH_UDP_SANDBOX: '1' });
    if (r.status !== 0) {
      assert.fail(`sandboxed tests failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    }
    assert.match(r.stdout, /# pass 2\b/);
  });
} else {
  test('[sandbox] no route: the guest gets ICMP net unreachable quoting its datagram', async (t) => {
    const h = new Harness(config());
    const tr = new UdpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    const req = udpFrame({ dst: ip('198.51.100.7'), sport: 40100, dport: 9999, payload: enc('nowhere') });
    h.inject(req);
    await waitFor(() => h.sent.length === 1, 2000, 'ICMP error');
    const f = h.sent[0]!;
    const p = parse(f);
    assert.equal(p.proto, 1);
    assert.equal(f[p.l4], 3);
    assert.equal(f[p.l4 + 1], 0);
    assert.equal(p.src, GATEWAY);
    assert.deepEqual(f.subarray(p.l4 + 8), req.subarray(24, 24 + 28));
    assert.equal(h.counters[UdpCounters.TX_ERROR], 1);
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('[sandbox] random and mutated frames never throw, and every slot comes back', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(m, r.port, r.address));
    await new Promise<void>((res) => echo.bind(0, '127.0.0.1', () => res()));
    const port = echo.address().port;
    const h = new Harness(config({ dnsUpstreams: [`127.0.0.1:${port}`] }));
    const tr = new UdpTranslator(h.ctx, { maxFlows: 32 });
    h.use(tr);
    const seeds = [
      udpFrame({ dst: GATEWAY, sport: 1234, dport: port, payload: enc('seed') }),
      udpFrame({ dst: DNS, sport: 1235, dport: 53, payload: enc('dns seed') }),
      udpFrame({ dst: ip('198.51.100.1'), sport: 1236, dport: 80, payload: enc('away') }),
    ];
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }))
          .map(([s, muts]) => {
            const f = s.slice();
            for (const [at, v] of muts) f[10 + (at % (f.length - 10))] = v;
            return f;
          }),
      ),
      async (frame) => {
        h.inject(frame);
      }), { numRuns: 2000 });
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 3000, 'slots released');
    assert.ok(tr.flowCount <= 32);
    tr.close();
    echo.close();
    assert.equal(tr.flowCount, 0);
  });
}
