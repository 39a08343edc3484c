// Fuzzing the wire views with fast-check. A container is untrusted input: whatever bytes arrive,
// bind() must return a yes/no without throwing, and after a yes every accessor must stay inside
// the bound range b[o, o+n). Inputs: random bytes, and the captured frames mutated (bit flips,
// byte overwrites, truncation, extension). Runs are bounded so the file finishes in a few seconds.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FIXTURE_NAMES, loadFixture } from '../fixtures/load';
import {
  VNET_HDR_LEN, vnetFlags, vnetGsoType, vnetHdrLen, vnetGsoSize, vnetCsumStart, vnetCsumOffset,
  EthernetView, EtherType, ArpView, Ipv4View, IpProtocol, IcmpView, UdpView, TcpView, Ipv6View,
  newTcpSynOptions,
  Icmpv6View, RouterSolicitView, RouterAdvertView, NeighborSolicitView, NeighborAdvertView, NdpOptionReader,
  PrefixInfoView, MtuOptionView, RdnssView, Icmpv6Type, NdpOptionType,
} from '../../src/wire';

interface View {
  o: number;
  bind(b: Uint8Array, o: number, n: number): boolean;
}
type ViewClass = new () => View;

const VIEWS: ReadonlyArray<[string, ViewClass]> = [
  ['Ethernet', EthernetView], ['ARP', ArpView], ['IPv4', Ipv4View], ['ICMP', IcmpView],
  ['UDP', UdpView], ['TCP', TcpView], ['IPv6', Ipv6View],
  ['ICMPv6', Icmpv6View], ['RS', RouterSolicitView], ['RA', RouterAdvertView], ['NS', NeighborSolicitView],
  ['NA', NeighborAdvertView], ['PrefixInfo', PrefixInfoView], ['MTU option', MtuOptionView], ['RDNSS', RdnssView],
];

/** Byte arrays of any length up to max (fast-check's default size would keep them tiny). */
const bytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max, size: 'max' });

/**
 * Make random bytes plausible for one view: its version/length fields near the real size, so
 * bind() says yes often and the edge cases (length = n, n + 1, header > n) are all hit.
 */
const PLAUSIBLE: Record<string, (b: Uint8Array, r: number) => void> = {
  Ethernet: () => {},
  ICMP: () => {},
  ARP: (b) => { if (b.length >= 6) b.set([0, 1, 8, 0, 6, 4]); },
  IPv4: (b, r) => {
    if (b.length < 4) return;
    b[0] = 0x40 | (b[0]! & 0x0f);
    const tl = Math.max(0, b.length - (r % 8) + 2);
    b[2] = tl >> 8; b[3] = tl & 0xff;
  },
  UDP: (b, r) => {
    if (b.length < 6) return;
    const len = Math.max(0, b.length - (r % 12) + 2);
    b[4] = len >> 8; b[5] = len & 0xff;
  },
  TCP: (b, r) => { if (b.length >= 13) b[12] = ((5 + (r % 11)) << 4) | (b[12]! & 0x0f); },
  ICMPv6: () => {},
  RS: (b) => { if (b.length >= 1) b[0] = 133; },
  RA: (b) => { if (b.length >= 1) b[0] = 134; },
  NS: (b) => { if (b.length >= 1) b[0] = 135; },
  NA: (b) => { if (b.length >= 1) b[0] = 136; },
  PrefixInfo: (b, r) => { if (b.length >= 2) { b[0] = 3; b[1] = r % 3 === 0 ? r % 8 : 4; } },
  'MTU option': (b, r) => { if (b.length >= 2) { b[0] = 5; b[1] = r % 3 === 0 ? r % 4 : 1; } },
  RDNSS: (b, r) => { if (b.length >= 2) { b[0] = 25; b[1] = r % 13; } },
  IPv6: (b, r) => {
    if (b.length < 6) return;
    b[0] = 0x60 | (b[0]! & 0x0f);
    const pl = Math.max(0, b.length - 40 - (r % 8) + 2);
    b[4] = pl >> 8; b[5] = pl & 0xff;
  },
};

/** Every getter of a view, by name (read through the prototype, as callers do). */
function readAll(v: View): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const proto = Object.getPrototypeOf(v) as object;
  for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
    if (d.get) out[name] = d.get.call(v);
  }
  if (v instanceof TcpView) {
    const o = newTcpSynOptions();
    v.parseSynOptions(o);
    out['synOptions'] = o;
  }
  return out;
}

