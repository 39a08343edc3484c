// Ethernet II (IEEE 802.3 framing without the FCS, as a TAP delivers it).
//
//  0                6                12          14
//  +----------------+----------------+-----------+---------
//  | destination    | source         | ethertype | payload
//  +----------------+----------------+-----------+---------
import { setU16, u16 } from './bytes';

export const ETH_HDR_LEN = 14;
export const EtherType = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, IPV6: 0x86dd } as const;

const DST = 0;
const SRC = 6;
const ETHERTYPE = 12;

/** A view over one Ethernet frame at b[o, o+n). Rebind per frame; never allocates. */
export class EthernetView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;

  /** The only length check: false means "drop this frame". */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < ETH_HDR_LEN || o + n > b.length) return false;
    this.b = b; this.o = o; this.n = n;
    return true;
  }

  get dstOffset(): number { return this.o + DST; }
  get srcOffset(): number { return this.o + SRC; }
  get etherType(): number { return u16(this.b, this.o + ETHERTYPE); }
  get payloadOffset(): number { return this.o + ETH_HDR_LEN; }
  get payloadLength(): number { return this.n - ETH_HDR_LEN; }
}

export function emitEthernet(b: Uint8Array, o: number, dst: Uint8Array, src: Uint8Array, etherType: number): void {
  b.set(dst.subarray(0, 6), o + DST);
  b.set(src.subarray(0, 6), o + SRC);
  setU16(b, o + ETHERTYPE, etherType);
}
