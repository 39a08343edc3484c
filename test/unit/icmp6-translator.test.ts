// IcmpTranslator over IPv6: ICMPv6 echo through AF_INET6 ping sockets. Like the IPv4 tests, the
// real-socket cases run in a throwaway `unshare -Urn` namespace that allows ping sockets
// (net.ipv4.ping_group_range governs ICMPv6 too), with 2001:db8::1 on its lo as an "outside"
// address; nothing leaves the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { IcmpCounters, IcmpTranslator, PING_NOT_PERMITTED_WARNING } from '../../src/translate/icmp';
import { checksum, pseudoHeaderSum6 } from '../../src/wire/checksum';
import {
  canUnshare, config, echo6Frame, echoFrame, GATEWAY6, GUEST6, GUEST_MAC, GW_MAC, Harness, ip, ip6, parse6, runInSandbox,
  sleep, u16, udp6Frame, waitFor,
} from '../helpers/translator-harness';

const MODE = process.env.TAPSWITCH_ICMP6_SANDBOX; // 'allowed' | undefined (host)
const OUTSIDE = ip6('2001:db8::1');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

function addonBuilt(): boolean {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'build', 'Release', 'tapswitch_native.node'))) return true;
    dir = path.dirname(dir);
  }
  return false;
}

/** Check an ICMPv6 echo reply frame sent to the guest. */
function assertEchoReply6(f: Uint8Array, from: Uint8Array, id: number, seq: number, data: Uint8Array): void {
  const p = parse6(f);
  assert.equal(p.etherType, 0x86dd);
  assert.equal(p.nextHeader, 58);
  assert.ok(same(p.src, from), 'from the address the guest pinged');
  assert.ok(same(p.dst, GUEST6));
  assert.deepEqual(p.ethDst, GUEST_MAC);
  assert.deepEqual(p.ethSrc, GW_MAC);
  assert.equal(p.vnetFlags, 0);
  assert.equal(f[p.l4], 129, 'type echo reply');
  assert.equal(f[p.l4 + 1], 0);
  assert.equal(u16(f, p.l4 + 4), id, "the guest's identifier");
  assert.equal(u16(f, p.l4 + 6), seq);
  assert.deepEqual(f.subarray(p.l4 + 8, p.l4 + p.l4Len), data);
  assert.equal(checksum(f, p.l4, p.l4Len, pseudoHeaderSum6(f, 32, f, 48, 58, p.l4Len)), 0,
    "ICMPv6 checksum over the guest's pseudo-header");
}

