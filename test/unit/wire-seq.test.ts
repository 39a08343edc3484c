// TCP sequence arithmetic (RFC 9293 §3.4, RFC 1982): 32-bit, wrapping.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { seqAdd, seqDiff, seqLt, seqLe, seqGt, seqGe, seqInWindow } from '../../src/wire';

const seq = fc.integer({ min: 0, max: 0xffffffff });
/** Distances that compare unambiguously: |d| < 2^31. */
const dist = fc.integer({ min: -0x7fffffff, max: 0x7fffffff });
const fwd = fc.integer({ min: 1, max: 0x7fffffff });

describe('sequence numbers', () => {
  test('wrap at 2^32', () => {
    assert.equal(seqAdd(0xffffffff, 1), 0);
    assert.equal(seqAdd(0xfffffff0, 0x20), 0x10);
    assert.equal(seqAdd(5, -10), 0xfffffffb);
    assert.equal(seqDiff(0x10, 0xfffffff0), 0x20);
    assert.equal(seqDiff(0xfffffff0, 0x10), -0x20);
    assert.ok(seqLt(0xfffffff0, 0x10));
    assert.ok(seqGt(0x10, 0xfffffff0));
    assert.ok(seqInWindow(0x2, 0xfffffffe, 0x10));
    assert.ok(!seqInWindow(0x10, 0xfffffffe, 0x10), 'hi is exclusive');
    assert.ok(seqInWindow(0xfffffffe, 0xfffffffe, 0x10), 'lo is inclusive');
  });

  test('2^31 apart is the ambiguous point: a - b and b - a are both negative', () => {
    assert.equal(seqDiff(0x80000000, 0), -0x80000000);
    assert.equal(seqDiff(0, 0x80000000), -0x80000000);
  });

  test('property: seqAdd stays a u32', () => {
    fc.assert(fc.property(seq, dist, (a, d) => {
      const r = seqAdd(a, d);
      assert.ok(Number.isInteger(r) && r >= 0 && r <= 0xffffffff);
    }), { numRuns: 1000 });
  });

  test('property: seqDiff(seqAdd(a, d), a) === d', () => {
    fc.assert(fc.property(seq, dist, (a, d) => {
      assert.equal(seqDiff(seqAdd(a, d), a), d);
    }), { numRuns: 1000 });
  });

  test('property: a < a + n < a + 2n for forward steps, across the wrap', () => {
    fc.assert(fc.property(seq, fwd, (a, n) => {
      const b = seqAdd(a, n);
      assert.ok(seqLt(a, b) && seqLe(a, b) && seqGt(b, a) && seqGe(b, a));
      assert.ok(!seqLt(b, a) && !seqGe(a, b));
    }), { numRuns: 1000 });
  });

  test('property: exactly one of <, =, > holds and they are antisymmetric', () => {
    fc.assert(fc.property(seq, dist, (a, d) => {
      const b = seqAdd(a, d);
      const n = Number(seqLt(a, b)) + Number(seqGt(a, b)) + Number(a === b);
      assert.equal(n, 1);
      assert.equal(seqLt(a, b), seqGt(b, a));
      assert.equal(seqLe(a, b), seqGe(b, a));
      assert.equal(seqLe(a, b), seqLt(a, b) || a === b);
    }), { numRuns: 1000 });
  });

  test('property: seqInWindow(lo + k, lo, lo + w) iff 0 <= k < w', () => {
    fc.assert(fc.property(seq, fc.integer({ min: 0, max: 0x3fffffff }), fc.integer({ min: -0x3fffffff, max: 0x3fffffff }),
      (lo, w, k) => {
        assert.equal(seqInWindow(seqAdd(lo, k), lo, seqAdd(lo, w)), k >= 0 && k < w);
      }), { numRuns: 1000 });
  });
});
