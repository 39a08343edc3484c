// Addresses on the hot path are plain numbers: an IPv4 address is a u32 in host order
// (10.0.2.100 = 0x0a000264), a MAC is 6 bytes. Parsing of user input (CIDRs, flags) belongs to
// the control plane, which uses `ip-address`; these helpers only convert for logs and sockets.
import { u32 } from './bytes';

export type Ipv4 = number;

export function ipv4ToString(a: Ipv4): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** Strict dotted-quad parser; returns null for anything else (no DNS, no shorthand forms). */
export function parseIpv4(s: string): Ipv4 | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    if (part.length > 1 && part[0] === '0') return null;
    const n = Number(part);
    if (n > 255) return null;
    v = (v << 8) | n;
  }
  return v >>> 0;
}

export function readIpv4(b: Uint8Array, o: number): Ipv4 {
  return u32(b, o);
}

export function macToString(b: Uint8Array, o = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(b[o + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function parseMac(s: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(s);
  if (!m) return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) out[i] = parseInt(m[i + 1]!, 16);
  return out;
}

export function macEquals(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  return a[ao] === b[bo] && a[ao + 1] === b[bo + 1] && a[ao + 2] === b[bo + 2] &&
    a[ao + 3] === b[bo + 3] && a[ao + 4] === b[bo + 4] && a[ao + 5] === b[bo + 5];
}

/** A MAC as a 48-bit integer (fits a JS number exactly): a cheap Map key for the switch. */
export function macKey(b: Uint8Array, o: number): number {
  return (b[o]! * 0x10000000000) + (b[o + 1]! * 0x100000000) +
    (((b[o + 2]! << 24) | (b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!) >>> 0);
}

export function isMulticastMac(b: Uint8Array, o: number): boolean {
  return (b[o]! & 1) === 1;
}

export function ipv4InSubnet(a: Ipv4, network: Ipv4, prefixLength: number): boolean {
  if (prefixLength === 0) return true;
  const mask = (0xffffffff << (32 - prefixLength)) >>> 0;
  return ((a & mask) >>> 0) === network;
}

export function prefixMask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// IPv6 addresses are 16 bytes at some offset of some buffer (b, o); classes, equality and the
// configuration parser are in ipv6-addr.ts. This parser writes into caller-owned bytes, so the
// per-datagram use (a host socket reports its peer as a string) allocates nothing.

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Dotted quad s[from, s.length) as a u32, or -1 (no leading zeros, like parseIpv4). No regex, no
 * allocation: it runs once per datagram from the host (dgram reports peers as text).
 */
export function dottedTail(s: string, from = 0): number {
  let v = 0, part = 0, digits = 0, dots = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      v = v * 256 + part; part = 0; digits = 0; dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return v * 256 + part;
}

/**
 * Parse RFC 4291 §2.2 text (hex groups, one "::", an optional dotted IPv4 tail) into out[o, o+16).
 * False (out partly written) for anything else, zone ids ("%eth0") included. Allocates nothing.
 */
export function parseIpv6Into(s: string, out: Uint8Array, o: number): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let words = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    if (words === 8) return false;
    const start = i;
    let v = 0;
    let digits = 0;
    for (; i < n; i++) {
      const h = hexDigit(s.charCodeAt(i));
      if (h < 0) break;
      if (++digits > 4) return false;
      v = v * 16 + h;
    }
    if (i < n && s.charCodeAt(i) === 46) {
      // The last 32 bits written as a dotted quad (::ffff:192.0.2.1).
      if (words > 6) return false;
      const v4 = dottedTail(s, start);
      if (v4 < 0) return false;
      out[o + 2 * words] = v4 >>> 24; out[o + 2 * words + 1] = (v4 >>> 16) & 0xff;
      out[o + 2 * words + 2] = (v4 >>> 8) & 0xff; out[o + 2 * words + 3] = v4 & 0xff;
      words += 2;
      i = n;
      break;
    }
    if (digits === 0) return false;
    out[o + 2 * words] = v >>> 8;
    out[o + 2 * words + 1] = v & 0xff;
    words++;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < n && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = words;
      i++;
    } else if (i === n) {
      return false; // a trailing single ':'
    }
  }
  if (gap < 0) return words === 8;
  if (words === 8) return false; // "::" stands for at least one group
  // Move the groups after "::" to the end and zero the gap (right to left: no overlap hazard).
  const tail = words - gap;
  for (let k = 2 * tail - 1; k >= 0; k--) out[o + 16 - 2 * tail + k] = out[o + 2 * gap + k]!;
  out.fill(0, o + 2 * gap, o + 16 - 2 * tail);
  return true;
}

/**
 * The first 80 bits are zero: ::, ::1, IPv4-mapped ::ffff:a.b.c.d and the deprecated
 * IPv4-compatible forms. None of them may be a translated source or destination: ::ffff:127.0.0.1
 * on an AF_INET6 host socket would reach the host's IPv4 loopback past the gateway rule.
 */
export function ipv6IsLowZero80(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 10; i++) if (b[o + i] !== 0) return false;
  return true;
}
