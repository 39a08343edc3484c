// DHCPv4 (RFC 2131) messages and their options (RFC 2132). The fixed BOOTP part is a view like the
// other protocols; options are type-length-value records after the magic cookie. All bounds are
// checked once in bind(): it walks every option record, so a truncated option makes the whole
// message malformed, and afterwards findOption() and the accessors cannot read out of bounds.
// Option overloading (option 52: options continued in `sname`/`file`) is not supported: those
// fields are ignored, which is what a server that never asks for overload may do.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +---------------+---------------+---------------+---------------+
// |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
// +---------------+---------------+---------------+---------------+
// |                            xid (4)                            |
// +-------------------------------+-------------------------------+
// |           secs (2)            |           flags (2)           |
// +-------------------------------+-------------------------------+
// |                          ciaddr  (4)                          |
// |                          yiaddr  (4)                          |
// |                          siaddr  (4)                          |
// |                          giaddr  (4)                          |
// |                          chaddr  (16)                         |
// |                          sname   (64)                         |
// |                          file    (128)                        |
// +---------------------------------------------------------------+
// |          magic cookie 99.130.83.99 (4)                        |
// |          options (variable, code/len/value, ends with 255)    |
// +---------------------------------------------------------------+
import { setU16, setU32, u16, u32 } from './bytes';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
/** Fixed part plus the magic cookie: the shortest message we accept. */
export const DHCP_FIXED_LEN = 240;
/** BOOTP's minimum message size (RFC 1542 2.1): replies are padded up to it. */
export const DHCP_MIN_LEN = 300;
export const DHCP_MAGIC_COOKIE = 0x63825363;
/** The `flags` bit a client sets when it cannot receive unicast before it is configured. */
export const DHCP_FLAG_BROADCAST = 0x8000;

export const BootpOp = { REQUEST: 1, REPLY: 2 } as const;

export const DhcpMessageType = {
  DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8,
} as const;
export type DhcpMessageType = (typeof DhcpMessageType)[keyof typeof DhcpMessageType];

/** The option codes tapswitch reads or writes (RFC 2132 sections in comments). */
export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1, // 3.3
  ROUTER: 3, // 3.5
  DNS_SERVER: 6, // 3.8
  HOST_NAME: 12, // 3.14
  INTERFACE_MTU: 26, // 5.1
  BROADCAST_ADDRESS: 28, // 5.3
  REQUESTED_IP: 50, // 9.1
  LEASE_TIME: 51, // 9.2
  OVERLOAD: 52, // 9.3
  MESSAGE_TYPE: 53, // 9.6
  SERVER_ID: 54, // 9.7
  PARAMETER_REQUEST_LIST: 55, // 9.8
  MESSAGE: 56, // 9.9
  MAX_MESSAGE_SIZE: 57, // 9.10
  RENEWAL_TIME: 58, // 9.11
  REBINDING_TIME: 59, // 9.12
  VENDOR_CLASS_ID: 60, // 9.13
  CLIENT_ID: 61, // 9.14
  END: 255,
} as const;

const OP = 0;
const HTYPE = 1;
const HLEN = 2;
const HOPS = 3;
const XID = 4;
const SECS = 8;
const FLAGS = 10;
const CIADDR = 12;
const YIADDR = 16;
const SIADDR = 20;
const GIADDR = 24;
const CHADDR = 28;
const SNAME = 44;
const FILE = 108;
const COOKIE = 236;
const OPTIONS = 240;

/** A view over one DHCP message (the UDP payload) at b[o, o+n). Rebind per message. */
export class DhcpView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;
  /** Where the options end: the END option, or the end of the message if END is missing. */
  optionsEnd = 0;
  /** Length of the value found by the last successful findOption(). */
  optionLength = 0;

  /**
   * The only check: fixed part present, magic cookie right, and every option record inside the
   * message. False means "drop this message".
   */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < DHCP_FIXED_LEN || o < 0 || o + n > b.length) return false;
    if (u32(b, o + COOKIE) !== DHCP_MAGIC_COOKIE) return false;
    const end = o + n;
    let p = o + OPTIONS;
    while (p < end) {
      const code = b[p]!;
      if (code === DhcpOption.END) break;
      if (code === DhcpOption.PAD) { p++; continue; }
      if (p + 2 > end) return false;
      const next = p + 2 + b[p + 1]!;
      if (next > end) return false;
      p = next;
    }
    this.b = b; this.o = o; this.n = n; this.optionsEnd = p;
    return true;
  }

  get op(): number { return this.b[this.o + OP]!; }
  get htype(): number { return this.b[this.o + HTYPE]!; }
  get hlen(): number { return this.b[this.o + HLEN]!; }
  get hops(): number { return this.b[this.o + HOPS]!; }
  get xid(): number { return u32(this.b, this.o + XID); }
  get secs(): number { return u16(this.b, this.o + SECS); }
  get flags(): number { return u16(this.b, this.o + FLAGS); }
  get broadcastFlag(): boolean { return (this.flags & DHCP_FLAG_BROADCAST) !== 0; }
  get ciaddr(): number { return u32(this.b, this.o + CIADDR); }
  get yiaddr(): number { return u32(this.b, this.o + YIADDR); }
  get siaddr(): number { return u32(this.b, this.o + SIADDR); }
  get giaddr(): number { return u32(this.b, this.o + GIADDR); }
  /** Offset of the 16-byte client hardware address field (the MAC is its first `hlen` bytes). */
  get chaddrOffset(): number { return this.o + CHADDR; }
  get optionsOffset(): number { return this.o + OPTIONS; }

  /**
   * Offset of the value of the first option `code`, or -1 when absent; its length is left in
   * `optionLength`. PAD and END cannot be looked up.
   */
  findOption(code: number): number {
    const b = this.b;
    const end = this.optionsEnd;
    let p = this.o + OPTIONS;
    while (p < end) {
      const c = b[p]!;
      if (c === DhcpOption.PAD) { p++; continue; }
      const len = b[p + 1]!;
      if (c === code) { this.optionLength = len; return p + 2; }
      p += 2 + len;
    }
    return -1;
  }

  /** A one-byte option's value (e.g. the message type), or -1 when absent or not one byte. */
  optionU8(code: number): number {
    const p = this.findOption(code);
    return p >= 0 && this.optionLength === 1 ? this.b[p]! : -1;
  }

  /** A four-byte option's value (an address or a time), or -1 when absent or not four bytes. */
  optionU32(code: number): number {
    const p = this.findOption(code);
    return p >= 0 && this.optionLength === 4 ? u32(this.b, p) : -1;
  }

  /** Option 53, or -1 when the message has none (then it is BOOTP, not DHCP). */
  get messageType(): number { return this.optionU8(DhcpOption.MESSAGE_TYPE); }
}

