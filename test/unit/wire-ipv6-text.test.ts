// parseIpv6Into (wire/addr.ts): the allocation-free IPv6 text parser the translators use on every
// datagram from an AF_INET6 host socket (rinfo.address). Checked against the configuration parser
// (parseIpv6Address) and against Node's own URL parser on every form RFC 4291 §2.2 allows, and
// for rejecting everything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipv6IsLowZero80, parseIpv6Into } from '../../src/wire/addr';
import { parseIpv6Address } from '../../src/wire/ipv6-addr';
import { ipv6ToString } from '../../src/wire/ipv6';

function parsed(s: string): Uint8Array | null {
  const out = new Uint8Array(20).fill(0xaa);
  if (!parseIpv6Into(s, out, 2)) return null;
  assert.equal(out[0], 0xaa, 'nothing written before the offset');
  assert.equal(out[18], 0xaa, 'nothing written after the 16 bytes');
  return out.slice(2, 18);
}

/** The address as Node's WHATWG URL parser canonicalises it, as bytes. */
function viaUrl(s: string): Uint8Array {
  const host = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  const a = parseIpv6Address(host);
  assert.ok(a, host);
  return a;
}

test('parseIpv6Into: the forms of RFC 4291 §2.2', () => {
  const cases: Array<[string, string]> = [
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['1::', '00010000000000000000000000000000'],
    ['fd00::2', 'fd000000000000000000000000000002'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['2001:DB8:0:0:8:800:200C:417A', '20010db80000000000080800200c417a'],
    ['fe80::5054:ff:fe12:3456', 'fe80000000000000505400fffe123456'],
    ['::ffff:127.0.0.1', '00000000000000000000ffff7f000001'],
    ['::127.0.0.1', '0000000000000000000000007f000001'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
    ['1::8', '00010000000000000000000000000008'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
    ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
  ];
  for (const [s, hex] of cases) {
    const a = parsed(s);
    assert.ok(a, s);
    assert.equal(Buffer.from(a).toString('hex'), hex, s);
    assert.deepEqual(a, viaUrl(s), `${s} as Node's URL parser reads it`);
  }
});

test('parseIpv6Into: everything else is refused', () => {
  for (const s of ['', ':', ':::', '1:::2', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::',
    '::1%eth0', '[::1]', '::1/64', '1:2:3:4:5:6:7', ':1::2', '1::2:', '::ffff:1.2.3', '::ffff:1.2.3.4.5',
    '::ffff:256.1.1.1', '::ffff:01.2.3.4', '1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3.4:5', ' ::1', '::1 ']) {
    assert.equal(parsed(s), null, JSON.stringify(s));
  }
});

test('parseIpv6Into agrees with parseIpv6Address and round-trips ipv6ToString on random addresses', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(8), (bytes, zeros) => {
    const a = Uint8Array.from(bytes);
    a.fill(0, 16 - 2 * zeros); // runs of zero words, so "::" forms appear
    const text = ipv6ToString(a, 0);
    const b = parsed(text);
    assert.ok(b, text);
    assert.deepEqual(b, a, text);
    assert.deepEqual(parseIpv6Address(text), a, text);
  }), { numRuns: 2000 });
  fc.assert(fc.property(fc.string({ maxLength: 46 }), (s) => {
    const mine = parsed(s);
    const theirs = parseIpv6Address(s);
    assert.deepEqual(mine, theirs, JSON.stringify(s));
  }), { numRuns: 5000 });
});

test('ipv6IsLowZero80: ::, ::1, v4-mapped and v4-compatible, nothing else', () => {
  for (const s of ['::', '::1', '::ffff:127.0.0.1', '::10.0.0.1', '::ffff:0:1']) assert.ok(ipv6IsLowZero80(parseIpv6Address(s)!, 0), s);
  for (const s of ['fd00::2', '0:0:0:0:1::', '64:ff9b::1', 'fe80::1', '2001:db8::']) assert.ok(!ipv6IsLowZero80(parseIpv6Address(s)!, 0), s);
});
