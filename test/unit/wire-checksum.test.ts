// The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the pseudo-header seed.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseHex as h } from '../fixtures/load';
import {
  sum16, fold, checksum, pseudoHeaderSum4, updateChecksum16, updateChecksum32, u16, setU16, setU32, u32,
} from '../../src/wire';

const u32arb = fc.integer({ min: 0, max: 0xffffffff });

/** Reference: RFC 1071 §4.1 done word by word, no unrolling, folding at every step. */
function refChecksum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    const hi = b[off + i]!;
    const lo = i + 1 < len ? b[off + i + 1]! : 0;
    s += (hi << 8) | lo;
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return ~s & 0xffff;
}

describe('RFC 1071 checksum', () => {
  test('the numerical example of RFC 1071 §3: sum ddf2, checksum 220d', () => {
    const b = h('00 01 f2 03 f4 f5 f6 f7');
    assert.equal(sum16(b, 0, 8), 0x2ddf0);
    assert.equal(fold(sum16(b, 0, 8)), 0xddf2);
    assert.equal(checksum(b, 0, 8), 0x220d);
  });

  test('an odd trailing byte is padded with zero on the right', () => {
    assert.equal(checksum(h('00 01 f2'), 0, 3), ~(0x0001 + 0xf200) & 0xffff);
  });

  test('empty input sums to zero and checksums to ffff', () => {
    assert.equal(sum16(new Uint8Array(0), 0, 0), 0);
    assert.equal(checksum(new Uint8Array(0), 0, 0), 0xffff);
  });

  test('the IPv4 header of the captured SYN: field c3ac, verifies to 0', () => {
    const ip = h('45 00 00 3c 5e aa 40 00 40 06 c3 ac 0a 00 02 64 0a 00 02 02');
    assert.equal(checksum(ip, 0, 20), 0);
    const zeroed = ip.slice();
    setU16(zeroed, 10, 0);
    assert.equal(checksum(zeroed, 0, 20), 0xc3ac);
  });

  test('initial value carries a pseudo-header sum', () => {
    const b = h('12 34 56 78');
    assert.equal(checksum(b, 0, 4, 0x1111), ~fold(0x1234 + 0x5678 + 0x1111) & 0xffff);
  });

  test('fold reduces sums far above 2^32', () => {
    assert.equal(fold(0x1_0000_0000), 0x0001);
    assert.equal(fold(0xffff_ffff_ff), fold(0xffff + 0xffff + 0xffff + 0xff));
    assert.equal(fold(0x1fffe), 0xffff);
  });

  test('property: unrolled sum16 at any offset/length equals the word-by-word reference', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 300, size: 'max' }), fc.nat(), fc.nat(), (b, x, y) => {
      const off = b.length === 0 ? 0 : x % (b.length + 1);
      const len = (b.length - off) === 0 ? 0 : y % (b.length - off + 1);
      assert.equal(checksum(b, off, len), refChecksum(b, off, len));
    }), { numRuns: 300 });
  });

  test('property: a buffer with its checksum inserted verifies to 0', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 2, maxLength: 200, size: 'max' }), fc.nat(), (b, x) => {
      const at = (x % (b.length >> 1)) * 2;
      setU16(b, at, 0);
      setU16(b, at, checksum(b, 0, b.length));
      assert.equal(checksum(b, 0, b.length), 0);
    }), { numRuns: 300 });
  });

  test('property: fold keeps the value modulo 0xffff and fits 16 bits', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (s) => {
      const f = fold(s);
      assert.ok(f >= 1 && f <= 0xffff);
      assert.equal(f % 0xffff, s % 0xffff);
    }), { numRuns: 500 });
  });
});

