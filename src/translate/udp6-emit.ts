// UDP datagrams to the guest over IPv6 (the IPv6 twin of UdpTranslator.emitToGuest).
//
// Theory of operation
// -------------------
// A datagram that fits the MTU is one frame: [vnet + Ethernet + IPv6 + UDP headers, payload], the
// payload a view of the host's Buffer (no copy). With the TAP's offloads the kernel finishes the
// checksum (NEEDS_CSUM, csum_start 54 = Ethernet + IPv6, csum_offset 6, the folded IPv6
// pseudo-header sum in the field); without them it is computed here. IPv6 has no optional UDP
// checksum: a computed zero is sent as 0xffff (RFC 8200 §8.1).
//
// A larger one (a DNS answer with EDNS0 at MTU 1500, say) is fragmented by us as its source host
// (RFC 8200 §4.5): each piece carries a Fragment header (next header 44) and a multiple of 8 bytes
// of the UDP datagram, all pieces share a 32-bit Identification, and the checksum, which cannot be
// offloaded across fragments, is computed in software. At most `maxFragments` pieces, else the
// datagram is dropped (the caller counts it).
//
// Headers live in two preallocated buffers; addresses are copied from wherever they lie, so a
// datagram costs no allocation of ours.
import { setU16, setU32 } from '../wire/bytes';
import { fold, pseudoHeaderSum6, sum16 } from '../wire/checksum';
import { emitEthernet, EtherType, ETH_HDR_LEN } from '../wire/ethernet';
import { IPV6_HDR_LEN } from '../wire/ipv6';
import { emitUdpHeader, setUdpChecksum, UDP_HDR_LEN } from '../wire/udp';
import { emitVnetHeader, emitVnetNone, GsoType, VnetFlags, VNET_HDR_LEN } from '../wire/vnet';
import type { GuestSink } from './types';

/** What emit() did, for the caller's counters. */
export const Udp6EmitResult = { SENT: 0, FRAGMENTED: 1, NO_MAC: 2, TOO_BIG: 3, SINK_DROP: 4 } as const;
export type Udp6EmitResult = (typeof Udp6EmitResult)[keyof typeof Udp6EmitResult];

const IP_OFF = VNET_HDR_LEN + ETH_HDR_LEN; // 24
const UDP_OFF = IP_OFF + IPV6_HDR_LEN; // 64
const HDRS_LEN = UDP_OFF + UDP_HDR_LEN; // 72
const FRAG_HDR_LEN = 8;
const FRAG_OFF = IP_OFF + IPV6_HDR_LEN; // 64
const FRAG_UDP_OFF = FRAG_OFF + FRAG_HDR_LEN; // 72
const NH_UDP = 17;
const NH_FRAGMENT = 44;
const HOP_LIMIT = 64;
const EMPTY = new Uint8Array(0);

/** A fixed IPv6 header at b[o] from the 16-byte addresses at src[sOff] / dst[dOff]. */
export function writeIpv6Header(b: Uint8Array, o: number, payloadLength: number, nextHeader: number,
  src: Uint8Array, sOff: number, dst: Uint8Array, dOff: number): void {
  b[o] = 0x60; b[o + 1] = 0; b[o + 2] = 0; b[o + 3] = 0;
  setU16(b, o + 4, payloadLength);
  b[o + 6] = nextHeader;
  b[o + 7] = HOP_LIMIT;
  for (let i = 0; i < 16; i++) { b[o + 8 + i] = src[sOff + i]!; b[o + 24 + i] = dst[dOff + i]!; }
}

export class Udp6Emitter {
  private readonly hdr = new Uint8Array(HDRS_LEN);
  private readonly frag = new Uint8Array(FRAG_UDP_OFF + UDP_HDR_LEN);
  private readonly fragFirst = this.frag.subarray(0, FRAG_UDP_OFF + UDP_HDR_LEN);
  private readonly fragRest = this.frag.subarray(0, FRAG_UDP_OFF);
  private readonly parts: Uint8Array[] = [this.hdr, EMPTY];
  private ident = 0;

  constructor(private readonly sink: GuestSink, private readonly mtu: number, private readonly maxFragments: number) {}

