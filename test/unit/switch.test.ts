import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Switch, type SwitchPort, TapPort } from '../../src/switch/switch';
import { macKey, parseMac } from '../../src/wire/addr';
import { emitEthernet, EtherType, ETH_HDR_LEN } from '../../src/wire/ethernet';
import type { Frame } from '../../src/wire/frame';
import { VNET_HDR_LEN } from '../../src/wire/vnet';
import { MemoryDevice } from '../../src/link/memory';

const BCAST = parseMac('ff:ff:ff:ff:ff:ff')!;
const A = parseMac('02:00:00:00:00:0a')!;
const B = parseMac('02:00:00:00:00:0b')!;
const C = parseMac('02:00:00:00:00:0c')!;

/** A port that records what it was given (as copies). */
class RecPort implements SwitchPort {
  got: Uint8Array[] = [];
  constructor(readonly id: number) {}
  deliver(f: Frame): void { this.got.push(f.buf.slice(f.off, f.off + f.len)); }
  deliverParts(parts: readonly Uint8Array[]): void {
    const n = parts.reduce((s, p) => s + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    this.got.push(out);
  }
}

function frameBytes(dst: Uint8Array, src: Uint8Array, payload = 46): Uint8Array {
  const b = new Uint8Array(VNET_HDR_LEN + ETH_HDR_LEN + payload);
  emitEthernet(b, VNET_HDR_LEN, dst, src, EtherType.IPV4);
  b[b.length - 1] = 0x5a;
  return b;
}

const NOOP_OWNER = { retain(): void {}, release(): void {} };
function asFrame(b: Uint8Array, pad = 7): Frame {
  // Put the frame in the middle of a larger slab to check offsets are honoured.
  const slab = new Uint8Array(b.length + 2 * pad);
  slab.set(b, pad);
  return { buf: slab, off: pad, len: b.length, slot: 0, owner: NOOP_OWNER };
}

function setup(opts: ConstructorParameters<typeof Switch>[0] = {}) {
  let t = 0;
  const sw = new Switch({ now: () => t, ...opts });
  const ports = [new RecPort(1), new RecPort(2), new RecPort(3)] as const;
  for (const p of ports) sw.addPort(p);
  return { sw, ports, advance: (ms: number) => { t += ms; } };
}

test('unknown unicast and broadcast flood to every port but the ingress', () => {
  const { sw, ports: [p1, p2, p3] } = setup();
  const f = frameBytes(B, A);
  sw.input(p1, asFrame(f));
  assert.equal(p1.got.length, 0);
  assert.deepEqual(p2.got, [f]);
  assert.deepEqual(p3.got, [f]);
  const bc = frameBytes(BCAST, B);
  sw.input(p2, asFrame(bc));
  assert.equal(p1.got.length, 1);
  assert.equal(p2.got.length, 1);
  assert.equal(p3.got.length, 2);
  assert.equal(sw.counters.switch_flooded_unknown, 1);
  assert.equal(sw.counters.switch_flooded_multicast, 1);
});

test('learns sources and forwards known unicast to one port', () => {
  const { sw, ports: [p1, p2, p3] } = setup();
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  sw.input(p2, asFrame(frameBytes(BCAST, B)));
  assert.equal(sw.lookup(macKey(A, 0)), p1);
  assert.equal(sw.lookup(macKey(B, 0)), p2);
  for (const p of [p1, p2, p3]) p.got.length = 0;
  const f = frameBytes(B, A);
  sw.input(p1, asFrame(f));
  assert.deepEqual(p2.got, [f]);
  assert.equal(p1.got.length + p3.got.length, 0);
  // parts path: reply from B to A
  const r = frameBytes(A, B);
  assert.equal(sw.inputParts(p2, [r.subarray(0, 30), r.subarray(30)]), true);
  assert.deepEqual(p1.got, [r]);
  assert.equal(p3.got.length, 0);
  assert.equal(sw.counters.switch_forwarded, 2);
});

test('never hairpins: a frame for a station behind the ingress port is dropped and counted', () => {
  const { sw, ports: [p1, p2, p3] } = setup();
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  sw.input(p1, asFrame(frameBytes(BCAST, C)));
  p2.got.length = 0; p3.got.length = 0;
  sw.input(p1, asFrame(frameBytes(C, A)));
  assert.equal(sw.inputParts(p1, [frameBytes(A, C)]), false);
  assert.equal(p1.got.length + p2.got.length + p3.got.length, 0);
  assert.equal(sw.counters.switch_hairpin_dropped, 2);
});

test('multicast sources are not learned; a station that moves is relearned', () => {
  const { sw, ports: [p1, p2] } = setup();
  const mcast = parseMac('01:00:5e:00:00:01')!;
  sw.input(p1, asFrame(frameBytes(BCAST, mcast)));
  assert.equal(sw.macCount, 0);
  assert.equal(sw.counters.switch_src_multicast, 1);
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  sw.input(p2, asFrame(frameBytes(BCAST, A)));
  assert.equal(sw.lookup(macKey(A, 0)), p2);
  assert.equal(sw.counters.switch_mac_moved, 1);
});

test('entries age out with the injected clock', () => {
  const { sw, ports: [p1, p2, p3], advance } = setup({ agingMs: 300_000 });
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  advance(299_000);
  assert.equal(sw.lookup(macKey(A, 0)), p1);
  p2.got.length = 0; p3.got.length = 0;
  sw.input(p2, asFrame(frameBytes(A, B)));
  assert.equal(p1.got.length, 1);
  assert.equal(p3.got.length, 0, 'still learned: unicast');
  advance(2_000);
  assert.equal(sw.lookup(macKey(A, 0)), null);
  sw.input(p2, asFrame(frameBytes(A, B)));
  assert.equal(p3.got.length, 1, 'aged out: flooded');
  assert.equal(sw.counters.switch_mac_expired, 1);
  // Hearing A again refreshes it.
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  advance(200_000);
  sw.input(p1, asFrame(frameBytes(B, A)));
  advance(200_000);
  assert.equal(sw.lookup(macKey(A, 0)), p1);
});

test('expired entries are swept when new stations are learned', () => {
  const { sw, ports: [p1], advance } = setup({ agingMs: 1000 });
  for (let i = 0; i < 50; i++) {
    const m = parseMac(`02:00:00:00:01:${i.toString(16).padStart(2, '0')}`)!;
    sw.input(p1, asFrame(frameBytes(BCAST, m)));
  }
  assert.equal(sw.macCount, 50);
  advance(10_000);
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  assert.equal(sw.macCount, 1);
});

test('the table is bounded: when full of live entries the least recently heard is evicted', () => {
  const { sw, ports: [p1, p2], advance } = setup({ maxEntries: 8 });
  const macs: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) {
    macs.push(parseMac(`02:00:00:00:02:${i.toString(16).padStart(2, '0')}`)!);
    sw.input(p1, asFrame(frameBytes(BCAST, macs[i]!)));
    advance(2000);
  }
  // Hear the first one again: it moves to the back of the order.
  sw.input(p1, asFrame(frameBytes(BCAST, macs[0]!)));
  sw.input(p2, asFrame(frameBytes(BCAST, A)));
  assert.equal(sw.macCount, 8);
  assert.equal(sw.counters.switch_mac_evicted, 1);
  assert.equal(sw.lookup(macKey(macs[1]!, 0)), null, 'least recently heard evicted');
  assert.equal(sw.lookup(macKey(macs[0]!, 0)), p1);
  assert.equal(sw.lookup(macKey(A, 0)), p2);
  for (let i = 0; i < 10_000; i++) {
    const m = new Uint8Array([2, 0, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, 0x77]);
    sw.input(p2, asFrame(frameBytes(BCAST, m)));
  }
  assert.equal(sw.macCount, 8);
});