/** Invariants that hold for every view after bind() returned true on b[o, o+n). */
function checkBound(name: string, v: View, b: Uint8Array, o: number, n: number): Record<string, unknown> {
  const all = readAll(v);
  for (const [k, val] of Object.entries(all)) {
    if (typeof val === 'number') {
      assert.ok(Number.isInteger(val), `${name}.${k} = ${val} is not an integer`);
    }
  }
  const po = all['payloadOffset'];
  const pl = all['payloadLength'];
  if (typeof po === 'number' && typeof pl === 'number') {
    assert.ok(po >= o, `${name}: payload starts before the view`);
    assert.ok(pl >= 0, `${name}: negative payload length ${pl}`);
    assert.ok(po + pl <= o + n, `${name}: payload ${po}+${pl} runs past ${o}+${n}`);
    assert.ok(po + pl <= b.length);
  }
  for (const k of ['srcOffset', 'dstOffset', 'shaOffset', 'thaOffset']) {
    const at = all[k];
    if (typeof at === 'number') assert.ok(at >= o && at + 6 <= o + n, `${name}.${k} outside the view`);
  }
  for (const k of ['srcAddrOffset', 'dstAddrOffset']) {
    const at = all[k];
    if (typeof at === 'number') assert.ok(at >= o && at + 16 <= o + n, `${name}.${k} outside the view`);
  }
  if (v instanceof TcpView) {
    assert.ok(v.headerLength >= 20 && v.headerLength <= n);
    const s = all['synOptions'] as ReturnType<typeof newTcpSynOptions>;
    assert.ok(s.mss >= 0 && s.mss <= 0xffff);
    assert.ok(s.windowScale >= -1 && s.windowScale <= 14);
  }
  if (v instanceof Ipv4View) assert.ok(v.headerLength >= 20 && v.headerLength <= v.totalLength && v.totalLength <= n);
  if (v instanceof UdpView) assert.ok(v.length >= 8 && v.length <= n);
  if (v instanceof Ipv6View) assert.ok(v.totalLength <= n);
  const oo = all['optionsOffset'];
  const ol = all['optionsLength'];
  if (typeof oo === 'number' && typeof ol === 'number') {
    assert.ok(oo >= o && ol >= 0 && oo + ol <= o + n, `${name}: options ${oo}+${ol} outside ${o}+${n}`);
  }
  for (const k of ['targetAddrOffset', 'prefixOffset']) {
    const at = all[k];
    if (typeof at === 'number') assert.ok(at >= o && at + 16 <= o + n, `${name}.${k} outside the view`);
  }
  if (v instanceof RdnssView) {
    assert.ok(v.addressCount >= 1);
    for (let i = 0; i < v.addressCount; i++) assert.ok(v.addressOffset(i) >= o && v.addressOffset(i) + 16 <= o + n, 'RDNSS address outside');
  }
  return all;
}

/**
 * bind() on b[o, o+n) placed inside two buffers that differ everywhere outside the range: the
 * answer and every accessor must agree, which proves nothing is read outside the range.
 */
function bindBothWays(name: string, Cls: ViewClass, data: Uint8Array, pre: number, post: Uint8Array): void {
  const total = pre + data.length + post.length;
  const a = new Uint8Array(total);
  const z = new Uint8Array(total);
  a.fill(0x5a, 0, pre); z.fill(0xa5, 0, pre);
  a.set(data, pre); z.set(data, pre);
  a.set(post, pre + data.length);
  for (let i = 0; i < post.length; i++) z[pre + data.length + i] = ~post[i]! & 0xff;
  const va = new Cls();
  const vz = new Cls();
  const ra = va.bind(a, pre, data.length);
  const rz = vz.bind(z, pre, data.length);
  assert.equal(ra, rz, `${name}: bind() depends on bytes outside the range`);
  if (!ra) return;
  const x = checkBound(name, va, a, pre, data.length);
  const y = checkBound(name, vz, z, pre, data.length);
  assert.deepEqual(x, y, `${name}: an accessor reads outside the range`);
}

