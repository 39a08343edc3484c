// ICMPv6 (RFC 4443) and the Neighbor Discovery messages and options tapswitch's gateway speaks
// (RFC 4861), with the Recursive DNS Server option (RFC 8106).
//
// Every ICMPv6 message starts the same way (RFC 4443 §2.1); the checksum covers the IPv6
// pseudo-header (RFC 8200 §8.1) with next header 58, then the whole message:
//
//  0      1      2          4                    8
//  +------+------+----------+--------------------+---------
//  | type | code | checksum | identifier|sequence| data        echo (RFC 4443 §4.1, §4.2)
//  |      |      |          |  unused / MTU / ptr| invoking packet    errors (§3)
//  |  133 |  0   |          |      reserved      | options     Router Solicitation (RFC 4861 §4.1)
//  |  134 |  0   |          |hop|MO|lifetime     | reachable time (4), retrans timer (4), options (§4.2)
//  |  135 |  0   |          |      reserved      | target address (16), options   NS (§4.3)
//  |  136 |  0   |          |R|S|O|  reserved    | target address (16), options   NA (§4.4)
//
// Options (RFC 4861 §4.6) are type, length in units of 8 bytes (0 is invalid), value:
//
//   1/2  Source/Target Link-Layer Address   length 1 on Ethernet: the 6-byte MAC (RFC 2464 §8)
//   3    Prefix Information                 length 4: prefix length, L|A flags, valid lifetime,
//                                            preferred lifetime, reserved (4), prefix (16)  (§4.6.2)
//   5    MTU                                length 1: reserved (2), MTU (4)                (§4.6.4)
//   25   Recursive DNS Server               length 1 + 2n: reserved (2), lifetime (4),
//                                            n addresses                       (RFC 8106 §5.1)
//
// Views follow the rest of src/wire: bind() is the only length check (and checks the type it
// views), accessors are named after the RFC fields and cannot fail afterwards. NdpOptionReader
// walks an options area and tells "end" from "malformed" (RFC 4861 §4.6: a zero length, or an
// option running past the message, makes the whole message invalid).
import { setU16, setU32, u16, u32 } from './bytes';
import { checksum, pseudoHeaderSum6 } from './checksum';

/** Type, code, checksum and the 32-bit field every defined message has: the smallest valid message. */
export const ICMPV6_HDR_LEN = 8;
export const ICMPV6_NEXT_HEADER = 58;

export const Icmpv6Type = {
  DEST_UNREACHABLE: 1, PACKET_TOO_BIG: 2, TIME_EXCEEDED: 3, PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128, ECHO_REPLY: 129,
  MLD_QUERY: 130, MLD_REPORT: 131, MLD_DONE: 132,
  ROUTER_SOLICIT: 133, ROUTER_ADVERT: 134, NEIGHBOR_SOLICIT: 135, NEIGHBOR_ADVERT: 136, REDIRECT: 137,
  MLDV2_REPORT: 143,
} as const;

/** Destination Unreachable codes (RFC 4443 §3.1). */
export const Icmpv6UnreachCode = { NO_ROUTE: 0, ADMIN_PROHIBITED: 1, BEYOND_SCOPE: 2, ADDRESS: 3, PORT: 4 } as const;

export const NdpOptionType = {
  SOURCE_LL_ADDR: 1, TARGET_LL_ADDR: 2, PREFIX_INFO: 3, REDIRECTED_HEADER: 4, MTU: 5, NONCE: 14, RDNSS: 25,
} as const;

/** RA flags byte (RFC 4861 §4.2): Managed address configuration, Other configuration. */
export const RaFlags = { MANAGED: 0x80, OTHER: 0x40 } as const;
/** NA flags byte (RFC 4861 §4.4): Router, Solicited, Override. */
export const NaFlags = { ROUTER: 0x80, SOLICITED: 0x40, OVERRIDE: 0x20 } as const;
/** Prefix Information flags byte (RFC 4861 §4.6.2): on-Link, Autonomous address configuration. */
export const PrefixFlags = { ON_LINK: 0x80, AUTONOMOUS: 0x40 } as const;

