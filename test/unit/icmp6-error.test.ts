// ICMPv6 Destination Unreachable toward the guest (translate/icmp6-error.ts): the message the
// guest's kernel must accept (RFC 4443 §3.1 layout, pseudo-header checksum, quote bounded by the
// 1280-byte minimum MTU) and the cases RFC 4443 §2.4(e) forbids answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, pseudoHeaderSum6 } from '../../src/wire/checksum';
import { IcmpUnreachCode } from '../../src/wire/icmp';
import { icmp6Code, sendIcmp6Unreachable } from '../../src/translate/icmp6-error';
import { IcmpErrorResult } from '../../src/translate/icmp-error';
import type { GuestSink } from '../../src/translate/types';
import { GATEWAY6, GUEST6, GUEST_MAC, GW_MAC, echo6Frame, ip6, parse6, udp6Frame } from '../helpers/translator-harness';

function sink(knows = true): GuestSink & { sent: Uint8Array[] } {
  const sent: Uint8Array[] = [];
  return {
    sent,
    gatewayMac: GW_MAC,
    macFor: () => null,
    macFor6: (b, o) => (knows && GUEST6.every((x, i) => b[o + i] === x) ? GUEST_MAC : null),
    send: (parts) => { sent.push(Uint8Array.from(Buffer.concat(parts.map((p) => Buffer.from(p))))); return true; },
    offloads: true,
  };
}

test('icmp6Code maps the translators\' ICMPv4 codes to what Linux turns into the same errno', () => {
  assert.equal(icmp6Code(IcmpUnreachCode.NET), 0, 'no route -> ENETUNREACH');
  assert.equal(icmp6Code(IcmpUnreachCode.HOST), 3, 'address unreachable -> EHOSTUNREACH');
  assert.equal(icmp6Code(IcmpUnreachCode.PORT), 4, 'port unreachable -> ECONNREFUSED');
  assert.equal(icmp6Code(IcmpUnreachCode.ADMIN_PROHIBITED), 1, 'administratively prohibited -> EACCES');
});

test('a Destination Unreachable the guest accepts: from the given address, checksum over the pseudo-header', () => {
  const s = sink();
  const pkt = udp6Frame({ dst: ip6('2001:db8::7'), sport: 1000, dport: 2000, payload: new Uint8Array(30) });
  assert.equal(sendIcmp6Unreachable(s, 4, GATEWAY6, 0, pkt, 24, pkt.length - 24, 1500), IcmpErrorResult.SENT);
  const f = s.sent[0]!;
  const p = parse6(f);
  assert.deepEqual(p.ethDst, GUEST_MAC);
  assert.equal(p.etherType, 0x86dd);
  assert.equal(p.nextHeader, 58);
  assert.deepEqual(p.src, GATEWAY6);
  assert.deepEqual(p.dst, GUEST6);
  assert.equal(f[p.l4], 1);
  assert.equal(f[p.l4 + 1], 4);
  assert.deepEqual([...f.subarray(p.l4 + 4, p.l4 + 8)], [0, 0, 0, 0], 'unused field zero');
  assert.equal(checksum(f, p.l4, p.l4Len, pseudoHeaderSum6(f, 32, f, 48, 58, p.l4Len)), 0);
  assert.deepEqual(f.subarray(p.l4 + 8), pkt.subarray(24), 'the whole packet quoted');
});

test('the quote stops where the error would exceed 1280 bytes (RFC 4443 §2.4(c)), whatever the MTU', () => {
  for (const mtu of [1280, 1500, 9000]) {
    const s = sink();
    const big = udp6Frame({ dst: ip6('2001:db8::7'), sport: 1, dport: 2, payload: new Uint8Array(4000) });
    assert.equal(sendIcmp6Unreachable(s, 0, GATEWAY6, 0, big, 24, big.length - 24, mtu), IcmpErrorResult.SENT);
    const p = parse6(s.sent[0]!);
    assert.equal(40 + p.payloadLength, 1280, `MTU ${mtu}`);
  }
});

test('never an error about an ICMPv6 error, a multicast destination, or from a source that is not one host', () => {
  const s = sink();
  const err = echo6Frame(ip6('2001:db8::7'), 1, 1, new Uint8Array(8), GUEST6, 1); // type 1: an error itself
  assert.equal(sendIcmp6Unreachable(s, 0, GATEWAY6, 0, err, 24, err.length - 24, 1500), IcmpErrorResult.SUPPRESSED);
  const echo = echo6Frame(ip6('2001:db8::7'), 1, 1, new Uint8Array(8));
  assert.equal(sendIcmp6Unreachable(s, 0, GATEWAY6, 0, echo, 24, echo.length - 24, 1500), IcmpErrorResult.SENT, 'echo may be answered');
  for (const [src, dst] of [[GUEST6, 'ff02::1'], ['::', '2001:db8::7'], ['ff02::1', '2001:db8::7'], ['::1', '2001:db8::7']] as const) {
    const f = udp6Frame({ src: typeof src === 'string' ? ip6(src) : src, dst: ip6(dst), sport: 1, dport: 2, payload: new Uint8Array(4) });
    assert.equal(sendIcmp6Unreachable(s, 0, GATEWAY6, 0, f, 24, f.length - 24, 1500), IcmpErrorResult.SUPPRESSED, `${String(src)} -> ${dst}`);
  }
  assert.equal(s.sent.length, 1);
  const short = new Uint8Array(30);
  assert.equal(sendIcmp6Unreachable(s, 0, GATEWAY6, 0, short, 0, 30, 1500), IcmpErrorResult.MALFORMED);
  const v4 = Uint8Array.from(echo); v4[24] = 0x45;
  assert.equal(sendIcmp6Unreachable(s, 0, GATEWAY6, 0, v4, 24, v4.length - 24, 1500), IcmpErrorResult.MALFORMED);
  const unknown = sink(false);
  assert.equal(sendIcmp6Unreachable(unknown, 0, GATEWAY6, 0, echo, 24, echo.length - 24, 1500), IcmpErrorResult.NO_MAC);
});
