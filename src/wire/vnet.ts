// The virtio-net header (struct virtio_net_hdr, 10 bytes, little-endian) that precedes every frame
// on a TAP opened with IFF_VNET_HDR. Inside tapswitch every frame carries it, even when the TAP
// has none (the link layer adds/strips a zero header), so one frame format flows everywhere.
//
//  0      1         2        4         6           8            10
//  +------+---------+--------+---------+-----------+------------+
//  |flags |gso_type | hdr_len| gso_size| csum_start| csum_offset|
//  +------+---------+--------+---------+-----------+------------+
import { setU16le, u16le } from './bytes';

export const VNET_HDR_LEN = 10;

export const VnetFlags = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
export const GsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

const FLAGS = 0;
const GSO_TYPE = 1;
const HDR_LEN = 2;
const GSO_SIZE = 4;
const CSUM_START = 6;
const CSUM_OFFSET = 8;

export function vnetFlags(b: Uint8Array, o: number): number { return b[o + FLAGS]!; }
export function vnetGsoType(b: Uint8Array, o: number): number { return b[o + GSO_TYPE]!; }
export function vnetHdrLen(b: Uint8Array, o: number): number { return u16le(b, o + HDR_LEN); }
export function vnetGsoSize(b: Uint8Array, o: number): number { return u16le(b, o + GSO_SIZE); }
export function vnetCsumStart(b: Uint8Array, o: number): number { return u16le(b, o + CSUM_START); }
export function vnetCsumOffset(b: Uint8Array, o: number): number { return u16le(b, o + CSUM_OFFSET); }

/** Write a whole header. csumStart/csumOffset are relative to the Ethernet frame's first byte. */
export function emitVnetHeader(b: Uint8Array, o: number, flags: number, gsoType: number,
  hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): void {
  b[o + FLAGS] = flags;
  b[o + GSO_TYPE] = gsoType;
  setU16le(b, o + HDR_LEN, hdrLen);
  setU16le(b, o + GSO_SIZE, gsoSize);
  setU16le(b, o + CSUM_START, csumStart);
  setU16le(b, o + CSUM_OFFSET, csumOffset);
}

export function emitVnetNone(b: Uint8Array, o: number): void {
  b.fill(0, o, o + VNET_HDR_LEN);
}