/** The receive path's walk over a frame: vnet header, Ethernet, ARP/IPv4/IPv6, L4. */
function walk(b: Uint8Array, off: number, len: number): void {
  if (len < VNET_HDR_LEN || off + len > b.length) return;
  for (const f of [vnetFlags, vnetGsoType, vnetHdrLen, vnetGsoSize, vnetCsumStart, vnetCsumOffset]) {
    const x = f(b, off);
    assert.ok(Number.isInteger(x) && x >= 0 && x <= 0xffff);
  }
  const e = new EthernetView();
  if (!e.bind(b, off + VNET_HDR_LEN, len - VNET_HDR_LEN)) return;
  checkBound('Ethernet', e, b, off + VNET_HDR_LEN, len - VNET_HDR_LEN);
  const po = e.payloadOffset, pl = e.payloadLength;
  if (e.etherType === EtherType.ARP) {
    const a = new ArpView();
    if (a.bind(b, po, pl)) checkBound('ARP', a, b, po, pl);
  } else if (e.etherType === EtherType.IPV6) {
    const v = new Ipv6View();
    if (!v.bind(b, po, pl)) return;
    checkBound('IPv6', v, b, po, pl);
    if (v.nextHeader === 58) walkIcmpv6(b, v.payloadOffset, v.payloadLength, v.srcAddrOffset, v.dstAddrOffset);
  } else if (e.etherType === EtherType.IPV4) {
    const ip = new Ipv4View();
    if (!ip.bind(b, po, pl)) return;
    checkBound('IPv4', ip, b, po, pl);
    const lo = ip.payloadOffset, ln = ip.payloadLength;
    if (ip.protocol === IpProtocol.TCP) {
      const t = new TcpView();
      if (t.bind(b, lo, ln)) checkBound('TCP', t, b, lo, ln);
    } else if (ip.protocol === IpProtocol.UDP) {
      const u = new UdpView();
      if (u.bind(b, lo, ln)) checkBound('UDP', u, b, lo, ln);
    } else if (ip.protocol === IpProtocol.ICMP) {
      const i = new IcmpView();
      if (i.bind(b, lo, ln)) checkBound('ICMP', i, b, lo, ln);
    }
  }
}

/** ICMPv6 and, for NDP, the message view, its options and the option views, as the router walks them. */
function walkIcmpv6(b: Uint8Array, o: number, n: number, src: number, dst: number): void {
  const i = new Icmpv6View();
  if (!i.bind(b, o, n)) return;
  checkBound('ICMPv6', i, b, o, n);
  assert.equal(typeof i.checksumValid(b, src, dst), 'boolean');
  const views: Record<number, [string, ViewClass]> = {
    [Icmpv6Type.ROUTER_SOLICIT]: ['RS', RouterSolicitView], [Icmpv6Type.ROUTER_ADVERT]: ['RA', RouterAdvertView],
    [Icmpv6Type.NEIGHBOR_SOLICIT]: ['NS', NeighborSolicitView], [Icmpv6Type.NEIGHBOR_ADVERT]: ['NA', NeighborAdvertView],
  };
  const vc = views[i.type];
  if (vc === undefined) return;
  const m = new vc[1]() as View & { optionsOffset: number; optionsLength: number };
  if (!m.bind(b, o, n)) return;
  checkBound(vc[0], m, b, o, n);
  walkOptions(b, m.optionsOffset, m.optionsLength);
}

/** Walk an options area: every option stays inside it; option views bind inside it or not at all. */
function walkOptions(b: Uint8Array, o: number, n: number): void {
  const r = new NdpOptionReader();
  r.reset(b, o, n);
  let walked = 0;
  while (r.next()) {
    assert.ok(r.offset >= o && r.length >= 8 && r.offset + r.length <= o + n, 'option outside the area');
    walked += r.length;
    const opt: Record<number, [string, ViewClass]> = {
      [NdpOptionType.PREFIX_INFO]: ['PrefixInfo', PrefixInfoView], [NdpOptionType.MTU]: ['MTU option', MtuOptionView],
      [NdpOptionType.RDNSS]: ['RDNSS', RdnssView],
    };
    const oc = opt[r.type];
    if (oc !== undefined) {
      const v = new oc[1]();
      if (v.bind(b, r.offset, r.length)) checkBound(oc[0], v, b, r.offset, r.length);
    }
  }
  assert.ok(walked <= n);
  const sl = r.findLinkLayerAddr(b, o, n, NdpOptionType.SOURCE_LL_ADDR);
  assert.ok(sl === -1 || (sl >= o + 2 && sl + 6 <= o + n));
}

/** RFC 4861 §4.6 read independently: true when every option has a nonzero length and fits. */
function referenceOptionsValid(b: Uint8Array): boolean {
  let i = 0;
  while (i < b.length) {
    if (i + 1 >= b.length) return false;
    const len = b[i + 1]! * 8;
    if (len === 0 || i + len > b.length) return false;
    i += len;
  }
  return true;
}

