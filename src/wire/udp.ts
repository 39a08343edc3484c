// UDP (RFC 768).
//
//  0      2      4      6        8
//  +------+------+------+--------+-------
//  | src  | dst  |length|checksum| data
//  +------+------+------+--------+-------
import { setU16, u16 } from './bytes';

export const UDP_HDR_LEN = 8;

const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;

export class UdpView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  len = 0;

  /** The only length check: the Length field fits what the IP layer gave us. */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < UDP_HDR_LEN || o + n > b.length) return false;
    const len = u16(b, o + LENGTH);
    if (len < UDP_HDR_LEN || len > n) return false;
    this.b = b; this.o = o; this.len = len;
    return true;
  }

  get srcPort(): number { return u16(this.b, this.o + SRC_PORT); }
  get dstPort(): number { return u16(this.b, this.o + DST_PORT); }
  get length(): number { return this.len; }
  get checksum(): number { return u16(this.b, this.o + CHECKSUM); }
  get payloadOffset(): number { return this.o + UDP_HDR_LEN; }
  get payloadLength(): number { return this.len - UDP_HDR_LEN; }
}

/** Header with checksum 0; the caller fills it (or leaves 0, legal for IPv4). */
export function emitUdpHeader(b: Uint8Array, o: number, srcPort: number, dstPort: number, length: number): void {
  setU16(b, o + SRC_PORT, srcPort);
  setU16(b, o + DST_PORT, dstPort);
  setU16(b, o + LENGTH, length);
  setU16(b, o + CHECKSUM, 0);
}

export function setUdpChecksum(b: Uint8Array, o: number, value: number): void {
  setU16(b, o + CHECKSUM, value);
}
