// ICMPv6 errors toward the guest (RFC 4443): the IPv6 twin of icmp-error.ts.
//
// Theory of operation
// -------------------
// When a translator cannot deliver a guest's IPv6 packet the way a real network would fail it
// (host loopback disabled, no route on the host, a closed port), the guest gets an ICMPv6
// Destination Unreachable (type 1) quoting its packet, and its kernel reports the matching errno
// to the socket (Linux icmpv6_err_convert: code 0 -> ENETUNREACH, 1 -> EACCES, 3 -> EHOSTUNREACH,
// 4 -> ECONNREFUSED). The translators think in the IPv4 codes (IcmpUnreachCode); icmp6Code()
// maps them, so failure handling stays one table.
//
// The quote is as much of the offending packet as fits in the minimum IPv6 MTU (RFC 4443 §2.4(c):
// the error must not exceed 1280 bytes) and in the link MTU. Unlike ICMPv4, the checksum covers a
// pseudo-header (RFC 4443 §2.3), and ICMPv6 is never checksum-offloaded: it is summed here.
//
// Never answered with an error (RFC 4443 §2.4(e)): ICMPv6 error messages (types < 128), packets
// to a multicast destination, and packets whose source is not one unicast host (unspecified,
// loopback, multicast).
//
// One module-level buffer serves every caller on this thread (the sink's send() is synchronous).
import { ipv6IsLowZero80 } from '../wire/addr';
import { setU16 } from '../wire/bytes';
import { checksum, pseudoHeaderSum6 } from '../wire/checksum';
import { emitEthernet, EtherType, ETH_HDR_LEN } from '../wire/ethernet';
import { IcmpUnreachCode } from '../wire/icmp';
import { ICMPV6_NEXT_HEADER, Icmpv6Type, Icmpv6UnreachCode as Icmp6UnreachCode } from '../wire/icmpv6';
import { IPV6_HDR_LEN } from '../wire/ipv6';
import { isMulticast6 } from '../wire/ipv6-addr';
import { emitVnetNone, VNET_HDR_LEN } from '../wire/vnet';
import { QUOTE_MAX, type SendRing } from './host-dgram';
import { IcmpErrorResult } from './icmp-error';
import type { GuestSink } from './types';

const ICMP6_HDR_LEN = 8;
/** RFC 8200 §5: the minimum link MTU; an error must fit in it. */
const MIN_MTU = 1280;
const IP_OFF = VNET_HDR_LEN + ETH_HDR_LEN;
const ICMP_OFF = IP_OFF + IPV6_HDR_LEN;
const QUOTE_OFF = ICMP_OFF + ICMP6_HDR_LEN;
const HOP_LIMIT = 64;

const out = new Uint8Array(QUOTE_OFF + MIN_MTU - IPV6_HDR_LEN - ICMP6_HDR_LEN);
const parts: Uint8Array[] = [out];

/** The ICMPv6 Destination Unreachable code for an ICMPv4 one (IcmpUnreachCode). */
export function icmp6Code(v4code: number): number {
  switch (v4code) {
    case IcmpUnreachCode.NET: return Icmp6UnreachCode.NO_ROUTE;
    case IcmpUnreachCode.PORT: return Icmp6UnreachCode.PORT;
    case IcmpUnreachCode.ADMIN_PROHIBITED:
    case IcmpUnreachCode.NET_PROHIBITED:
    case IcmpUnreachCode.HOST_PROHIBITED: return Icmp6UnreachCode.ADMIN_PROHIBITED;
    default: return Icmp6UnreachCode.ADDRESS;
  }
}

/**
 * Send ICMPv6 Destination Unreachable `code` (Icmp6UnreachCode) from the 16-byte address at
 * from[fromOff] to the sender of the IPv6 packet at buf[ipOff, ipOff+ipLen). `guestMac` when the
 * caller knows it (a TCP flow), else the sink resolves it. `mtu` bounds the quote. Never throws.
 */