/** A mutation of a captured frame: what a hostile or broken container might send instead. */
type Mutation =
  | { kind: 'flip'; at: number[]; bit: number[] }
  | { kind: 'set'; at: number[]; value: number[] }
  | { kind: 'truncate'; to: number }
  | { kind: 'extend'; extra: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), bit: fc.array(fc.nat(7), { minLength: 8, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), value: fc.array(fc.nat(255), { minLength: 4, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('truncate' as const), to: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 64, size: 'max' }) }),
);

/** Mutations aim at the headers most of the time: that is where the length fields live. */
function hot(at: number, len: number): number {
  return at % 4 === 0 ? at % len : at % Math.min(len, 10 + 14 + 60 + 60);
}

function mutate(src: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case 'flip': {
      const b = src.slice();
      m.at.forEach((at, i) => { const p = hot(at, b.length); b[p] = b[p]! ^ (1 << m.bit[i]!); });
      return b;
    }
    case 'set': {
      const b = src.slice();
      m.at.forEach((at, i) => { b[hot(at, b.length)] = m.value[i]!; });
      return b;
    }
    case 'truncate':
      return src.slice(0, m.to % (src.length + 1));
    case 'extend': {
      const b = new Uint8Array(src.length + m.extra.length);
      b.set(src); b.set(m.extra, src.length);
      return b;
    }
  }
}

/** An independent reading of RFC 9293 §3.1 option rules, to compare parseSynOptions against. */
function referenceSynOptions(opts: Uint8Array): ReturnType<typeof newTcpSynOptions> {
  const r = newTcpSynOptions();
  let i = 0;
  for (;;) {
    if (i >= opts.length) return r;
    const kind = opts[i]!;
    if (kind === 0) return r;
    if (kind === 1) { i += 1; continue; }
    if (i + 1 >= opts.length) return r;
    const len = opts[i + 1]!;
    if (len < 2 || i + len > opts.length) return r;
    if (kind === 2 && len === 4) r.mss = (opts[i + 2]! << 8) | opts[i + 3]!;
    if (kind === 3 && len === 3) r.windowScale = opts[i + 2]! > 14 ? 14 : opts[i + 2]!;
    if (kind === 4 && len === 2) r.sackPermitted = true;
    if (kind === 8 && len === 10) r.timestamps = true;
    i += len;
  }
}

/** Option records, well-formed or not, as a SYN might carry them. */
const optionRecord: fc.Arbitrary<number[]> = fc.oneof(
  fc.constant<number[]>([1]),
  fc.constant<number[]>([0]),
  fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => [2, 4, a, b]),
  fc.nat(255).map((s) => [3, 3, s]),
  fc.constant<number[]>([4, 2]),
  fc.array(fc.nat(255), { minLength: 8, maxLength: 8 }).map((t) => [8, 10, ...t]),
  fc.tuple(fc.constantFrom(2, 3, 4, 8, 5, 30, 253), fc.nat(12)).map(([k, l]) => [k, l, ...new Array<number>(Math.max(0, l - 2)).fill(0xab)]),
  fc.array(fc.nat(255), { minLength: 1, maxLength: 3 }),
);