export const RS_LEN = 8;
export const RA_LEN = 16;
export const NS_LEN = 24;
export const NA_LEN = 24;
export const LL_ADDR_OPTION_LEN = 8;
export const PREFIX_INFO_OPTION_LEN = 32;
export const MTU_OPTION_LEN = 8;
/** The RDNSS option without addresses; each address adds 16. */
export const RDNSS_OPTION_MIN_LEN = 8;

// Common header.
const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
// Echo.
const IDENT = 4;
const SEQ = 6;
// RA.
const CUR_HOP_LIMIT = 4;
const RA_FLAGS = 5;
const ROUTER_LIFETIME = 6;
const REACHABLE_TIME = 8;
const RETRANS_TIMER = 12;
// NS / NA.
const NA_FLAGS = 4;
const TARGET = 8;
// Options.
const OPT_TYPE = 0;
const OPT_LENGTH = 1;
const LL_ADDR = 2;
const PI_PREFIX_LENGTH = 2;
const PI_FLAGS = 3;
const PI_VALID = 4;
const PI_PREFERRED = 8;
const PI_RESERVED2 = 12;
const PI_PREFIX = 16;
const MTU_RESERVED = 2;
const MTU_VALUE = 4;
const RDNSS_RESERVED = 2;
const RDNSS_LIFETIME = 4;
const RDNSS_ADDRS = 8;

/** Any ICMPv6 message: the common header plus the echo fields. */
export class Icmpv6View {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < ICMPV6_HDR_LEN || o + n > b.length) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get type(): number { return this.b[this.o + TYPE]!; }
  get code(): number { return this.b[this.o + CODE]!; }
  get checksum(): number { return u16(this.b, this.o + CHECKSUM); }
  /** Echo Identifier (RFC 4443 §4.1). */
  get identifier(): number { return u16(this.b, this.o + IDENT); }
  /** Echo Sequence Number. */
  get sequence(): number { return u16(this.b, this.o + SEQ); }
  /** The 32 bits after the checksum (errors: unused, MTU or pointer). */
  get rest(): number { return u32(this.b, this.o + IDENT); }
  get payloadOffset(): number { return this.o + ICMPV6_HDR_LEN; }
  get payloadLength(): number { return this.n - ICMPV6_HDR_LEN; }

  /** The checksum over the pseudo-header (addresses at ip[srcOff], ip[dstOff]) and the message is right. */
  checksumValid(ip: Uint8Array, srcOff: number, dstOff: number): boolean {
    return checksum(this.b, this.o, this.n, pseudoHeaderSum6(ip, srcOff, ip, dstOff, ICMPV6_NEXT_HEADER, this.n)) === 0;
  }
}

/** Router Solicitation (RFC 4861 §4.1). */
export class RouterSolicitView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < RS_LEN || o + n > b.length || b[o + TYPE] !== Icmpv6Type.ROUTER_SOLICIT) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get code(): number { return this.b[this.o + CODE]!; }
  get optionsOffset(): number { return this.o + RS_LEN; }
  get optionsLength(): number { return this.n - RS_LEN; }
}

/** Router Advertisement (RFC 4861 §4.2). */
export class RouterAdvertView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < RA_LEN || o + n > b.length || b[o + TYPE] !== Icmpv6Type.ROUTER_ADVERT) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get code(): number { return this.b[this.o + CODE]!; }
  get curHopLimit(): number { return this.b[this.o + CUR_HOP_LIMIT]!; }
  get managedAddrConfig(): boolean { return (this.b[this.o + RA_FLAGS]! & RaFlags.MANAGED) !== 0; }
  get otherConfig(): boolean { return (this.b[this.o + RA_FLAGS]! & RaFlags.OTHER) !== 0; }
  /** Seconds; 0: not a default router. */
  get routerLifetime(): number { return u16(this.b, this.o + ROUTER_LIFETIME); }
  /** Milliseconds; 0: unspecified. */
  get reachableTime(): number { return u32(this.b, this.o + REACHABLE_TIME); }
  /** Milliseconds; 0: unspecified. */
  get retransTimer(): number { return u32(this.b, this.o + RETRANS_TIMER); }
  get optionsOffset(): number { return this.o + RA_LEN; }
  get optionsLength(): number { return this.n - RA_LEN; }
}

