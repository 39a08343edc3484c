// Building the TCP frames tapswitch sends to the guest.
//
// Theory of operation
// - Each flow owns one small header template: virtio-net header, Ethernet, IPv4 and TCP header
//   (plus room for SYN-ACK options), written once when the flow is created. Sending a segment
//   patches the few fields that change (IPv4 length/id/checksum, TCP seq/ack/flags/window/
//   checksum, the vnet GSO fields) and hands the sink [header, payload slice, payload slice...]:
//   one writev, no copy of the payload. The sink copies the header synchronously, so the same
//   template serves the next segment at once.
// - With offloads (the guest's TAP has TUN_F_CSUM|TUN_F_TSO4), a segment of any size up to 64 KiB
//   is one frame: NEEDS_CSUM with the folded, not inverted, pseudo-header sum in the checksum
//   field; GSO TCPV4 with gso_size = the guest's MSS when the payload is larger than that MSS.
//   Without offloads the caller cuts segments at the MSS and the full checksum is computed here.
// - Replies that belong to no flow (RST for a stray segment, ICMP unreachable for a SYN) are built
//   in scratch buffers owned by the emitter.
// - IPv6 flows have a longer template (40-byte IPv6 header: the TCP header at OFF_TCP6) and are
//   told apart by it: send() hands any head longer than an IPv4 one to send6(), which patches the
//   Payload Length instead of Total Length/ID/header checksum, seeds the IPv6 pseudo-header sum and
//   marks superframes GSO TCPV6 (csum_start 54). The IPv4 path is otherwise untouched.
import { setU16, u32 } from '../wire/bytes';
import { fold, pseudoHeaderSum4, pseudoHeaderSum6, sum16 } from '../wire/checksum';
import { ETH_HDR_LEN, EtherType, emitEthernet } from '../wire/ethernet';
import { ICMP_HDR_LEN, IcmpType, emitIcmpError, finishIcmpChecksum } from '../wire/icmp';
import { IPV4_HDR_LEN, IpProtocol, emitIpv4Header, setIpv4TotalLength } from '../wire/ipv4';
import { IPV6_HDR_LEN } from '../wire/ipv6';
import { TCP_HDR_LEN, TcpFlags, emitTcpHeader, patchTcpHeader, setTcpChecksum } from '../wire/tcp';
import { GsoType, VNET_HDR_LEN, VnetFlags, emitVnetHeader, emitVnetNone } from '../wire/vnet';
import type { Counters } from '../wire/frame';
import { count } from '../wire/frame';
import { TcpCounters as C } from './tcp-counters';
import type { GuestSink } from './types';

export const OFF_ETH = VNET_HDR_LEN;
export const OFF_IP = OFF_ETH + ETH_HDR_LEN;
export const OFF_TCP = OFF_IP + IPV4_HDR_LEN;
/** vnet + Ethernet + IPv4 + TCP without options: 64 bytes. */
export const FRAME_HDR_LEN = OFF_TCP + TCP_HDR_LEN;
/** Template size: room for 8 bytes of SYN-ACK options (MSS, NOP, window scale). */
export const TEMPLATE_LEN = FRAME_HDR_LEN + 8;
/** Largest TCP payload in one IPv4 packet (total length is 16 bits). */
export const MAX_SUPERFRAME_PAYLOAD = 0xffff - IPV4_HDR_LEN - TCP_HDR_LEN;

/** IPv6: vnet + Ethernet + IPv6 (40) + TCP without options: 84 bytes; template 92. */
export const OFF_TCP6 = OFF_IP + IPV6_HDR_LEN;
export const FRAME6_HDR_LEN = OFF_TCP6 + TCP_HDR_LEN;
export const TEMPLATE6_LEN = FRAME6_HDR_LEN + 8;
/**
 * Largest TCP payload in one IPv6 superframe: kept so that the whole packet (40 + 20 + payload)
 * stays within 64 KiB, the most a receiving stack's GSO handling expects.
 */
export const MAX_SUPERFRAME_PAYLOAD6 = 0xffff - IPV6_HDR_LEN - TCP_HDR_LEN;

const CSUM_OFFSET = 16;
const TTL = 64;
const ICMP_QUOTE_MAX = 60 + 8;

/** Write the parts of a flow's template that never change. */
export function initTemplate(b: Uint8Array, guestMac: Uint8Array, gatewayMac: Uint8Array, remoteIp: number,
  guestIp: number, remotePort: number, guestPort: number): void {
  emitVnetNone(b, 0);
  emitEthernet(b, OFF_ETH, guestMac, gatewayMac, EtherType.IPV4);
  emitIpv4Header(b, OFF_IP, IPV4_HDR_LEN + TCP_HDR_LEN, 0, TTL, IpProtocol.TCP, remoteIp, guestIp, true);
  emitTcpHeader(b, OFF_TCP, remotePort, guestPort, 0, 0, 0, 0);
}