describe('wire fuzz', () => {
  test('TCP options: parseSynOptions equals a reference parse and never reads past the header', () => {
    // Whatever follows the header is a valid MSS + window scale + SACK-permitted, so an over-read
    // would change the answer.
    const after = [2, 4, 0x12, 0x34, 3, 3, 9, 4, 2, 1, 1, 1];
    fc.assert(fc.property(fc.array(optionRecord, { maxLength: 12, size: 'max' }), fc.nat(40), (recs, cut) => {
      const flat = recs.flat();
      const optLen = Math.min(40, flat.length, cut) & ~3;
      const opts = Uint8Array.from(flat.slice(0, optLen));
      const b = new Uint8Array(20 + optLen + after.length);
      b[12] = ((20 + optLen) / 4) << 4;
      b.set(opts, 20);
      b.set(after, 20 + optLen);
      const v = new TcpView();
      assert.equal(v.bind(b, 0, 20 + optLen), true);
      const got = newTcpSynOptions();
      v.parseSynOptions(got);
      assert.deepEqual(got, referenceSynOptions(opts));
    }), { numRuns: 2000 });
  });

  test('NDP options: the reader agrees with an independent reading of RFC 4861 §4.6 and stays in its area', () => {
    const opt = fc.oneof(
      fc.constant<number[]>([1, 1, 2, 0x54, 0x53, 0, 0, 0x64]),
      fc.constant<number[]>([5, 1, 0, 0, 0, 0, 5, 0xdc]),
      fc.tuple(fc.nat(255), fc.nat(6)).map(([t, l]) => [t, l, ...new Array<number>(Math.max(0, l * 8 - 2)).fill(0xab)]),
      fc.array(fc.nat(255), { minLength: 1, maxLength: 9 }),
    );
    fc.assert(fc.property(fc.array(opt, { maxLength: 8 }), fc.nat(8), bytes(16), (recs, pre, post) => {
      const area = Uint8Array.from(recs.flat());
      const b = new Uint8Array(pre + area.length + post.length);
      b.fill(1, 0, pre); // a valid-looking byte pattern outside, so an over-read would change answers
      b.set(area, pre);
      b.set(post, pre + area.length);
      const r = new NdpOptionReader();
      assert.equal(r.validate(b, pre, area.length), referenceOptionsValid(area));
      walkOptions(b, pre, area.length);
    }), { numRuns: 2000 });
  });

  for (const [name, Cls] of VIEWS) {
    test(`${name}: random bytes never throw and never read outside the range`, () => {
      fc.assert(fc.property(bytes(96), fc.nat(16), bytes(16),
        (data, pre, post) => bindBothWays(name, Cls, data, pre, post)), { numRuns: 400 });
    });

    test(`${name}: plausible random headers never throw and never read outside the range`, () => {
      const patch = PLAUSIBLE[name]!;
      fc.assert(fc.property(bytes(96), fc.nat(), fc.nat(16), bytes(16), (data, r, pre, post) => {
        patch(data, r);
        bindBothWays(name, Cls, data, pre, post);
      }), { numRuns: 400 });
    });

    test(`${name}: any (offset, length) on a random buffer: bind never throws; a yes stays in bounds`, () => {
      fc.assert(fc.property(bytes(80), fc.nat(100), fc.nat(100), (b, o, n) => {
        const v = new Cls();
        if (v.bind(b, o, n)) {
          assert.ok(o + n <= b.length);
          checkBound(name, v, b, o, n);
        }
      }), { numRuns: 300 });
    });
  }

  test('random frames: the whole receive walk never throws', () => {
    // Random bytes behind a header that says IPv4/ARP/IPv6 half the time, so the inner views run.
    const frame = fc.tuple(bytes(200), fc.constantFrom(0x0800, 0x0806, 0x86dd, -1),
      fc.constantFrom(0x45, 0x46, 0x4f, 0x44, 0x60, -1), fc.constantFrom(1, 6, 17, -1)).map(([b, et, vi, proto]) => {
      if (b.length >= 24 && et >= 0) { b[22] = et >> 8; b[23] = et & 0xff; }
      if (b.length >= 25 && vi >= 0) b[24] = vi;
      if (b.length >= 34 && proto >= 0) b[33] = proto;
      // An IPv6 frame carrying ICMPv6 / NDP, with a payload length that often fits.
      if (vi === 0x60 && b.length >= 66) {
        b[30] = 58;
        const pl = b.length - 64 - (b[0]! % 4);
        b[28] = pl >> 8; b[29] = pl & 0xff;
        b[64] = 128 + (b[1]! % 10);
      }
      return b;
    });
    fc.assert(fc.property(frame, (b) => walk(b, 0, b.length)), { numRuns: 1000 });
  });

  for (const fixture of FIXTURE_NAMES) {
    const big = fixture.endsWith('superframe');
    test(`mutated ${fixture}: the receive walk never throws`, () => {
      const src = loadFixture(fixture);
      walk(src, 0, src.length); // the unmutated frame itself
      fc.assert(fc.property(mutation, (m) => {
        const b = mutate(src, m);
        walk(b, 0, b.length);
      }), { numRuns: big ? 150 : 400 });
    });

    if (!big) {
      test(`mutated ${fixture}: every view, both ways, at every layer offset`, () => {
        const src = loadFixture(fixture);
        fc.assert(fc.property(mutation, fc.constantFrom(10, 24, 38, 44, 58, 64), fc.nat(8), bytes(8),
          (m, at, pre, post) => {
            const b = mutate(src, m);
            const data = b.subarray(Math.min(at, b.length));
            for (const [name, Cls] of VIEWS) bindBothWays(name, Cls, data, pre, post);
          }), { numRuns: 200 });
      });
    }
  }
});
