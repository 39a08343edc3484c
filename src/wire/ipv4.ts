// IPv4 (RFC 791).
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Version|  IHL  |Type of Service|          Total Length         |
// |         Identification        |Flags|      Fragment Offset    |
// |  Time to Live |    Protocol   |         Header Checksum       |
// |                       Source Address                          |
// |                    Destination Address                        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import { setU16, setU32, u16, u32 } from './bytes';
import { checksum } from './checksum';

export const IPV4_HDR_LEN = 20;
export const IpProtocol = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

const VER_IHL = 0;
const TOS = 1;
const TOTAL_LENGTH = 2;
const IDENT = 4;
const FLAGS_FRAG = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;

const MORE_FRAGMENTS = 0x2000;
const DONT_FRAGMENT = 0x4000;
const FRAG_OFFSET_MASK = 0x1fff;

export class Ipv4View {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  /** Header length in bytes. */
  hl = 0;
  /** Total length (header + payload), trusted only after bind(). */
  tl = 0;

  /**
   * The only length check. Accepts trailing bytes after Total Length (Ethernet padding) and
   * rejects everything that does not fit: after it passes no accessor can read out of bounds.
   */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < IPV4_HDR_LEN || o + n > b.length) return false;
    const vi = b[o + VER_IHL]!;
    if (vi >> 4 !== 4) return false;
    const hl = (vi & 0x0f) * 4;
    if (hl < IPV4_HDR_LEN) return false;
    const tl = u16(b, o + TOTAL_LENGTH);
    if (tl < hl || tl > n) return false;
    this.b = b; this.o = o; this.hl = hl; this.tl = tl;
    return true;
  }

  get version(): number { return this.b[this.o + VER_IHL]! >> 4; }
  get headerLength(): number { return this.hl; }
  get tos(): number { return this.b[this.o + TOS]!; }
  get totalLength(): number { return this.tl; }
  get identification(): number { return u16(this.b, this.o + IDENT); }
  get dontFragment(): boolean { return (u16(this.b, this.o + FLAGS_FRAG) & DONT_FRAGMENT) !== 0; }
  get moreFragments(): boolean { return (u16(this.b, this.o + FLAGS_FRAG) & MORE_FRAGMENTS) !== 0; }
  get fragmentOffset(): number { return (u16(this.b, this.o + FLAGS_FRAG) & FRAG_OFFSET_MASK) * 8; }
  /** True for any piece of a fragmented datagram. */
  get isFragment(): boolean { return (u16(this.b, this.o + FLAGS_FRAG) & (MORE_FRAGMENTS | FRAG_OFFSET_MASK)) !== 0; }
  get ttl(): number { return this.b[this.o + TTL]!; }
  get protocol(): number { return this.b[this.o + PROTOCOL]!; }
  get headerChecksum(): number { return u16(this.b, this.o + CHECKSUM); }
  get srcAddr(): number { return u32(this.b, this.o + SRC); }
  get dstAddr(): number { return u32(this.b, this.o + DST); }
  get payloadOffset(): number { return this.o + this.hl; }
  get payloadLength(): number { return this.tl - this.hl; }
  /** The header checksum verifies (sums to 0xffff). */
  get headerChecksumValid(): boolean { return checksum(this.b, this.o, this.hl) === 0; }
}

/**
 * Write a 20-byte header (no options) with its checksum. `totalLength` includes the header.
 */
export function emitIpv4Header(b: Uint8Array, o: number, totalLength: number, identification: number,
  ttl: number, protocol: number, src: number, dst: number, dontFragment = true): void {
  b[o + VER_IHL] = 0x45;
  b[o + TOS] = 0;
  setU16(b, o + TOTAL_LENGTH, totalLength);
  setU16(b, o + IDENT, identification & 0xffff);
  setU16(b, o + FLAGS_FRAG, dontFragment ? DONT_FRAGMENT : 0);
  b[o + TTL] = ttl;
  b[o + PROTOCOL] = protocol;
  setU16(b, o + CHECKSUM, 0);
  setU32(b, o + SRC, src);
  setU32(b, o + DST, dst);
  setU16(b, o + CHECKSUM, checksum(b, o, IPV4_HDR_LEN));
}

/** Rewrite Total Length and refresh the checksum (for reusing a header template). */
export function setIpv4TotalLength(b: Uint8Array, o: number, totalLength: number, identification: number): void {
  setU16(b, o + TOTAL_LENGTH, totalLength);
  setU16(b, o + IDENT, identification & 0xffff);
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + CHECKSUM, checksum(b, o, IPV4_HDR_LEN));
}