describe('pseudo-header seed (what NEEDS_CSUM frames carry)', () => {
  test('the captured SYN: folded, not inverted, sum of 10.0.2.100 -> 10.0.2.2, TCP, 40 bytes = 1894', () => {
    assert.equal(fold(pseudoHeaderSum4(0x0a000264, 0x0a000202, 6, 40)), 0x1894);
  });

  test('seed + segment sum equals the RFC 9293 checksum over a materialised pseudo-header', () => {
    fc.assert(fc.property(u32arb, u32arb, fc.uint8Array({ minLength: 20, maxLength: 120, size: 'max' }), (src, dst, seg) => {
      const pseudo = new Uint8Array(12 + seg.length);
      setU32(pseudo, 0, src); setU32(pseudo, 4, dst);
      pseudo[9] = 6; setU16(pseudo, 10, seg.length);
      pseudo.set(seg, 12);
      assert.equal(checksum(seg, 0, seg.length, pseudoHeaderSum4(src, dst, 6, seg.length)),
        checksum(pseudo, 0, pseudo.length));
    }), { numRuns: 200 });
  });
});

describe('RFC 1624 incremental update', () => {
  // Every header tapswitch rewrites has a non-zero word that is not being rewritten (IPv4's
  // version/IHL, a TCP/UDP port), so the data never becomes all zero; see the boundary test.
  const header = fc.uint8Array({ minLength: 4, maxLength: 64, size: 'max' }).map((b) => {
    const even = b.length & ~1;
    const out = b.slice(0, even);
    out[0] = 0x45;
    return out;
  });

  test('property: 16-bit field change equals a full recompute', () => {
    fc.assert(fc.property(header, fc.nat(), fc.integer({ min: 0, max: 0xffff }), (b, x, now) => {
      const at = 2 + (x % ((b.length - 2) >> 1)) * 2;
      const before = checksum(b, 0, b.length);
      const old = u16(b, at);
      setU16(b, at, now);
      assert.equal(updateChecksum16(before, old, now), checksum(b, 0, b.length));
    }), { numRuns: 1000 });
  });

  test('property: 32-bit field change (an address) equals a full recompute', () => {
    fc.assert(fc.property(header.filter((b) => b.length >= 6), fc.nat(), u32arb, (b, x, now) => {
      const at = 2 + (x % ((b.length - 4) >> 1)) * 2;
      const before = checksum(b, 0, b.length);
      const old = u32(b, at);
      setU32(b, at, now);
      assert.equal(updateChecksum32(before, old, now), checksum(b, 0, b.length));
    }), { numRuns: 1000 });
  });

  test('property: chained updates (rewrite src, dst, port) equal one recompute', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), u32arb, u32arb, fc.integer({ min: 0, max: 0xffff }),
      (b, src, dst, port) => {
        b[0] = 0x45;
        setU16(b, 10, 0);
        let c = checksum(b, 0, 20);
        c = updateChecksum32(c, u32(b, 12), src); setU32(b, 12, src);
        c = updateChecksum32(c, u32(b, 16), dst); setU32(b, 16, dst);
        c = updateChecksum16(c, u16(b, 4), port); setU16(b, 4, port);
        assert.equal(c, checksum(b, 0, 20));
      }), { numRuns: 500 });
  });

  test('NAT rewrite of the captured SYN IPv4 header: 10.0.2.100 -> 192.0.2.7', () => {
    const ip = h('45 00 00 3c 5e aa 40 00 40 06 c3 ac 0a 00 02 64 0a 00 02 02');
    const c = updateChecksum32(u16(ip, 10), u32(ip, 12), 0xc0000207);
    setU32(ip, 12, 0xc0000207);
    setU16(ip, 10, c);
    assert.equal(checksum(ip, 0, 20), 0);
  });

  test('unchanged field leaves a non-zero checksum unchanged', () => {
    assert.equal(updateChecksum16(0x1234, 0xabcd, 0xabcd), 0x1234);
  });

  test('boundary: data that becomes all zero gives 0000 where a recompute gives ffff (both mean zero)', () => {
    // RFC 1624 §3: one's complement has two zeros. A full recompute of all-zero data gives
    // ~(+0) = ffff; eqn. 3 gives ~(-0) = 0000. Receivers accept either; real headers never get here.
    const b = h('00 00 55 55');
    const before = checksum(b, 0, 4);
    setU16(b, 2, 0);
    assert.equal(checksum(b, 0, 4), 0xffff);
    assert.equal(updateChecksum16(before, 0x5555, 0), 0x0000);
  });
});