export function sendIcmp6Unreachable(sink: GuestSink, code: number, from: Uint8Array, fromOff: number,
  buf: Uint8Array, ipOff: number, ipLen: number, mtu: number, guestMac: Uint8Array | null = null): IcmpErrorResult {
  if (ipOff < 0 || ipLen < IPV6_HDR_LEN || ipOff + ipLen > buf.length || buf[ipOff]! >> 4 !== 6) {
    return IcmpErrorResult.MALFORMED;
  }
  const src = ipOff + 8;
  const dst = ipOff + 24;
  if (isMulticast6(buf, src) || ipv6IsLowZero80(buf, src) || isMulticast6(buf, dst)) {
    return IcmpErrorResult.SUPPRESSED;
  }
  if (buf[ipOff + 6] === ICMPV6_NEXT_HEADER) {
    // Never an error about an error (informational messages are types 128..255).
    if (ipLen < IPV6_HDR_LEN + 1) return IcmpErrorResult.MALFORMED;
    if (buf[ipOff + IPV6_HDR_LEN]! < 128) return IcmpErrorResult.SUPPRESSED;
  }
  const mac = guestMac ?? sink.macFor6(buf, src);
  if (mac === null) return IcmpErrorResult.NO_MAC;

  const room = Math.min(MIN_MTU, Math.max(mtu, MIN_MTU)) - IPV6_HDR_LEN - ICMP6_HDR_LEN;
  const quoteLen = Math.min(ipLen, room);
  const icmpLen = ICMP6_HDR_LEN + quoteLen;
  emitVnetNone(out, 0);
  emitEthernet(out, VNET_HDR_LEN, mac, sink.gatewayMac, EtherType.IPV6);
  // Fixed header by hand: the addresses are copied from where they lie (no subarray views).
  out[IP_OFF] = 0x60; out[IP_OFF + 1] = 0; out[IP_OFF + 2] = 0; out[IP_OFF + 3] = 0;
  setU16(out, IP_OFF + 4, icmpLen);
  out[IP_OFF + 6] = ICMPV6_NEXT_HEADER;
  out[IP_OFF + 7] = HOP_LIMIT;
  for (let i = 0; i < 16; i++) { out[IP_OFF + 8 + i] = from[fromOff + i]!; out[IP_OFF + 24 + i] = buf[src + i]!; }
  out[ICMP_OFF] = Icmpv6Type.DEST_UNREACHABLE;
  out[ICMP_OFF + 1] = code;
  setU16(out, ICMP_OFF + 2, 0);
  out.fill(0, ICMP_OFF + 4, ICMP_OFF + 8);
  for (let i = 0; i < quoteLen; i++) out[QUOTE_OFF + i] = buf[ipOff + i]!;
  const seed = pseudoHeaderSum6(out, IP_OFF + 8, out, IP_OFF + 24, ICMPV6_NEXT_HEADER, icmpLen);
  setU16(out, ICMP_OFF + 2, checksum(out, ICMP_OFF, icmpLen, seed));
  parts[0] = out.subarray(0, QUOTE_OFF + quoteLen);
  return sink.send(parts) ? IcmpErrorResult.SENT : IcmpErrorResult.SINK_DROP;
}

/**
 * answerSendFailure() for an IPv6 entry of a SendRing (its quote starts with an IPv6 header):
 * no route / not permitted come from the gateway (16 bytes at gateway[0]), ECONNREFUSED (only
 * `withPorts`) is port unreachable from the destination itself (read back from the quote).
 */
export function answerSendFailure6(sink: GuestSink, gateway: Uint8Array, mtu: number, code: string | undefined,
  withPorts: boolean, ring: SendRing, i: number): IcmpErrorResult | -1 {
  const q = ring.quote;
  const base = i * QUOTE_MAX;
  let icmp: number;
  let from = gateway;
  let fromOff = 0;
  switch (code) {
    case 'ENETUNREACH': icmp = Icmp6UnreachCode.NO_ROUTE; break;
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN': icmp = Icmp6UnreachCode.ADDRESS; break;
    case 'ECONNREFUSED':
      if (!withPorts) return -1;
      icmp = Icmp6UnreachCode.PORT;
      from = q;
      fromOff = base + 24;
      break;
    case 'EACCES':
    case 'EPERM': icmp = Icmp6UnreachCode.ADMIN_PROHIBITED; break;
    default: return -1;
  }
  return sendIcmp6Unreachable(sink, icmp, from, fromOff, q, base, ring.quoteLen[i]!, mtu);
}

/** Is the packet quoted by ring entry i IPv6? */
export function ringEntryIsIpv6(ring: SendRing, i: number): boolean {
  return ring.quote[i * QUOTE_MAX]! >> 4 === 6;
}