  /** Send `payload` from [src]:sport to [dst]:dport (16-byte addresses at src[sOff], dst[dOff]). */
  emit(dst: Uint8Array, dOff: number, dport: number, src: Uint8Array, sOff: number, sport: number,
    payload: Uint8Array): Udp6EmitResult {
    const sink = this.sink;
    const mac = sink.macFor6(dst, dOff);
    if (mac === null) return Udp6EmitResult.NO_MAC;
    const udpLen = UDP_HDR_LEN + payload.length;
    if (udpLen > 0xffff) return Udp6EmitResult.TOO_BIG;
    const h = this.hdr;
    emitEthernet(h, VNET_HDR_LEN, mac, sink.gatewayMac, EtherType.IPV6);
    emitUdpHeader(h, UDP_OFF, sport, dport, udpLen);
    const pseudo = pseudoHeaderSum6(src, sOff, dst, dOff, NH_UDP, udpLen);
    const parts = this.parts;

    if (IPV6_HDR_LEN + udpLen <= this.mtu) {
      writeIpv6Header(h, IP_OFF, udpLen, NH_UDP, src, sOff, dst, dOff);
      if (sink.offloads) {
        emitVnetHeader(h, 0, VnetFlags.NEEDS_CSUM, GsoType.NONE, HDRS_LEN - VNET_HDR_LEN, 0,
          ETH_HDR_LEN + IPV6_HDR_LEN, 6);
        setUdpChecksum(h, UDP_OFF, fold(pseudo));
      } else {
        emitVnetNone(h, 0);
        setUdpChecksum(h, UDP_OFF, this.fullChecksum(pseudo, payload));
      }
      parts[0] = h;
      parts[1] = payload;
      const ok = sink.send(parts);
      parts[1] = EMPTY; // do not keep the host's Buffer alive
      return ok ? Udp6EmitResult.SENT : Udp6EmitResult.SINK_DROP;
    }

    const room = (this.mtu - IPV6_HDR_LEN - FRAG_HDR_LEN) & ~7;
    if (room < 8) return Udp6EmitResult.TOO_BIG;
    const pieces = Math.ceil(udpLen / room);
    if (pieces > this.maxFragments) return Udp6EmitResult.TOO_BIG;
    setUdpChecksum(h, UDP_OFF, this.fullChecksum(pseudo, payload));
    const f = this.frag;
    emitVnetNone(f, 0);
    for (let i = 0; i < ETH_HDR_LEN; i++) f[VNET_HDR_LEN + i] = h[VNET_HDR_LEN + i]!;
    for (let i = 0; i < UDP_HDR_LEN; i++) f[FRAG_UDP_OFF + i] = h[UDP_OFF + i]!;
    this.ident = (this.ident + 1) >>> 0;
    let ok = true;
    for (let k = 0; k < pieces; k++) {
      const start = k * room;
      const end = Math.min(udpLen, start + room);
      writeIpv6Header(f, IP_OFF, FRAG_HDR_LEN + (end - start), NH_FRAGMENT, src, sOff, dst, dOff);
      // Fragment header: next header, reserved, offset (in 8-byte units, already a multiple of 8
      // in bytes) with the M flag in bit 0, Identification.
      f[FRAG_OFF] = NH_UDP;
      f[FRAG_OFF + 1] = 0;
      setU16(f, FRAG_OFF + 2, start | (end < udpLen ? 1 : 0));
      setU32(f, FRAG_OFF + 4, this.ident);
      if (k === 0) {
        parts[0] = this.fragFirst;
        parts[1] = payload.subarray(0, end - UDP_HDR_LEN);
      } else {
        parts[0] = this.fragRest;
        parts[1] = payload.subarray(start - UDP_HDR_LEN, end - UDP_HDR_LEN);
      }
      if (!sink.send(parts)) ok = false;
    }
    parts[1] = EMPTY;
    return ok ? Udp6EmitResult.FRAGMENTED : Udp6EmitResult.SINK_DROP;
  }

  /** The complete UDP checksum (header in this.hdr with its field zeroed, then the payload). */
  private fullChecksum(pseudo: number, payload: Uint8Array): number {
    setUdpChecksum(this.hdr, UDP_OFF, 0);
    const s = sum16(payload, 0, payload.length, sum16(this.hdr, UDP_OFF, UDP_HDR_LEN, pseudo));
    const ck = ~fold(s) & 0xffff;
    return ck === 0 ? 0xffff : ck;
  }
}
