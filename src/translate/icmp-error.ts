// ICMP errors toward the guest (RFC 792, with the RFC 1122 3.2.2 / RFC 1812 4.3.2.7 rules about
// when not to send one).
//
// Theory of operation
// -------------------
// When a translator cannot deliver a guest's packet the way a real network would fail it (the
// gateway's host loopback is disabled, the host has no route, a port is closed), the guest should
// see the same error its kernel would see on a real link: an ICMP Destination Unreachable that
// quotes the offending IP header plus the first 8 bytes of its payload. The guest's kernel matches
// the quote against its sockets (addresses, protocol, ports) and reports ENETUNREACH /
// EHOSTUNREACH / ECONNREFUSED to the application.
//
// The message is built in one module-level buffer (the sink's send() is synchronous, so one
// buffer serves every caller on this thread) and is never larger than
// vnet 10 + Ethernet 14 + IPv4 20 + ICMP 8 + quoted header (<= 60) + 8 = 120 bytes.
//
// Never answered with an error (RFC 1122 3.2.2): ICMP error messages themselves, non-first
// fragments, packets whose source is not a single host (0.0.0.0, broadcast, multicast, loopback),
// and packets to a multicast/broadcast destination.
import { u16, u32 } from '../wire/bytes';
import { emitEthernet, EtherType, ETH_HDR_LEN } from '../wire/ethernet';
import { emitIcmpError, finishIcmpChecksum, ICMP_HDR_LEN, IcmpType, IcmpUnreachCode } from '../wire/icmp';
import { emitIpv4Header, IpProtocol, IPV4_HDR_LEN } from '../wire/ipv4';
import { emitVnetNone, VNET_HDR_LEN } from '../wire/vnet';
import { QUOTE_MAX, type SendRing } from './host-dgram';
import type { GuestSink } from './types';

/** Bytes of the offending packet's payload quoted after its IP header (RFC 792: 64 bits). */
export const ICMP_QUOTE_PAYLOAD = 8;
const MAX_IP_HDR = 60;
const IP_OFF = VNET_HDR_LEN + ETH_HDR_LEN;
const ICMP_OFF = IP_OFF + IPV4_HDR_LEN;
const QUOTE_OFF = ICMP_OFF + ICMP_HDR_LEN;
/** The largest error this module builds. */
export const ICMP_ERROR_MAX_FRAME = QUOTE_OFF + MAX_IP_HDR + ICMP_QUOTE_PAYLOAD;

const out = new Uint8Array(ICMP_ERROR_MAX_FRAME);
const parts: Uint8Array[] = [out];
let ident = 0;

/** TTL of the errors we originate (Linux's default). */
const TTL = 64;

/** Why an error was not sent: for the caller's counters. */
export const IcmpErrorResult = {
  SENT: 0,
  /** Not allowed to answer this packet with an error (RFC 1122 3.2.2); not a fault. */
  SUPPRESSED: 1,
  /** The offending packet is too short to quote or is not IPv4. */
  MALFORMED: 2,
  /** The guest's MAC is not known yet (the router is resolving it). */
  NO_MAC: 3,
  /** The sink dropped the frame. */
  SINK_DROP: 4,
} as const;
export type IcmpErrorResult = (typeof IcmpErrorResult)[keyof typeof IcmpErrorResult];

function isSingleHost(a: number): boolean {
  const first = a >>> 24;
  // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 reserved + limited broadcast.
  return first !== 0 && first !== 127 && first < 224;
}

/** A host send's error only says its socket was closed under it (the flow is gone): nothing to answer. */
export function sendAbandoned(code: string | undefined): boolean {
  return code === 'ECANCELED' || code === 'ERR_SOCKET_DGRAM_NOT_RUNNING';
}

/**
 * A translator's host send failed locally (SendRing's `failed` callback, entry `i`): answer the
 * guest with what its kernel would have heard on a real link, quoting the copy the ring kept. No
 * route and "not permitted" come from the gateway, as from a router; ECONNREFUSED (only when
 * `withPorts`: the protocol has ports) is port unreachable from the destination. Returns the
 * IcmpErrorResult, or -1 when the error has no ICMP equivalent (the caller logs it).
 */