/**
 * The IPv6 template: vnet, Ethernet (EtherType IPv6), the fixed IPv6 header (remote -> guest,
 * the 16-byte addresses at rb[ro] and gb[go]) and the TCP header at OFF_TCP6.
 */
export function initTemplate6(b: Uint8Array, guestMac: Uint8Array, gatewayMac: Uint8Array, rb: Uint8Array, ro: number,
  gb: Uint8Array, go: number, remotePort: number, guestPort: number): void {
  emitVnetNone(b, 0);
  emitEthernet(b, OFF_ETH, guestMac, gatewayMac, EtherType.IPV6);
  b[OFF_IP] = 0x60; b[OFF_IP + 1] = 0; b[OFF_IP + 2] = 0; b[OFF_IP + 3] = 0;
  setU16(b, OFF_IP + 4, TCP_HDR_LEN);
  b[OFF_IP + 6] = IpProtocol.TCP;
  b[OFF_IP + 7] = TTL;
  for (let i = 0; i < 16; i++) { b[OFF_IP + 8 + i] = rb[ro + i]!; b[OFF_IP + 24 + i] = gb[go + i]!; }
  emitTcpHeader(b, OFF_TCP6, remotePort, guestPort, 0, 0, 0, 0);
}

/** Is this head (a template view) an IPv6 one? IPv4 heads are at most TEMPLATE_LEN bytes. */
function isHead6(head: Uint8Array): boolean {
  return head.length > TEMPLATE_LEN;
}

export class TcpEmitter {
  /** parts[0] is the header; callers push payload slices after it. Reused for every frame. */
  readonly parts: Uint8Array[] = [];
  private readonly scratch = new Uint8Array(FRAME_HDR_LEN);
  private readonly scratch6 = new Uint8Array(FRAME6_HDR_LEN);
  private readonly icmp = new Uint8Array(OFF_IP + IPV4_HDR_LEN + ICMP_HDR_LEN + ICMP_QUOTE_MAX);
  private ipId = 0;

  constructor(private readonly sink: GuestSink, private readonly counters: Counters) {}

  get offloads(): boolean { return this.sink.offloads; }

  /** Start a frame: clears the payload parts. */
  begin(): Uint8Array[] {
    this.parts.length = 1;
    return this.parts;
  }

  /**
   * Send one segment from a template. `head` is the template's first FRAME_HDR_LEN + optLen bytes
   * (a view made once per flow); payload slices must already follow in `parts` (after begin()).
   * `gsoSize` is the guest's MSS: larger payloads become one GSO superframe (offloads only).
   */
  send(head: Uint8Array, ipId: number, seq: number, ack: number, flags: number, window: number,
    optLen: number, payloadLen: number, gsoSize: number): boolean {
    if (isHead6(head)) return this.send6(head, seq, ack, flags, window, optLen, payloadLen, gsoSize);
    const tcpHl = TCP_HDR_LEN + optLen;
    const tcpLen = tcpHl + payloadLen;
    setIpv4TotalLength(head, OFF_IP, IPV4_HDR_LEN + tcpLen, ipId);
    patchTcpHeader(head, OFF_TCP, seq, ack, flags, window);
    head[OFF_TCP + 12] = (tcpHl / 4) << 4;
    const seed = pseudoHeaderSum4(u32(head, OFF_IP + 12), u32(head, OFF_IP + 16), IpProtocol.TCP, tcpLen);
    return this.finish(head, OFF_TCP, tcpHl, seed, payloadLen, gsoSize, GsoType.TCPV4);
  }

  /** send() for an IPv6 head (see the top of this file). */
  private send6(head: Uint8Array, seq: number, ack: number, flags: number, window: number,
    optLen: number, payloadLen: number, gsoSize: number): boolean {
    const tcpHl = TCP_HDR_LEN + optLen;
    const tcpLen = tcpHl + payloadLen;
    setU16(head, OFF_IP + 4, tcpLen);
    patchTcpHeader(head, OFF_TCP6, seq, ack, flags, window);
    head[OFF_TCP6 + 12] = (tcpHl / 4) << 4;
    const seed = pseudoHeaderSum6(head, OFF_IP + 8, head, OFF_IP + 24, IpProtocol.TCP, tcpLen);
    return this.finish(head, OFF_TCP6, tcpHl, seed, payloadLen, gsoSize, GsoType.TCPV6);
  }

