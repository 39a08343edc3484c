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