export function answerSendFailure(sink: GuestSink, gateway: number, code: string | undefined, withPorts: boolean,
  ring: SendRing, i: number): IcmpErrorResult | -1 {
  let icmp: number;
  let from = gateway;
  switch (code) {
    case 'ENETUNREACH': icmp = IcmpUnreachCode.NET; break;
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN': icmp = IcmpUnreachCode.HOST; break;
    case 'ECONNREFUSED':
      if (!withPorts) return -1;
      icmp = IcmpUnreachCode.PORT;
      from = ring.dst[i]!;
      break;
    case 'EACCES':
    case 'EPERM': icmp = IcmpUnreachCode.ADMIN_PROHIBITED; break;
    default: return -1;
  }
  return sendIcmpUnreachable(sink, icmp, from, ring.quote, i * QUOTE_MAX, ring.quoteLen[i]!);
}

/**
 * Send ICMP Destination Unreachable (type 3) with `code` (see IcmpUnreachCode) to the sender of
 * the IPv4 packet at buf[ipOff, ipOff+ipLen), from address `from` (u32; usually the gateway, or
 * the unreachable destination itself for a port unreachable). `nextHopMtu` fills the field for
 * code FRAG_NEEDED (RFC 1191). Never throws; the result says what happened.
 */
export function sendIcmpUnreachable(sink: GuestSink, code: number, from: number,
  buf: Uint8Array, ipOff: number, ipLen: number, nextHopMtu = 0): IcmpErrorResult {
  return sendIcmpError(sink, IcmpType.DEST_UNREACHABLE, code, from, buf, ipOff, ipLen,
    code === IcmpUnreachCode.FRAG_NEEDED ? nextHopMtu & 0xffff : 0);
}

/**
 * Any ICMP error (type/code/rest-of-header) quoting the packet at buf[ipOff, ipOff+ipLen).
 * Exposed for Time Exceeded and friends; same rules as sendIcmpUnreachable.
 */
export function sendIcmpError(sink: GuestSink, type: number, code: number, from: number,
  buf: Uint8Array, ipOff: number, ipLen: number, rest = 0): IcmpErrorResult {
  if (ipOff < 0 || ipLen < IPV4_HDR_LEN || ipOff + ipLen > buf.length) return IcmpErrorResult.MALFORMED;
  const vi = buf[ipOff]!;
  const hl = (vi & 0x0f) * 4;
  if (vi >> 4 !== 4 || hl < IPV4_HDR_LEN || hl > ipLen) return IcmpErrorResult.MALFORMED;
  const src = u32(buf, ipOff + 12);
  const dst = u32(buf, ipOff + 16);
  if (!isSingleHost(src) || (dst >>> 28) >= 14 || dst === 0xffffffff) return IcmpErrorResult.SUPPRESSED;
  // Only the first fragment of a datagram may be answered.
  if ((u16(buf, ipOff + 6) & 0x1fff) !== 0) return IcmpErrorResult.SUPPRESSED;
  const protocol = buf[ipOff + 9]!;
  if (protocol === IpProtocol.ICMP) {
    // Never an error about an error: only echo/timestamp/info requests and replies may be.
    if (ipLen < hl + 1) return IcmpErrorResult.MALFORMED;
    const t = buf[ipOff + hl]!;
    if (t !== IcmpType.ECHO_REQUEST && t !== IcmpType.ECHO_REPLY && t !== 13 && t !== 14 &&
      t !== 15 && t !== 16) return IcmpErrorResult.SUPPRESSED;
  }
  const mac = sink.macFor(src);
  if (mac === null) return IcmpErrorResult.NO_MAC;

  // The quote: the offending header as received, plus up to 8 bytes of what followed it.
  const quoteLen = hl + Math.min(ICMP_QUOTE_PAYLOAD, ipLen - hl);
  const icmpLen = ICMP_HDR_LEN + quoteLen;
  emitVnetNone(out, 0);
  emitEthernet(out, VNET_HDR_LEN, mac, sink.gatewayMac, EtherType.IPV4);
  ident = (ident + 1) & 0xffff;
  emitIpv4Header(out, IP_OFF, IPV4_HDR_LEN + icmpLen, ident, TTL, IpProtocol.ICMP, from, src, false);
  emitIcmpError(out, ICMP_OFF, type, code, rest);
  out.set(buf.subarray(ipOff, ipOff + quoteLen), QUOTE_OFF);
  finishIcmpChecksum(out, ICMP_OFF, icmpLen);
  const frameLen = QUOTE_OFF + quoteLen;
  // The sink takes parts; a view of exactly this frame is needed (sizes vary with the quote).
  parts[0] = out.subarray(0, frameLen);
  return sink.send(parts) ? IcmpErrorResult.SENT : IcmpErrorResult.SINK_DROP;
}