/** Neighbor Solicitation (RFC 4861 §4.3). */
export class NeighborSolicitView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < NS_LEN || o + n > b.length || b[o + TYPE] !== Icmpv6Type.NEIGHBOR_SOLICIT) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get code(): number { return this.b[this.o + CODE]!; }
  get targetAddrOffset(): number { return this.o + TARGET; }
  get optionsOffset(): number { return this.o + NS_LEN; }
  get optionsLength(): number { return this.n - NS_LEN; }
}

/** Neighbor Advertisement (RFC 4861 §4.4). */
export class NeighborAdvertView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < NA_LEN || o + n > b.length || b[o + TYPE] !== Icmpv6Type.NEIGHBOR_ADVERT) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get code(): number { return this.b[this.o + CODE]!; }
  get routerFlag(): boolean { return (this.b[this.o + NA_FLAGS]! & NaFlags.ROUTER) !== 0; }
  get solicitedFlag(): boolean { return (this.b[this.o + NA_FLAGS]! & NaFlags.SOLICITED) !== 0; }
  get overrideFlag(): boolean { return (this.b[this.o + NA_FLAGS]! & NaFlags.OVERRIDE) !== 0; }
  get targetAddrOffset(): number { return this.o + TARGET; }
  get optionsOffset(): number { return this.o + NA_LEN; }
  get optionsLength(): number { return this.n - NA_LEN; }
}

/**
 * A cursor over an NDP options area b[o, o+n). `while (r.next()) { ... r.type, r.offset, r.length }`;
 * afterwards `r.malformed` says whether the walk stopped at the end (false) or at an invalid
 * option (true: RFC 4861 §4.6 says to discard the whole message).
 */
export class NdpOptionReader {
  b: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private end = 0;
  /** The current option: its first byte, its length in bytes (a multiple of 8), its type. */
  offset = 0;
  length = 0;
  type = 0;
  malformed = false;

  reset(b: Uint8Array, o: number, n: number): void {
    this.b = b;
    this.pos = o;
    this.end = o + n > b.length ? b.length : o + n;
    this.offset = 0; this.length = 0; this.type = 0;
    this.malformed = o + n > b.length;
  }

  next(): boolean {
    if (this.malformed || this.pos >= this.end) return false;
    const p = this.pos;
    if (this.end - p < 2) { this.malformed = true; return false; }
    const len = this.b[p + OPT_LENGTH]! * 8;
    if (len === 0 || p + len > this.end) { this.malformed = true; return false; }
    this.offset = p; this.length = len; this.type = this.b[p + OPT_TYPE]!;
    this.pos = p + len;
    return true;
  }

  /** Walk the whole area: true when every option is well formed. */
  validate(b: Uint8Array, o: number, n: number): boolean {
    this.reset(b, o, n);
    while (this.next()) { /* walk */ }
    return !this.malformed;
  }

  /**
   * Offset of the MAC in the first Ethernet link-layer address option of `type` (1 source, 2
   * target) in b[o, o+n), or -1 when there is none (or the area is malformed). Options of that
   * type with another length (not Ethernet) are skipped.
   */
  findLinkLayerAddr(b: Uint8Array, o: number, n: number, type: number): number {
    this.reset(b, o, n);
    while (this.next()) {
      if (this.type === type && this.length === LL_ADDR_OPTION_LEN) return this.offset + LL_ADDR;
    }
    return -1;
  }
}

/** Prefix Information option (RFC 4861 §4.6.2). */
export class PrefixInfoView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < PREFIX_INFO_OPTION_LEN || o + n > b.length) return false;
    if (b[o + OPT_TYPE] !== NdpOptionType.PREFIX_INFO || b[o + OPT_LENGTH] !== PREFIX_INFO_OPTION_LEN / 8) return false;
    this.b = b; this.o = o;
    return true;
  }

  get prefixLength(): number { return this.b[this.o + PI_PREFIX_LENGTH]!; }
  get onLink(): boolean { return (this.b[this.o + PI_FLAGS]! & PrefixFlags.ON_LINK) !== 0; }
  get autonomous(): boolean { return (this.b[this.o + PI_FLAGS]! & PrefixFlags.AUTONOMOUS) !== 0; }
  /** Seconds; 0xffffffff: infinity. */
  get validLifetime(): number { return u32(this.b, this.o + PI_VALID); }
  get preferredLifetime(): number { return u32(this.b, this.o + PI_PREFERRED); }
  get prefixOffset(): number { return this.o + PI_PREFIX; }
}

