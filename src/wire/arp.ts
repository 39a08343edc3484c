// ARP for IPv4 over Ethernet (RFC 826). Only the one shape Ethernet/IPv4 uses is accepted.
//
//  0      2      4    5    6      8        14       18       24       28
//  +------+------+----+----+------+--------+--------+--------+--------+
//  | htype| ptype|hlen|plen| oper | sha    | spa    | tha    | tpa    |
//  +------+------+----+----+------+--------+--------+--------+--------+
import { setU16, setU32, u16, u32 } from './bytes';

export const ARP_LEN = 28;
export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;

const HTYPE = 0;
const PTYPE = 2;
const HLEN = 4;
const PLEN = 5;
const OPER = 6;
const SHA = 8;
const SPA = 14;
const THA = 18;
const TPA = 24;

export class ArpView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;

  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < ARP_LEN || o + n > b.length) return false;
    if (u16(b, o + HTYPE) !== 1 || u16(b, o + PTYPE) !== 0x0800 || b[o + HLEN] !== 6 || b[o + PLEN] !== 4) return false;
    this.b = b; this.o = o;
    return true;
  }

  get oper(): number { return u16(this.b, this.o + OPER); }
  get shaOffset(): number { return this.o + SHA; }
  get spa(): number { return u32(this.b, this.o + SPA); }
  get thaOffset(): number { return this.o + THA; }
  get tpa(): number { return u32(this.b, this.o + TPA); }
}

export function emitArp(b: Uint8Array, o: number, oper: number, sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number): void {
  setU16(b, o + HTYPE, 1);
  setU16(b, o + PTYPE, 0x0800);
  b[o + HLEN] = 6;
  b[o + PLEN] = 4;
  setU16(b, o + OPER, oper);
  b.set(sha.subarray(0, 6), o + SHA);
  setU32(b, o + SPA, spa);
  b.set(tha.subarray(0, 6), o + THA);
  setU32(b, o + TPA, tpa);
}