if (MODE === undefined) {
  test('ICMPv6 echo to fd00::2 with host loopback disabled: ICMPv6 no route, no socket', () => {
    const h = new Harness(config({ hostLoopback: false }));
    const tr = new IcmpTranslator(h.ctx, { openPingSocket6: () => assert.fail('must not open a socket') });
    h.use(tr);
    const req = echo6Frame(GATEWAY6, 9, 1, enc('gw'));
    h.inject(req);
    assert.equal(h.sent.length, 1);
    const f = h.sent[0]!;
    const p = parse6(f);
    assert.ok(same(p.src, GATEWAY6));
    assert.equal(f[p.l4], 1);
    assert.equal(f[p.l4 + 1], 0);
    assert.equal(checksum(f, p.l4, p.l4Len, pseudoHeaderSum6(f, 32, f, 48, 58, p.l4Len)), 0);
    assert.ok(same(f.subarray(p.l4 + 8), req.subarray(24)));
    tr.close();
  });

  test('ICMPv6 ping sockets refused (EACCES): one warning for both families, drops counted', () => {
    const h = new Harness(config());
    let opened = 0;
    const tr = new IcmpTranslator(h.ctx, {
      openPingSocket6: () => { opened++; return -13; }, openPingSocket: () => { opened++; return -13; },
    });
    h.use(tr);
    for (let i = 0; i < 3; i++) h.inject(echo6Frame(OUTSIDE, 77, i, enc('abc')));
    h.inject(echoFrame(ip('192.0.2.1'), 78, 0, enc('abc')));
    assert.equal(opened, 1, 'no further syscalls once refused');
    assert.equal(h.log.count('warn'), 1);
    assert.equal(h.log.lines[0]!.msg, PING_NOT_PERMITTED_WARNING);
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_PERMITTED], 4);
    tr.close();
  });

  test('ICMPv6 input that is not a translatable echo request is dropped and counted; IPv6 off', () => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx, { openPingSocket6: () => assert.fail('must not open a socket') });
    h.use(tr);
    const bad = echo6Frame(OUTSIDE, 1, 1, enc('x'));
    bad[64 + 8] = bad[64 + 8]! ^ 0xff; // payload changed after the checksum
    h.inject(bad);
    assert.equal(h.counters[IcmpCounters.TX_DROP_BAD_CHECKSUM], 1);
    h.inject(echo6Frame(OUTSIDE, 1, 1, enc('x'), GUEST6, 129));
    h.inject(echo6Frame(OUTSIDE, 1, 1, enc('x'), GUEST6, 135));
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_ECHO], 2);
    for (const d of ['ff02::1', '::1', '::ffff:127.0.0.1', 'fe80::2']) h.inject(echo6Frame(ip6(d), 1, 1, enc('x')));
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_UNICAST], 4);
    h.inject(udp6Frame({ dst: OUTSIDE, sport: 1, dport: 2, payload: enc('udp') }));
    assert.equal(h.counters[IcmpCounters.TX_DROP_MALFORMED], 1);
    assert.equal(h.sent.length, 0);
    tr.close();

    const off = new Harness(config({ ipv6: null }));
    const tr2 = new IcmpTranslator(off.ctx, { openPingSocket6: () => assert.fail('must not open a socket') });
    off.use(tr2);
    off.inject(echo6Frame(OUTSIDE, 1, 1, enc('x')));
    assert.equal(off.counters[IcmpCounters.TX_DROP_IPV6_OFF], 1);
    tr2.close();
  });

  test('sandbox where ping sockets are allowed: real ICMPv6 echo through AF_INET6 ping sockets', (t) => {
    if (!canUnshare()) { t.skip('unshare -Urn is not available here'); return; }
    if (!addonBuilt()) { t.skip('native addon not built (npm run install)'); return; }
    const r = runInSandbox(__filename, { TAPSWITCH_ICMP6_SANDBOX: 'allowed' },
      "sysctl -q -w net.ipv4.ping_group_range='0 0' && ip addr add 2001:db8::1/128 dev lo");
    if (r.status !== 0) assert.fail(`sandboxed tests failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# pass 4\b/);
  });
} else if (MODE === 'allowed') {
  test('[sandbox] ICMPv6 echo to an outside address and to fd00::2 (-> ::1) come back with the guest identifier', async (t) => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    const data = enc('tapswitch ping6 payload 0123456789');
    h.inject(echo6Frame(OUTSIDE, 0x4242, 1, data));
    h.inject(echo6Frame(OUTSIDE, 0x4242, 2, data));
    h.inject(echo6Frame(GATEWAY6, 0x4343, 1, enc('gw')));
    await waitFor(() => h.sent.length === 3, 3000, 'three echo replies');
    const out = h.sent.filter((f) => same(parse6(f).src, OUTSIDE)).sort((a, b) => u16(a, 70) - u16(b, 70));
    assert.equal(out.length, 2);
    assertEchoReply6(out[0]!, OUTSIDE, 0x4242, 1, data);
    assertEchoReply6(out[1]!, OUTSIDE, 0x4242, 2, data);
    const gw = h.sent.find((f) => same(parse6(f).src, GATEWAY6));
    assert.ok(gw, 'a reply from the gateway');
    assertEchoReply6(gw, GATEWAY6, 0x4343, 1, enc('gw'));
    assert.equal(tr.flowCount, 2);
    assert.equal(h.counters[IcmpCounters.FLOWS6_CREATED], 2);
    assert.equal(h.counters[IcmpCounters.RX_ECHO], 3);
    assert.equal(h.log.count('warn'), 0);
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('[sandbox] ICMPv4 and ICMPv6 echo with the same identifier are separate flows', async (t) => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    h.inject(echo6Frame(OUTSIDE, 5, 1, enc('six')));
    h.inject(echoFrame(ip('127.0.0.1'), 5, 1, enc('four')));
    await waitFor(() => h.sent.length === 2, 3000, 'both replies');
    assert.equal(tr.flowCount, 2);
    assert.ok(h.sent.some((f) => u16(f, 22) === 0x86dd) && h.sent.some((f) => u16(f, 22) === 0x0800));
  });

  test('[sandbox] ICMPv6 no route: the guest gets ICMPv6 no route quoting its request', async (t) => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    const req = echo6Frame(ip6('2001:db8:ffff::9'), 5, 1, enc('far away'));
    h.inject(req);
    await waitFor(() => h.sent.length === 1, 2000, 'ICMPv6 error');
    const f = h.sent[0]!;
    const p = parse6(f);
    assert.equal(f[p.l4], 1);
    assert.equal(f[p.l4 + 1], 0);
    assert.ok(same(p.src, GATEWAY6));
    assert.ok(same(f.subarray(p.l4 + 8), req.subarray(24, 24 + 48)));
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('[sandbox] random and mutated ICMPv6 frames never throw; every slot comes back', async () => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx, { maxFlows: 16 });
    h.use(tr);
    const seeds = [echo6Frame(OUTSIDE, 1, 1, enc('seed')), echo6Frame(GATEWAY6, 2, 2, enc('gw')),
      echo6Frame(ip6('2001:db8:ffff::1'), 3, 3, enc('away'))];
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 140 }).map((b) => { const f = new Uint8Array(24 + b.length); f.set(b, 24); f[22] = 0x86; f[23] = 0xdd; if (f.length > 24) f[24] = 0x60; return f; }),
        fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }))
          .map(([s, muts]) => {
            const f = s.slice();
            for (const [at, v] of muts) f[24 + (at % (f.length - 24))] = v;
            return f;
          }),
      ),
      async (frame) => { h.inject(frame); }), { numRuns: 1500 });
    await sleep(50);
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 3000, 'slots released');
    assert.ok(tr.flowCount <= 16);
    tr.close();
    assert.equal(tr.flowCount, 0);
  });
}