/** MTU option (RFC 4861 §4.6.4). */
export class MtuOptionView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < MTU_OPTION_LEN || o + n > b.length) return false;
    if (b[o + OPT_TYPE] !== NdpOptionType.MTU || b[o + OPT_LENGTH] !== MTU_OPTION_LEN / 8) return false;
    this.b = b; this.o = o;
    return true;
  }

  get mtu(): number { return u32(this.b, this.o + MTU_VALUE); }
}

/** Recursive DNS Server option (RFC 8106 §5.1). */
export class RdnssView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  /** Option length in bytes. */
  n = 0;

  /** Length field 1 + 2k with k >= 1 (RFC 8106 §5.1: "the minimum value is 3"), inside b[o, o+n). */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < RDNSS_OPTION_MIN_LEN + 16 || o + n > b.length || b[o + OPT_TYPE] !== NdpOptionType.RDNSS) return false;
    const units = b[o + OPT_LENGTH]!;
    if (units < 3 || (units & 1) === 0 || units * 8 > n) return false;
    this.b = b; this.o = o; this.n = units * 8;
    return true;
  }

  /** Seconds the servers may be used; 0xffffffff: infinity, 0: stop using them. */
  get lifetime(): number { return u32(this.b, this.o + RDNSS_LIFETIME); }
  get addressCount(): number { return (this.n - RDNSS_ADDRS) >>> 4; }
  /** Offset of address i (0 <= i < addressCount). */
  addressOffset(i: number): number { return this.o + RDNSS_ADDRS + 16 * i; }
}

// ---- emitters: each writes whole fields (reserved ones zeroed) and returns the bytes written ----

/** Echo request/reply header; the checksum is left 0 (finishIcmpv6Checksum writes it last). */
export function emitIcmpv6Echo(b: Uint8Array, o: number, type: number, identifier: number, sequence: number): number {
  b[o + TYPE] = type;
  b[o + CODE] = 0;
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + IDENT, identifier);
  setU16(b, o + SEQ, sequence);
  return ICMPV6_HDR_LEN;
}

/** Error header (RFC 4443 §3): `rest` is the unused / MTU / pointer field. */
export function emitIcmpv6Error(b: Uint8Array, o: number, type: number, code: number, rest = 0): number {
  b[o + TYPE] = type;
  b[o + CODE] = code;
  setU16(b, o + CHECKSUM, 0);
  setU32(b, o + IDENT, rest >>> 0);
  return ICMPV6_HDR_LEN;
}

export function emitRouterSolicit(b: Uint8Array, o: number): number {
  b[o + TYPE] = Icmpv6Type.ROUTER_SOLICIT;
  b[o + CODE] = 0;
  setU16(b, o + CHECKSUM, 0);
  setU32(b, o + 4, 0);
  return RS_LEN;
}

/** `flags`: RaFlags bits. Times: router lifetime in s, reachable time and retrans timer in ms. */
export function emitRouterAdvert(b: Uint8Array, o: number, curHopLimit: number, flags: number, routerLifetime: number,
  reachableTime: number, retransTimer: number): number {
  b[o + TYPE] = Icmpv6Type.ROUTER_ADVERT;
  b[o + CODE] = 0;
  setU16(b, o + CHECKSUM, 0);
  b[o + CUR_HOP_LIMIT] = curHopLimit;
  b[o + RA_FLAGS] = flags & 0xc0;
  setU16(b, o + ROUTER_LIFETIME, routerLifetime);
  setU32(b, o + REACHABLE_TIME, reachableTime >>> 0);
  setU32(b, o + RETRANS_TIMER, retransTimer >>> 0);
  return RA_LEN;
}