/**
 * Write the fixed part and the magic cookie (sname and file zeroed). The client hardware address
 * is copied from chaddr[chaddrOff, chaddrOff+6) (Ethernet: htype 1, hlen 6). Returns the offset at
 * which options start.
 */
export function emitDhcpHeader(b: Uint8Array, o: number, op: number, xid: number, secs: number, flags: number,
  ciaddr: number, yiaddr: number, siaddr: number, giaddr: number, chaddr: Uint8Array, chaddrOff: number): number {
  b[o + OP] = op;
  b[o + HTYPE] = 1;
  b[o + HLEN] = 6;
  b[o + HOPS] = 0;
  setU32(b, o + XID, xid);
  setU16(b, o + SECS, secs);
  setU16(b, o + FLAGS, flags);
  setU32(b, o + CIADDR, ciaddr);
  setU32(b, o + YIADDR, yiaddr);
  setU32(b, o + SIADDR, siaddr);
  setU32(b, o + GIADDR, giaddr);
  b.fill(0, o + CHADDR, o + COOKIE);
  for (let i = 0; i < 6; i++) b[o + CHADDR + i] = chaddr[chaddrOff + i]!;
  setU32(b, o + COOKIE, DHCP_MAGIC_COOKIE);
  return o + OPTIONS;
}

// Option emitters: each writes one record at p and returns the offset after it.

export function emitDhcpOptionU8(b: Uint8Array, p: number, code: number, value: number): number {
  b[p] = code; b[p + 1] = 1; b[p + 2] = value;
  return p + 3;
}

export function emitDhcpOptionU16(b: Uint8Array, p: number, code: number, value: number): number {
  b[p] = code; b[p + 1] = 2; setU16(b, p + 2, value);
  return p + 4;
}

export function emitDhcpOptionU32(b: Uint8Array, p: number, code: number, value: number): number {
  b[p] = code; b[p + 1] = 4; setU32(b, p + 2, value);
  return p + 6;
}

/** An option whose value is `value` (at most 255 bytes; longer values are cut). */
export function emitDhcpOptionBytes(b: Uint8Array, p: number, code: number, value: Uint8Array): number {
  const len = Math.min(value.length, 255);
  b[p] = code; b[p + 1] = len;
  b.set(value.subarray(0, len), p + 2);
  return p + 2 + len;
}

/**
 * Write END at p, then PAD up to DHCP_MIN_LEN bytes from the message start `o`. Returns the
 * message length.
 */
export function emitDhcpEnd(b: Uint8Array, o: number, p: number): number {
  b[p++] = DhcpOption.END;
  const min = o + DHCP_MIN_LEN;
  if (p < min) { b.fill(0, p, min); p = min; }
  return p - o;
}

// ---- Control-path representation (tests, tools): a plain object with parse/emit. ----

export interface DhcpRepr {
  op: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** 6 bytes. */
  chaddr: Uint8Array;
  /** Options in order, excluding PAD and END. */
  options: Array<[code: number, value: Uint8Array]>;
}

/** Bytes emitDhcp() writes for `r` (padded to DHCP_MIN_LEN). */
export function dhcpBufferLen(r: DhcpRepr): number {
  let n = OPTIONS + 1;
  for (const [, v] of r.options) n += 2 + Math.min(v.length, 255);
  return Math.max(n, DHCP_MIN_LEN);
}

export function emitDhcp(b: Uint8Array, o: number, r: DhcpRepr): number {
  let p = emitDhcpHeader(b, o, r.op, r.xid, r.secs, r.flags, r.ciaddr, r.yiaddr, r.siaddr, r.giaddr, r.chaddr, 0);
  for (const [code, value] of r.options) p = emitDhcpOptionBytes(b, p, code, value);
  return emitDhcpEnd(b, o, p);
}

/** Parse a whole message into a repr; null when malformed. */
export function parseDhcp(b: Uint8Array, o: number, n: number): DhcpRepr | null {
  const v = new DhcpView();
  if (!v.bind(b, o, n)) return null;
  const options: Array<[number, Uint8Array]> = [];
  let p = v.optionsOffset;
  while (p < v.optionsEnd) {
    const c = b[p]!;
    if (c === DhcpOption.PAD) { p++; continue; }
    const len = b[p + 1]!;
    options.push([c, b.slice(p + 2, p + 2 + len)]);
    p += 2 + len;
  }
  return {
    op: v.op, xid: v.xid, secs: v.secs, flags: v.flags, ciaddr: v.ciaddr, yiaddr: v.yiaddr,
    siaddr: v.siaddr, giaddr: v.giaddr, chaddr: b.slice(v.chaddrOffset, v.chaddrOffset + 6), options,
  };
}
