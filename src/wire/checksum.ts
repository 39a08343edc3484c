// The Internet checksum (RFC 1071) and incremental update (RFC 1624). With the TAP's offloads on,
// TCP/UDP payloads are never summed; only IPv4 headers, ICMP messages and the pseudo-header seed
// that NEEDS_CSUM frames carry are.

/** Unfolded one's-complement sum of b[off, off+len), added to `initial`. */
export function sum16(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  const end = off + (len & ~1);
  let i = off;
  // Unrolled by 8 bytes; the partial sums stay far below 2^53 for any frame we can hold.
  for (; i + 8 <= end; i += 8) {
    s += ((b[i]! << 8) | b[i + 1]!) + ((b[i + 2]! << 8) | b[i + 3]!) +
      ((b[i + 4]! << 8) | b[i + 5]!) + ((b[i + 6]! << 8) | b[i + 7]!);
  }
  for (; i < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (len & 1) s += b[off + len - 1]! << 8;
  return s;
}

/** Fold a sum to 16 bits (not inverted). */
export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value: the folded sum, inverted. */
export function checksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(sum16(b, off, len, initial)) & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header for TCP/UDP. */
export function pseudoHeaderSum4(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** RFC 1624 eqn. 3: new checksum after a 16-bit field changes from `old` to `now`. */
export function updateChecksum16(check: number, old: number, now: number): number {
  return ~fold((~check & 0xffff) + (~old & 0xffff) + now) & 0xffff;
}

/** RFC 1624 for a 32-bit field (e.g. an IPv4 address inside a pseudo-header). */
export function updateChecksum32(check: number, old: number, now: number): number {
  return ~fold((~check & 0xffff) + (~(old >>> 16) & 0xffff) + (~old & 0xffff) + (now >>> 16) + (now & 0xffff)) & 0xffff;
}

/**
 * Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1) for TCP/UDP/ICMPv6: the 16-byte source
 * and destination addresses at b[srcOff] and b2[dstOff], the upper-layer length and next header.
 */
export function pseudoHeaderSum6(b: Uint8Array, srcOff: number, b2: Uint8Array, dstOff: number,
  nextHeader: number, length: number): number {
  return sum16(b, srcOff, 16, sum16(b2, dstOff, 16, nextHeader + (length >>> 16) + (length & 0xffff)));
}
