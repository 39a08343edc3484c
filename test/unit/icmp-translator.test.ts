// IcmpTranslator: real ping sockets need net.ipv4.ping_group_range to include our group, which is a
// per-netns setting; so those tests run in a throwaway `unshare -Urn` namespace that allows it (and
// the "forbidden" case in one left at the default "1 0"). In there only lo exists: nothing leaves
// the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { IcmpCounters, IcmpTranslator, PING_NOT_PERMITTED_WARNING } from '../../src/translate/icmp';
import { checksum } from '../../src/wire/checksum';
import {
  canUnshare, config, DNS, echoFrame, GATEWAY, GUEST, GUEST_MAC, GW_MAC, Harness, ip, parse, runInSandbox, sleep,
  u16, udpFrame, waitFor,
} from '../helpers/translator-harness';

const MODE = process.env.TAPSWITCH_ICMP_SANDBOX; // 'allowed' | 'forbidden' | undefined (host)
const LOOP = ip('127.0.0.1');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function addonBuilt(): boolean {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'build', 'Release', 'tapswitch_native.node'))) return true;
    dir = path.dirname(dir);
  }
  return false;
}

/** Check an echo reply frame sent to the guest. */
function assertEchoReply(f: Uint8Array, from: number, id: number, seq: number, data: Uint8Array): void {
  const p = parse(f);
  assert.equal(p.proto, 1);
  assert.equal(p.src, from);
  assert.equal(p.dst, GUEST);
  assert.ok(p.ipChecksumOk, 'IPv4 header checksum');
  assert.deepEqual(p.ethDst, GUEST_MAC);
  assert.deepEqual(p.ethSrc, GW_MAC);
  assert.equal(p.vnetFlags, 0);
  assert.equal(f[p.l4], 0, 'type echo reply');
  assert.equal(f[p.l4 + 1], 0);
  assert.equal(u16(f, p.l4 + 4), id, "the guest's identifier");
  assert.equal(u16(f, p.l4 + 6), seq);
  assert.deepEqual(f.subarray(p.l4 + 8, p.l4 + p.l4Len), data);
  assert.equal(checksum(f, p.l4, p.l4Len), 0, 'ICMP checksum');
}