test('runt frames are dropped and counted, never thrown', () => {
  const { sw, ports: [p1, p2] } = setup();
  sw.input(p1, asFrame(new Uint8Array(VNET_HDR_LEN + ETH_HDR_LEN - 1)));
  assert.equal(sw.inputParts(p1, [new Uint8Array(5)]), false);
  assert.equal(sw.inputParts(p1, []), false);
  sw.input(p1, { buf: new Uint8Array(10), off: 0, len: 100, slot: 0, owner: NOOP_OWNER });
  assert.equal(p2.got.length, 0);
  assert.equal(sw.counters.switch_runt_dropped, 4);
});

test('removePort forgets its stations', () => {
  const { sw, ports: [p1, p2, p3] } = setup();
  sw.input(p1, asFrame(frameBytes(BCAST, A)));
  sw.removePort(p1);
  assert.equal(sw.lookup(macKey(A, 0)), null);
  sw.input(p2, asFrame(frameBytes(A, B)));
  assert.equal(p1.got.length, 0);
  assert.equal(p3.got.length, 2);
});

test('TapPort: several memory devices switched together', () => {
  const sw = new Switch();
  const devs = [new MemoryDevice('m1'), new MemoryDevice('m2'), new MemoryDevice('m3')];
  const ports = devs.map((d, i) => new TapPort(i + 1, d));
  for (const p of ports) { sw.addPort(p); p.start(sw); }
  devs[0]!.inject(frameBytes(BCAST, A));
  assert.equal(devs[1]!.sent.length, 1);
  assert.equal(devs[2]!.sent.length, 1);
  assert.equal(devs[0]!.sent.length, 0);
  devs[1]!.inject(frameBytes(A, B), frameBytes(A, C));
  assert.equal(devs[0]!.sent.length, 2);
  assert.deepEqual(devs[0]!.sent[0], frameBytes(A, B));
  assert.equal(devs[2]!.sent.length, 1, 'only the broadcast');
  devs[0]!.inject(frameBytes(C, A));
  assert.equal(devs[1]!.sent.length, 2);
  assert.equal(devs[2]!.sent.length, 1);
  // A port built frame (parts) goes out via device.send.
  sw.inputParts(ports[2]!, [frameBytes(B, C)]);
  assert.equal(devs[1]!.sent.length, 3);
});