  /**
   * The family-independent tail of send(): the checksum (the pseudo-header seed for NEEDS_CSUM, or
   * the whole sum without offloads), the virtio-net header (GSO when the payload is more than one
   * segment; csum_start is where the TCP header begins) and the write.
   */
  private finish(head: Uint8Array, tcpOff: number, tcpHl: number, seed: number, payloadLen: number,
    gsoSize: number, gsoType: number): boolean {
    const parts = this.parts;
    if (this.sink.offloads) {
      setTcpChecksum(head, tcpOff, fold(seed));
      const gso = payloadLen > gsoSize;
      emitVnetHeader(head, 0, VnetFlags.NEEDS_CSUM, gso ? gsoType : GsoType.NONE,
        tcpOff - VNET_HDR_LEN + tcpHl, gso ? gsoSize : 0, tcpOff - VNET_HDR_LEN, CSUM_OFFSET);
    } else {
      setTcpChecksum(head, tcpOff, this.fullChecksum(head, tcpOff, tcpHl, seed));
      emitVnetNone(head, 0);
    }
    parts[0] = head;
    const ok = this.sink.send(parts);
    parts.length = 1;
    if (!ok) count(this.counters, C.TX_DROPPED);
    return ok;
  }

  /** The complete TCP checksum over the header at head[tcpOff] and the payload parts after it. */
  private fullChecksum(head: Uint8Array, tcpOff: number, tcpHl: number, seed: number): number {
    const parts = this.parts;
    let s = sum16(head, tcpOff, tcpHl, seed);
    let odd = false;
    for (let i = 1; i < parts.length; i++) {
      const p = parts[i]!;
      let ps = fold(sum16(p, 0, p.length));
      // A part that starts at an odd stream offset has its bytes in the other half of each word.
      if (odd) ps = ((ps & 0xff) << 8) | (ps >>> 8);
      s += ps;
      if (p.length & 1) odd = !odd;
    }
    return ~fold(s) & 0xffff;
  }

  /**
   * RST for a segment that matches no flow (RFC 9293 3.10.7.1): with ACK set, <SEQ=SEG.ACK><RST>;
   * otherwise <SEQ=0><ACK=SEG.SEQ+SEG.LEN><RST,ACK>. Addresses and ports are swapped.
   */
  rstForSegment(guestMac: Uint8Array, guestIp: number, remoteIp: number, guestPort: number, remotePort: number,
    segSeq: number, segAck: number, segHasAck: boolean, segLen: number): void {
    const b = this.scratch;
    initTemplate(b, guestMac, this.sink.gatewayMac, remoteIp, guestIp, remotePort, guestPort);
    this.begin();
    if (segHasAck) this.send(b, this.ipId++ & 0xffff, segAck, 0, TcpFlags.RST, 0, 0, 0, 0xffff);
    else this.send(b, this.ipId++ & 0xffff, 0, (segSeq + segLen) >>> 0, TcpFlags.RST | TcpFlags.ACK, 0, 0, 0, 0xffff);
  }

  /**
   * rstForSegment() for IPv6: the guest's address at gb[go], the remote's at rb[ro] (16 bytes each).
   */
  rstForSegment6(guestMac: Uint8Array, gb: Uint8Array, go: number, rb: Uint8Array, ro: number, guestPort: number,
    remotePort: number, segSeq: number, segAck: number, segHasAck: boolean, segLen: number): void {
    const b = this.scratch6;
    initTemplate6(b, guestMac, this.sink.gatewayMac, rb, ro, gb, go, remotePort, guestPort);
    this.begin();
    if (segHasAck) this.send6(b, segAck, 0, TcpFlags.RST, 0, 0, 0, 0xffff);
    else this.send6(b, 0, (segSeq + segLen) >>> 0, TcpFlags.RST | TcpFlags.ACK, 0, 0, 0, 0xffff);
  }

  /**
   * ICMP destination unreachable from `from` (the gateway) to the guest, quoting the offending
   * packet's IP header and the first 8 bytes of its payload (RFC 792), given as quote[0, n).
   */
  icmpUnreachable(guestMac: Uint8Array, from: number, guestIp: number, code: number, quote: Uint8Array,
    quoteLen: number): void {
    const n = Math.min(quoteLen, ICMP_QUOTE_MAX);
    const b = this.icmp;
    emitVnetNone(b, 0);
    emitEthernet(b, OFF_ETH, guestMac, this.sink.gatewayMac, EtherType.IPV4);
    const icmpLen = ICMP_HDR_LEN + n;
    emitIpv4Header(b, OFF_IP, IPV4_HDR_LEN + icmpLen, this.ipId++ & 0xffff, TTL, IpProtocol.ICMP, from, guestIp, false);
    const io = OFF_IP + IPV4_HDR_LEN;
    emitIcmpError(b, io, IcmpType.DEST_UNREACHABLE, code, 0);
    b.set(quote.subarray(0, n), io + ICMP_HDR_LEN);
    finishIcmpChecksum(b, io, icmpLen);
    this.parts.length = 0;
    this.parts.push(b.subarray(0, io + icmpLen));
    const ok = this.sink.send(this.parts);
    this.parts.length = 1;
    if (!ok) count(this.counters, C.TX_DROPPED);
  }
}