if (MODE === undefined) {
  test('ping sockets refused (EACCES): exactly one warning, drops counted, no throw', () => {
    const h = new Harness(config());
    let opened = 0;
    const tr = new IcmpTranslator(h.ctx, { openPingSocket: () => { opened++; return -13; } });
    h.use(tr);
    for (let i = 0; i < 5; i++) h.inject(echoFrame(ip('192.0.2.1'), 77, i, enc('abc')));
    h.inject(echoFrame(ip('192.0.2.2'), 78, 0, enc('abc')));
    assert.equal(opened, 1, 'no further syscalls once refused');
    assert.equal(h.log.count('warn'), 1);
    assert.equal(h.log.lines[0]!.msg, PING_NOT_PERMITTED_WARNING);
    assert.match(h.log.lines[0]!.msg, /ping_group_range/);
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_PERMITTED], 6);
    assert.equal(tr.echoEnabled, false);
    assert.equal(tr.flowCount, 0);
    assert.equal(h.sent.length, 0);
    assert.equal(h.dev.slotsInUse, 0);
    tr.close();
  });

  test('EPERM counts as refused too; other errno values do not disable echo', () => {
    const h = new Harness(config());
    const results = [-24 /* EMFILE */, -1 /* EPERM */];
    const tr = new IcmpTranslator(h.ctx, { openPingSocket: () => results.shift() ?? -1 });
    h.use(tr);
    h.inject(echoFrame(ip('192.0.2.1'), 1, 1, enc('x')));
    assert.equal(tr.echoEnabled, true);
    assert.equal(h.counters[IcmpCounters.TX_DROP_SOCKET], 1);
    assert.equal(h.log.count('warn'), 0);
    h.inject(echoFrame(ip('192.0.2.1'), 1, 2, enc('x')));
    assert.equal(tr.echoEnabled, false);
    assert.equal(h.log.count('warn'), 1);
    tr.close();
  });

  test('non-echo, bad checksum, broadcast and truncated ICMP are dropped before any socket', () => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx, { openPingSocket: () => assert.fail('must not open a socket') });
    h.use(tr);
    h.inject(echoFrame(ip('192.0.2.1'), 1, 1, enc('reply'), GUEST, 0)); // an echo reply from the guest
    const bad = echoFrame(ip('192.0.2.1'), 1, 1, enc('x'));
    bad[44 + 8] = 0x99; // payload changed, checksum not
    h.inject(bad);
    h.inject(echoFrame(ip('10.0.2.255'), 1, 1, enc('x')));
    h.inject(echoFrame(ip('255.255.255.255'), 1, 1, enc('x')));
    const short = echoFrame(ip('192.0.2.1'), 1, 1, new Uint8Array(0)).subarray(0, 24 + 20 + 4);
    short[24 + 3] = 24; // IP total length = 24: 4 bytes of ICMP
    h.inject(short);
    h.inject(udpFrame({ dst: ip('192.0.2.1'), sport: 1, dport: 2, payload: enc('udp') }));
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_ECHO], 1);
    assert.equal(h.counters[IcmpCounters.TX_DROP_BAD_CHECKSUM], 1);
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_UNICAST], 2);
    assert.equal(h.counters[IcmpCounters.TX_DROP_MALFORMED], 2);
    tr.close();
  });

  test('echo to the gateway with host loopback disabled: ICMP net unreachable', () => {
    const h = new Harness(config({ hostLoopback: false }));
    const tr = new IcmpTranslator(h.ctx, { openPingSocket: () => assert.fail('must not open a socket') });
    h.use(tr);
    const req = echoFrame(GATEWAY, 9, 1, enc('gw'));
    h.inject(req);
    assert.equal(h.sent.length, 1);
    const f = h.sent[0]!;
    const p = parse(f);
    assert.equal(p.src, GATEWAY);
    assert.equal(f[p.l4], 3);
    assert.equal(f[p.l4 + 1], 0);
    assert.equal(checksum(f, p.l4, p.l4Len), 0);
    assert.deepEqual(f.subarray(p.l4 + 8), req.subarray(24, 24 + 28));
    tr.close();
  });

  test('sandbox where ping sockets are allowed: real echo through ping sockets', (t) => {
    if (!canUnshare()) { t.skip('unshare -Urn is not available here'); return; }
    if (!addonBuilt()) { t.skip('native addon not built (npx node-gyp rebuild)'); return; }
    // Inside `unshare -Ur` only gid 0 is mapped, so the range is written as "0 0".
    const r = runInSandbox(__filename, { TAPSWITCH_ICMP_SANDBOX: 'allowed' },
      "sysctl -q -w net.ipv4.ping_group_range='0 0'");
    if (r.status !== 0) assert.fail(`sandboxed tests failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# pass 5\b/);
  });

  test('sandbox at the default ping_group_range: one warning, everything else works', (t) => {
    if (!canUnshare()) { t.skip('unshare -Urn is not available here'); return; }
    if (!addonBuilt()) { t.skip('native addon not built (npx node-gyp rebuild)'); return; }
    const r = runInSandbox(__filename, { TAPSWITCH_ICMP_SANDBOX: 'forbidden' });
    if (r.status !== 0) assert.fail(`sandboxed tests failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# pass 1\b/);
  });
} else if (MODE === 'allowed') {
  test('[sandbox] echo to 127.0.0.1 comes back with the guest identifier', async (t) => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    const data = enc('tapswitch ping payload 0123456789');
    h.inject(echoFrame(LOOP, 0x4242, 1, data));
    h.inject(echoFrame(LOOP, 0x4242, 2, data));
    await waitFor(() => h.sent.length === 2, 3000, 'two echo replies');
    const bySeq = h.sent.slice().sort((a, b) => u16(a, 50) - u16(b, 50));
    assertEchoReply(bySeq[0]!, LOOP, 0x4242, 1, data);
    assertEchoReply(bySeq[1]!, LOOP, 0x4242, 2, data);
    assert.equal(tr.flowCount, 1);
    assert.equal(h.counters[IcmpCounters.TX_ECHO], 2);
    assert.equal(h.counters[IcmpCounters.RX_ECHO], 2);
    assert.equal(h.log.count('warn'), 0);
    assert.equal(h.dev.slotsInUse, 0);
  });

  test('[sandbox] echo to the gateway pings 127.0.0.1 and answers from the gateway; DNS from itself', async (t) => {
    const h = new Harness(config({ dnsUpstreams: ['127.0.0.53'] }));
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    h.inject(echoFrame(GATEWAY, 7, 1, enc('gw')));
    h.inject(echoFrame(DNS, 8, 1, enc('dns')));
    await waitFor(() => h.sent.length === 2, 3000, 'replies');
    const gw = h.sent.find((f) => parse(f).src === GATEWAY);
    const dns = h.sent.find((f) => parse(f).src === DNS);
    assert.ok(gw && dns);
    assertEchoReply(gw, GATEWAY, 7, 1, enc('gw'));
    assertEchoReply(dns, DNS, 8, 1, enc('dns'));
  });

  test('[sandbox] flows are bounded (LRU) and expire when idle', async (t) => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx, { maxFlows: 2, idleTimeoutMs: 150, sweepIntervalMs: 20 });
    h.use(tr);
    t.after(() => tr.close());
    h.inject(echoFrame(LOOP, 1, 1, enc('a')));
    h.inject(echoFrame(LOOP, 2, 1, enc('b')));
    h.inject(echoFrame(LOOP, 1, 2, enc('a'))); // id 1 is now the most recent
    h.inject(echoFrame(LOOP, 3, 1, enc('c'))); // evicts id 2
    assert.equal(tr.flowCount, 2);
    assert.equal(h.counters[IcmpCounters.FLOWS_EVICTED], 1);
    await waitFor(() => h.sent.length >= 3, 3000, 'replies');
    await waitFor(() => tr.flowCount === 0, 2000, 'idle expiry');
    assert.equal(h.counters[IcmpCounters.FLOWS_EXPIRED], 2);
    // The evicted flow's reply (if it raced the eviction) never reached the guest as id 2 twice.
    const ids = h.sent.map((f) => u16(f, parse(f).l4 + 4));
    assert.ok(ids.includes(1) && ids.includes(3));
  });

  test('[sandbox] no route: ICMP net unreachable quoting the request', async (t) => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    t.after(() => tr.close());
    const req = echoFrame(ip('198.51.100.9'), 5, 1, enc('far away'));
    h.inject(req);
    await waitFor(() => h.sent.length === 1, 2000, 'ICMP error');
    const f = h.sent[0]!;
    const p = parse(f);
    assert.equal(f[p.l4], 3);
    assert.equal(f[p.l4 + 1], 0);
    assert.deepEqual(f.subarray(p.l4 + 8), req.subarray(24, 24 + 28));
    await waitFor(() => tr.pendingSends === 0 && h.dev.slotsInUse === 0, 1000, 'slots released');
  });

  test('[sandbox] random and mutated frames never throw; every slot comes back', async () => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx, { maxFlows: 16 });
    h.use(tr);
    const seeds = [echoFrame(LOOP, 1, 1, enc('seed')), echoFrame(GATEWAY, 2, 2, enc('gw')),
      echoFrame(ip('198.51.100.1'), 3, 3, enc('away'))];
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 120 }),
        fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }))
          .map(([s, muts]) => {
            const f = s.slice();
            for (const [at, v] of muts) f[10 + (at % (f.length - 10))] = v;
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
} else if (MODE === 'forbidden') {
  test('[sandbox, default range] the real addon is refused: one warning, no throw', () => {
    const h = new Harness(config());
    const tr = new IcmpTranslator(h.ctx);
    h.use(tr);
    for (let i = 0; i < 3; i++) h.inject(echoFrame(LOOP, 1, i, enc('x')));
    assert.equal(h.log.count('warn'), 1);
    assert.equal(h.log.lines[0]!.msg, PING_NOT_PERMITTED_WARNING);
    assert.equal(h.counters[IcmpCounters.TX_DROP_NOT_PERMITTED], 3);
    assert.equal(tr.flowCount, 0);
    tr.close();
  });
}