export function emitNeighborSolicit(b: Uint8Array, o: number, target: Uint8Array, t: number): number {
  b[o + TYPE] = Icmpv6Type.NEIGHBOR_SOLICIT;
  b[o + CODE] = 0;
  setU16(b, o + CHECKSUM, 0);
  setU32(b, o + 4, 0);
  for (let i = 0; i < 16; i++) b[o + TARGET + i] = target[t + i]!;
  return NS_LEN;
}

/** `flags`: NaFlags bits. */
export function emitNeighborAdvert(b: Uint8Array, o: number, flags: number, target: Uint8Array, t: number): number {
  b[o + TYPE] = Icmpv6Type.NEIGHBOR_ADVERT;
  b[o + CODE] = 0;
  setU16(b, o + CHECKSUM, 0);
  setU32(b, o + NA_FLAGS, ((flags & 0xe0) << 24) >>> 0);
  for (let i = 0; i < 16; i++) b[o + TARGET + i] = target[t + i]!;
  return NA_LEN;
}

/** Source (1) or Target (2) Link-Layer Address option for an Ethernet MAC at mac[m]. */
export function emitLinkLayerAddrOption(b: Uint8Array, o: number, type: number, mac: Uint8Array, m: number): number {
  b[o + OPT_TYPE] = type;
  b[o + OPT_LENGTH] = LL_ADDR_OPTION_LEN / 8;
  for (let i = 0; i < 6; i++) b[o + LL_ADDR + i] = mac[m + i]!;
  return LL_ADDR_OPTION_LEN;
}

/** `flags`: PrefixFlags bits; lifetimes in seconds (0xffffffff: infinity). */
export function emitPrefixInfoOption(b: Uint8Array, o: number, prefixLength: number, flags: number,
  validLifetime: number, preferredLifetime: number, prefix: Uint8Array, p: number): number {
  b[o + OPT_TYPE] = NdpOptionType.PREFIX_INFO;
  b[o + OPT_LENGTH] = PREFIX_INFO_OPTION_LEN / 8;
  b[o + PI_PREFIX_LENGTH] = prefixLength;
  b[o + PI_FLAGS] = flags & 0xc0;
  setU32(b, o + PI_VALID, validLifetime >>> 0);
  setU32(b, o + PI_PREFERRED, preferredLifetime >>> 0);
  setU32(b, o + PI_RESERVED2, 0);
  for (let i = 0; i < 16; i++) b[o + PI_PREFIX + i] = prefix[p + i]!;
  return PREFIX_INFO_OPTION_LEN;
}

export function emitMtuOption(b: Uint8Array, o: number, mtu: number): number {
  b[o + OPT_TYPE] = NdpOptionType.MTU;
  b[o + OPT_LENGTH] = MTU_OPTION_LEN / 8;
  setU16(b, o + MTU_RESERVED, 0);
  setU32(b, o + MTU_VALUE, mtu >>> 0);
  return MTU_OPTION_LEN;
}

/** RDNSS with the given 16-byte addresses (at least one), lifetime in seconds. */
export function emitRdnssOption(b: Uint8Array, o: number, lifetime: number, servers: readonly Uint8Array[]): number {
  const len = RDNSS_OPTION_MIN_LEN + 16 * servers.length;
  b[o + OPT_TYPE] = NdpOptionType.RDNSS;
  b[o + OPT_LENGTH] = len / 8;
  setU16(b, o + RDNSS_RESERVED, 0);
  setU32(b, o + RDNSS_LIFETIME, lifetime >>> 0);
  for (let k = 0; k < servers.length; k++) {
    const s = servers[k]!;
    for (let i = 0; i < 16; i++) b[o + RDNSS_ADDRS + 16 * k + i] = s[i]!;
  }
  return len;
}

/**
 * Write the checksum of the message b[o, o+length) sent from the address at ip[srcOff] to the one
 * at ip[dstOff] (usually the IPv6 header in front of it).
 */
export function finishIcmpv6Checksum(b: Uint8Array, o: number, length: number, ip: Uint8Array, srcOff: number, dstOff: number): void {
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + CHECKSUM, checksum(b, o, length, pseudoHeaderSum6(ip, srcOff, ip, dstOff, ICMPV6_NEXT_HEADER, length)));
}
