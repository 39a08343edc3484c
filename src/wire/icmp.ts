// ICMPv4 (RFC 792): echo and destination unreachable are all tapswitch sends or reads.
//
//  0      1      2        4            6           8
//  +------+------+--------+------------+-----------+------
//  | type | code |checksum| identifier | sequence  | data      (echo)
//  | type | code |checksum|  unused / next-hop MTU | original IP header + 8 bytes (errors)
import { setU16, u16 } from './bytes';
import { checksum } from './checksum';

export const ICMP_HDR_LEN = 8;
export const IcmpType = { ECHO_REPLY: 0, DEST_UNREACHABLE: 3, ECHO_REQUEST: 8, TIME_EXCEEDED: 11 } as const;
export const IcmpUnreachCode = { NET: 0, HOST: 1, PROTOCOL: 2, PORT: 3, FRAG_NEEDED: 4, NET_PROHIBITED: 9, HOST_PROHIBITED: 10, ADMIN_PROHIBITED: 13 } as const;

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const IDENT = 4;
const SEQ = 6;

export class IcmpView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < ICMP_HDR_LEN || o + n > b.length) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get type(): number { return this.b[this.o + TYPE]!; }
  get code(): number { return this.b[this.o + CODE]!; }
  get checksum(): number { return u16(this.b, this.o + CHECKSUM); }
  get identifier(): number { return u16(this.b, this.o + IDENT); }
  get sequence(): number { return u16(this.b, this.o + SEQ); }
  get payloadOffset(): number { return this.o + ICMP_HDR_LEN; }
  get payloadLength(): number { return this.n - ICMP_HDR_LEN; }
  get checksumValid(): boolean { return checksum(this.b, this.o, this.n) === 0; }
}

/** Header for echo messages; the checksum covers b[o, o+totalLength) and is written last. */
export function emitIcmpEcho(b: Uint8Array, o: number, type: number, identifier: number, sequence: number): void {
  b[o + TYPE] = type;
  b[o + CODE] = 0;
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + IDENT, identifier);
  setU16(b, o + SEQ, sequence);
}

/** Header for an error message (unreachable etc.); `rest` is the 32-bit field after the checksum. */
export function emitIcmpError(b: Uint8Array, o: number, type: number, code: number, rest = 0): void {
  b[o + TYPE] = type;
  b[o + CODE] = code;
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + IDENT, (rest >>> 16) & 0xffff);
  setU16(b, o + SEQ, rest & 0xffff);
}

export function finishIcmpChecksum(b: Uint8Array, o: number, totalLength: number): void {
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + CHECKSUM, checksum(b, o, totalLength));
}

export function setIcmpIdentifier(b: Uint8Array, o: number, identifier: number): void {
  setU16(b, o + IDENT, identifier);
}