test('TapPort with onError: a frame that makes a layer throw is dropped, the rest of the batch goes on', () => {
  const sw = new Switch();
  const errors: unknown[] = [];
  const dev = new MemoryDevice('m1');
  const port = new TapPort(1, dev, (e) => errors.push(e));
  const got: Uint8Array[] = [];
  const faulty: SwitchPort = {
    id: 2,
    deliver(frame) {
      const b = frame.buf.slice(frame.off, frame.off + frame.len);
      if (b[VNET_HDR_LEN + 6 + 5] === 0x0b) throw new Error('layer bug');
      got.push(b);
    },
    deliverParts() {},
  };
  sw.addPort(port);
  sw.addPort(faulty);
  port.start(sw);
  dev.inject(frameBytes(BCAST, A), frameBytes(BCAST, B), frameBytes(BCAST, C));
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as Error).message, 'layer bug');
  assert.deepEqual(got, [frameBytes(BCAST, A), frameBytes(BCAST, C)]);
  assert.equal(dev.slotsInUse, 0);
  // Without onError the exception reaches the caller (what tests of the layers want).
  const bare = new TapPort(3, new MemoryDevice('m2'));
  sw.addPort(bare);
  bare.start(sw);
  assert.throws(() => (bare.device as MemoryDevice).inject(frameBytes(BCAST, B)), /layer bug/);
});

test('pinned MACs: never flooded, never aged or evicted, cannot be taken over from another port', () => {
  const { sw, ports: [p1, p2, p3], advance } = setup({ maxEntries: 2, agingMs: 1000 });
  const GW = parseMac('52:55:0a:00:02:02')!;
  sw.pin(p3, GW);
  const f = frameBytes(GW, A);
  sw.input(p1, asFrame(f));
  assert.deepEqual(p3.got, [f], 'to the pinned port only, before it sent anything');
  assert.equal(p2.got.length, 0);
  // A container sending with the gateway's MAC as source: dropped, the pin holds.
  sw.input(p1, asFrame(frameBytes(BCAST, GW)));
  assert.equal(sw.counters.switch_src_pinned_dropped, 1);
  assert.equal(p2.got.length, 0);
  assert.equal(sw.lookup(macKey(GW, 0)), p3);
  // The pinned port itself sends normally.
  assert.equal(sw.inputParts(p3, [frameBytes(A, GW)]), true);
  assert.equal(p1.got.length, 1);
  // Aging and eviction leave it alone.
  for (let i = 0; i < 5; i++) sw.input(p2, asFrame(frameBytes(BCAST, new Uint8Array([2, 0, 0, 0, 3, i]))));
  advance(10_000);
  sw.input(p2, asFrame(frameBytes(BCAST, B)));
  assert.equal(sw.lookup(macKey(GW, 0)), p3);
  assert.ok(sw.macCount <= 2);
  sw.removePort(p3);
  assert.equal(sw.lookup(macKey(GW, 0)), null);
});
