// Address helpers and byte access: the hot path's u32 addresses, MACs and big/little-endian fields.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseHex as h } from '../fixtures/load';
import {
  ipv4ToString, parseIpv4, readIpv4, macToString, parseMac, macEquals, macKey, isMulticastMac,
  ipv4InSubnet, prefixMask, u16, u32, setU16, setU32, u16le, setU16le,
} from '../../src/wire';

describe('bytes', () => {
  test('big-endian u16/u32 and little-endian u16 over a literal', () => {
    const b = h('de ad be ef 01');
    assert.equal(u16(b, 0), 0xdead);
    assert.equal(u32(b, 0), 0xdeadbeef, 'unsigned even with the top bit set');
    assert.equal(u32(b, 1), 0xadbeef01);
    assert.equal(u16le(b, 0), 0xadde);
  });

  test('setters write exactly their bytes', () => {
    const b = new Uint8Array(8).fill(0xee);
    setU16(b, 1, 0x1234);
    setU32(b, 3, 0xcafef00d);
    assert.deepEqual(b, h('ee 12 34 ca fe f0 0d ee'));
    setU16le(b, 0, 0xabcd);
    assert.deepEqual(b.subarray(0, 2), h('cd ab'));
  });

  test('property: set then get round-trips', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffff }), (x, y) => {
      const b = new Uint8Array(10);
      setU32(b, 1, x); setU16(b, 5, y); setU16le(b, 7, y);
      assert.equal(u32(b, 1), x);
      assert.equal(u16(b, 5), y);
      assert.equal(u16le(b, 7), y);
    }), { numRuns: 500 });
  });
});

describe('IPv4 addresses', () => {
  test('to and from dotted quads', () => {
    assert.equal(parseIpv4('10.0.2.100'), 0x0a000264);
    assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
    assert.equal(parseIpv4('0.0.0.0'), 0);
    assert.equal(ipv4ToString(0xc0000207), '192.0.2.7');
    assert.equal(readIpv4(h('0a 00 02 02'), 0), 0x0a000202);
  });

  for (const bad of ['', '10.0.2', '10.0.2.256', '010.0.2.1', '10.0.2.1.', ' 10.0.2.1', '1e1.0.0.1', '10.0.0x2.1', '::1', '10.0.2.-1']) {
    test(`parseIpv4 rejects ${JSON.stringify(bad)}`, () => assert.equal(parseIpv4(bad), null));
  }

  test('property: parseIpv4(ipv4ToString(a)) === a', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (a) => {
      assert.equal(parseIpv4(ipv4ToString(a)), a);
    }), { numRuns: 500 });
  });

  test('subnets and masks', () => {
    assert.equal(prefixMask(24), 0xffffff00);
    assert.equal(prefixMask(32), 0xffffffff);
    assert.equal(prefixMask(1), 0x80000000);
    assert.equal(prefixMask(0), 0);
    assert.equal(ipv4InSubnet(0x0a000264, 0x0a000200, 24), true);
    assert.equal(ipv4InSubnet(0x0a000364, 0x0a000200, 24), false);
    assert.equal(ipv4InSubnet(0xc0a80001, 0xc0a80000, 16), true, 'top bit set');
    assert.equal(ipv4InSubnet(0xfffffffe, 0xffffff00, 24), true);
    assert.equal(ipv4InSubnet(0x0a000202, 0x0a000202, 32), true);
    assert.equal(ipv4InSubnet(0x0a000203, 0x0a000202, 32), false);
    assert.equal(ipv4InSubnet(0xdeadbeef, 0, 0), true);
  });

  test('property: a is in (a & mask)/p and the network is the masked address', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (a, p) => {
      const net = (a & prefixMask(p)) >>> 0;
      assert.equal(ipv4InSubnet(a, net, p), true);
      if (p > 0) assert.equal(ipv4InSubnet((a ^ 0x80000000 >>> (p - 1)) >>> 0, net, p), false);
    }), { numRuns: 500 });
  });
});

describe('MAC addresses', () => {
  test('to and from text', () => {
    assert.deepEqual(parseMac('02:54:53:00:00:64'), h('02 54 53 00 00 64'));
    assert.deepEqual(parseMac('FF:ff:Ff:00:0a:B0'), h('ff ff ff 00 0a b0'));
    assert.equal(macToString(h('00 02 54 53 00 00 64'), 1), '02:54:53:00:00:64');
  });

  for (const bad of ['', '02:54:53:00:00', '02:54:53:00:00:64:01', '02-54-53-00-00-64', '2:54:53:00:00:64', '02:54:53:00:00:6g']) {
    test(`parseMac rejects ${JSON.stringify(bad)}`, () => assert.equal(parseMac(bad), null));
  }

  test('equality, multicast bit, 48-bit key', () => {
    const a = h('ff ff ff ff ff ff 33 33 00 00 00 02 02 54 53 00 00 64');
    assert.equal(isMulticastMac(a, 0), true);
    assert.equal(isMulticastMac(a, 6), true);
    assert.equal(isMulticastMac(a, 12), false);
    assert.equal(macEquals(a, 12, h('02 54 53 00 00 64'), 0), true);
    assert.equal(macEquals(a, 12, h('02 54 53 00 00 65'), 0), false);
    assert.equal(macKey(a, 0), 0xffffffffffff);
    assert.equal(macKey(a, 12), 0x025453000064);
  });

  test('property: macKey is injective and agrees with macEquals', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.uint8Array({ minLength: 6, maxLength: 6 }), (x, y) => {
      assert.equal(macKey(x, 0) === macKey(y, 0), macEquals(x, 0, y, 0));
      assert.equal(macKey(x, 0), parseInt(macToString(x).replace(/:/g, ''), 16));
    }), { numRuns: 500 });
  });
});
