// IPv6 fixed header (RFC 8200 §3). tapswitch does not route IPv6 yet; this view exists so that
// IPv6 frames (NDP, MLD, a container's IPv6 traffic) are recognised, counted and dropped cleanly.
// Extension headers are not walked: `nextHeader` is whatever follows the fixed header.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Version| Traffic Class |              Flow Label               |
// |         Payload Length        |  Next Header  |   Hop Limit   |
// |                                                               |
// +                  Source Address (16 bytes)                    +
// |                                                               |
// +                Destination Address (16 bytes)                 +
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import { setU16, setU32, u16, u32 } from './bytes';

export const IPV6_HDR_LEN = 40;
export const IPV6_ADDR_LEN = 16;
/** Next Header values seen in front of or instead of an upper-layer protocol. */
export const Ipv6NextHeader = { HOP_BY_HOP: 0, TCP: 6, UDP: 17, ROUTING: 43, FRAGMENT: 44, ICMPV6: 58, NO_NEXT: 59, DEST_OPTS: 60 } as const;

const VER_TC_FLOW = 0;
const PAYLOAD_LENGTH = 4;
const NEXT_HEADER = 6;
const HOP_LIMIT = 7;
const SRC = 8;
const DST = 24;

export class Ipv6View {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  /** Payload Length, trusted only after bind(). */
  pl = 0;

  /**
   * The only length check: version 6 and the payload fits in n bytes (trailing bytes, e.g.
   * Ethernet padding, are allowed). A Payload Length of 0 (a jumbogram, RFC 2675) binds with an
   * empty payload: jumbograms cannot occur on an Ethernet link.
   */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < IPV6_HDR_LEN || o + n > b.length) return false;
    if (b[o + VER_TC_FLOW]! >> 4 !== 6) return false;
    const pl = u16(b, o + PAYLOAD_LENGTH);
    if (IPV6_HDR_LEN + pl > n) return false;
    this.b = b; this.o = o; this.pl = pl;
    return true;
  }

  get version(): number { return this.b[this.o + VER_TC_FLOW]! >> 4; }
  get trafficClass(): number { return (u16(this.b, this.o + VER_TC_FLOW) >> 4) & 0xff; }
  get flowLabel(): number { return u32(this.b, this.o + VER_TC_FLOW) & 0xfffff; }
  get payloadLength(): number { return this.pl; }
  get nextHeader(): number { return this.b[this.o + NEXT_HEADER]!; }
  get hopLimit(): number { return this.b[this.o + HOP_LIMIT]!; }
  get srcAddrOffset(): number { return this.o + SRC; }
  get dstAddrOffset(): number { return this.o + DST; }
  get payloadOffset(): number { return this.o + IPV6_HDR_LEN; }
  /** Header plus payload: the bytes of this packet inside the bound range. */
  get totalLength(): number { return IPV6_HDR_LEN + this.pl; }
}

/** Write a fixed header. `src` and `dst` are 16-byte addresses. */
export function emitIpv6Header(b: Uint8Array, o: number, trafficClass: number, flowLabel: number,
  payloadLength: number, nextHeader: number, hopLimit: number, src: Uint8Array, dst: Uint8Array): void {
  setU32(b, o + VER_TC_FLOW, ((6 << 28) | ((trafficClass & 0xff) << 20) | (flowLabel & 0xfffff)) >>> 0);
  setU16(b, o + PAYLOAD_LENGTH, payloadLength);
  b[o + NEXT_HEADER] = nextHeader;
  b[o + HOP_LIMIT] = hopLimit;
  b.set(src.subarray(0, IPV6_ADDR_LEN), o + SRC);
  b.set(dst.subarray(0, IPV6_ADDR_LEN), o + DST);
}

/** RFC 5952 text form of the 16-byte address at b[o] (for logs; allocates). */
export function ipv6ToString(b: Uint8Array, o: number): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(u16(b, o + 2 * i));
  // The longest run of two or more zero words becomes "::" (the first one on a tie).
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(w);
  return `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
}
