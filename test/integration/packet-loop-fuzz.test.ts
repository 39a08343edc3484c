// The whole packet loop (switch, router, translators) against hostile input: random frames,
// mutated real captured frames and a SYN flood. It runs in a sandbox because mutated packets become
// real connect()/send() calls: their random destinations must land in a namespace with no route out.
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import fc from 'fast-check';
import { ensureSandbox, cleanup } from '../helpers/sandbox';
import { MemoryDevice } from '../../src/link/memory';
import { DataPlane } from '../../src/worker/dataplane';
import { buildDataPlaneConfig, parseCidr } from '../../src/control/config';
import { FIXTURE_NAMES, loadFixture } from '../fixtures/load';
import type { Logger } from '../../src/translate/types';

const quiet: Logger = { enabled: () => false, log: () => {} };

function plane(): { dev: MemoryDevice; dp: DataPlane; gatewayMac: number[] } {
  const config = buildDataPlaneConfig({
    cidr: parseCidr('10.0.2.0/24'), mtu: 1500, hostLoopback: true, dnsUpstreams: ['127.0.0.1:53'], logLevel: 'error',
  });
  const dev = new MemoryDevice('fuzz0', 64);
  const dp = new DataPlane(dev, config, quiet, true);
  dp.start();
  return { dev, dp, gatewayMac: config.gatewayMac };
}

if (ensureSandbox(__filename)) {
  after(() => cleanup());

  test('random and mutated frames never throw out of the packet loop', { timeout: 60_000 }, async (t) => {
    const { dev, dp, gatewayMac } = plane();
    t.after(() => dp.close());
    // Captured frames were addressed to another gateway MAC: address ours so mutations get past the
    // switch and router into the translators.
    const fixtures = FIXTURE_NAMES.map((n) => { const f = loadFixture(n); f.set(gatewayMac, 10); return f; });
    const mutated = fc.tuple(fc.constantFrom(...fixtures), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.integer({ min: -64, max: 64 }))
      .map(([f, flips, grow]) => {
        const len = Math.max(0, Math.min(f.length + grow, 65_600));
        const out = new Uint8Array(len);
        out.set(f.subarray(0, len));
        for (const [at, v] of flips) if (len > 0) out[at % len] = v;
        return out;
      });
    const random = fc.uint8Array({ minLength: 0, maxLength: 2048, size: 'max' });
    fc.assert(fc.property(fc.oneof(mutated, random), (frame) => {
      dev.inject(frame);
    }), { numRuns: 4000 });
    // Let connects/sends triggered by mutated packets settle, then check nothing leaked through.
    await new Promise((r) => setTimeout(r, 300));
    const c = dp.snapshot();
    assert.equal(c.packet_loop_exceptions ?? 0, 0, 'a frame made a layer throw (caught, but a bug)');
    assert.ok(c.rx_frames! >= 4000);
    // The mutations reached every layer, not just the first length check.
    assert.ok((c.ipv4_forwarded ?? 0) > 100, `ipv4_forwarded ${c.ipv4_forwarded}`);
    assert.ok((c.tcp_no_flow_rst ?? 0) + (c.tcp_flows_opened ?? 0) + (c['udp.tx.datagrams'] ?? 0) > 0, JSON.stringify(c));
    assert.equal(dev.slotsInUse, 0, 'every retained receive slot was released');
  });

  test('a SYN flood of half-open flows stays bounded and a legitimate flow still works', { timeout: 60_000 }, async (t) => {
    // The server accepts every connection, so each SYN becomes a half-open flow: SYN-ACK sent, and
    // the flooding "guest" never completes the handshake.
    const server = net.createServer((s) => { s.on('error', () => {}); s.end('hello\n'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const { dev, dp, gatewayMac } = plane();
    t.after(() => { dp.close(); server.close(); });
    const syn = loadFixture('tcp-syn');
    // The capture was addressed to another gateway MAC: address ours (Ethernet dst at vnet(10)).
    syn.set(gatewayMac, 10);
    // TCP header at vnet(10) + Ethernet(14) + IPv4(20): patch source and destination ports only,
    // so the IPv4 header checksum stays valid (the TCP checksum is left to offload: NEEDS_CSUM).
    const at = 44;
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 6000; i++) {
      const f = syn.slice();
      f[at] = 0x80 | ((i >> 8) & 0x7f); f[at + 1] = i & 0xff;
      f[at + 2] = port >> 8; f[at + 3] = port & 0xff;
      dev.inject(f);
      if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 500));
    const c = dp.snapshot();
    assert.ok(c.tcp_flows! <= 4096, `flows ${c.tcp_flows}`);
    assert.ok(process.memoryUsage().rss - rss0 < 256 * 1024 * 1024, 'memory stayed bounded');
    // A fresh flow from a new source port still gets its SYN-ACK.
    const before = dev.sent.length;
    const f = syn.slice();
    f[at] = 0x01; f[at + 1] = 0x01; f[at + 2] = port >> 8; f[at + 3] = port & 0xff;
    dev.inject(f);
    await new Promise((r) => setTimeout(r, 300));
    const synAck = dev.sent.slice(before).find((fr) => fr.length >= 58 && fr[23] === 0x00 && fr[33] === 6 && (fr[57]! & 0x12) === 0x12 && fr[46] === 0x01 && fr[47] === 0x01);
    assert.ok(synAck, 'the legitimate SYN was answered with a SYN-ACK');
  });
}
