// IPv6 addresses (RFC 4291) as 16 bytes at b[o]: the classes tapswitch tells apart, the
// solicited-node multicast group and the Ethernet group MAC an address maps to (RFC 2464 §7), a
// small-integer hash for tables, and a strict text parser for configuration. Nothing here allocates
// except parseIpv6Address.
/** Two 16-byte addresses are the same. */
export function ipv6Equal(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < 16; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** :: (RFC 4291 §2.5.2). */
export function isUnspecified6(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 16; i++) if (b[o + i] !== 0) return false;
  return true;
}

/** ::1 (RFC 4291 §2.5.3). */
export function isLoopback6(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 15; i++) if (b[o + i] !== 0) return false;
  return b[o + 15] === 1;
}

/** ff00::/8 (RFC 4291 §2.7). */
export function isMulticast6(b: Uint8Array, o: number): boolean {
  return b[o] === 0xff;
}

/** fe80::/10 (RFC 4291 §2.5.6). */
export function isLinkLocal6(b: Uint8Array, o: number): boolean {
  return b[o] === 0xfe && (b[o + 1]! & 0xc0) === 0x80;
}

/** ::ffff:0:0/96, an IPv4-mapped address (RFC 4291 §2.5.5.2). */
export function isIpv4Mapped6(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 10; i++) if (b[o + i] !== 0) return false;
  return b[o + 10] === 0xff && b[o + 11] === 0xff;
}

/** ff02::1:ff00:0/104, a solicited-node multicast group (RFC 4291 §2.7.1). */
export function isSolicitedNodeMulticast6(b: Uint8Array, o: number): boolean {
  if (b[o] !== 0xff || b[o + 1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (b[o + i] !== 0) return false;
  return b[o + 11] === 0x01 && b[o + 12] === 0xff;
}

/** The first `bits` bits of a and b agree (bits a multiple of 8, at most 128). */
export function ipv6PrefixEqual(a: Uint8Array, ao: number, b: Uint8Array, bo: number, bits: number): boolean {
  const n = bits >>> 3;
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** Write the solicited-node group of `target` (ff02::1:ffXX:XXXX, its low 24 bits) at dst[d]. */
export function emitSolicitedNodeMulticast6(dst: Uint8Array, d: number, target: Uint8Array, t: number): void {
  dst[d] = 0xff; dst[d + 1] = 0x02;
  for (let i = 2; i < 11; i++) dst[d + i] = 0;
  dst[d + 11] = 0x01; dst[d + 12] = 0xff;
  dst[d + 13] = target[t + 13]!; dst[d + 14] = target[t + 14]!; dst[d + 15] = target[t + 15]!;
}

/** Write the Ethernet group MAC of the multicast address at ip[i]: 33:33 + its low 32 bits (RFC 2464 §7). */
export function emitMulticastMac6(dst: Uint8Array, d: number, ip: Uint8Array, i: number): void {
  dst[d] = 0x33; dst[d + 1] = 0x33;
  dst[d + 2] = ip[i + 12]!; dst[d + 3] = ip[i + 13]!; dst[d + 4] = ip[i + 14]!; dst[d + 5] = ip[i + 15]!;
}

/** FNV-1a over the 16 bytes, cut to 30 bits: a small integer (never boxed by V8) for table keys. */
export function ipv6Hash(b: Uint8Array, o: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ b[o + i]!, 16777619);
  return (h ^ (h >>> 15)) & 0x3fffffff;
}

/**
 * RFC 4291 §2.2 text (forms 1-3: eight hex groups, `::` once, a trailing dotted quad) to 16 bytes;
 * null for anything else (no zone ids, no prefix lengths, no brackets).
 */
export function parseIpv6Address(text: string): Uint8Array | null {
  if (text.length === 0 || text.length > 45) return null;
  let s = text;
  const tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.slice(lastColon + 1));
    if (!m) return null;
    for (let i = 1; i <= 4; i++) {
      const part = m[i]!;
      if ((part.length > 1 && part[0] === '0') || Number(part) > 255) return null;
    }
    const q = m.slice(1, 5).map(Number) as [number, number, number, number];
    tail.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
    // Keep the colon(s) before the quad; a lone trailing ':' after '::' stays a valid '::'.
    s = s.slice(0, lastColon + 1);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return null;
  const group = /^[0-9a-fA-F]{1,4}$/;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!group.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let words: number[];
  if (dbl >= 0) {
    const head = parse(s.slice(0, dbl));
    const rest = parse(s.slice(dbl + 2));
    if (head === null || rest === null) return null;
    const missing = 8 - head.length - rest.length - tail.length;
    if (missing < 1) return null;
    words = [...head, ...new Array<number>(missing).fill(0), ...rest, ...tail];
  } else {
    const all = parse(s);
    if (all === null) return null;
    words = [...all, ...tail];
  }
  if (words.length !== 8) return null;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) { out[2 * i] = words[i]! >> 8; out[2 * i + 1] = words[i]! & 0xff; }
  return out;
}

