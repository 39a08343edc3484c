// TCP (RFC 9293) header view and emitter.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |          Source Port          |       Destination Port        |
// |                        Sequence Number                        |
// |                    Acknowledgment Number                      |
// |  Data |       |C|E|U|A|P|R|S|F|                               |
// | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
// |           Checksum            |         Urgent Pointer        |
// |                    Options (if Data Offset > 5)               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import { setU16, setU32, u16, u32 } from './bytes';

export const TCP_HDR_LEN = 20;
export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;
export const TcpOption = { END: 0, NOP: 1, MSS: 2, WINDOW_SCALE: 3, SACK_PERMITTED: 4, SACK: 5, TIMESTAMPS: 8 } as const;

const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DATA_OFFSET = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;

/** Options a SYN may carry; filled in place by parseTcpOptions (no allocation). */
export interface TcpSynOptions {
  mss: number;          // 0 = absent
  windowScale: number;  // -1 = absent
  sackPermitted: boolean;
  timestamps: boolean;
}

export function newTcpSynOptions(): TcpSynOptions {
  return { mss: 0, windowScale: -1, sackPermitted: false, timestamps: false };
}

export class TcpView {
  b: Uint8Array = new Uint8Array(0);
  o = 0;
  n = 0;
  hl = 0;

  /** The only length check: the header and its options fit in n bytes. */
  bind(b: Uint8Array, o: number, n: number): boolean {
    if (n < TCP_HDR_LEN || o + n > b.length) return false;
    const hl = (b[o + DATA_OFFSET]! >> 4) * 4;
    if (hl < TCP_HDR_LEN || hl > n) return false;
    this.b = b; this.o = o; this.n = n; this.hl = hl;
    return true;
  }

  get srcPort(): number { return u16(this.b, this.o + SRC_PORT); }
  get dstPort(): number { return u16(this.b, this.o + DST_PORT); }
  get seqNumber(): number { return u32(this.b, this.o + SEQ); }
  get ackNumber(): number { return u32(this.b, this.o + ACK); }
  get headerLength(): number { return this.hl; }
  get flags(): number { return this.b[this.o + FLAGS]!; }
  get fin(): boolean { return (this.b[this.o + FLAGS]! & TcpFlags.FIN) !== 0; }
  get syn(): boolean { return (this.b[this.o + FLAGS]! & TcpFlags.SYN) !== 0; }
  get rst(): boolean { return (this.b[this.o + FLAGS]! & TcpFlags.RST) !== 0; }
  get ack(): boolean { return (this.b[this.o + FLAGS]! & TcpFlags.ACK) !== 0; }
  get windowLen(): number { return u16(this.b, this.o + WINDOW); }
  get checksum(): number { return u16(this.b, this.o + CHECKSUM); }
  get urgentPointer(): number { return u16(this.b, this.o + URGENT); }
  get payloadOffset(): number { return this.o + this.hl; }
  get payloadLength(): number { return this.n - this.hl; }
  /** Sequence space the segment occupies (SYN and FIN count one each). */
  get segmentLength(): number {
    const f = this.b[this.o + FLAGS]!;
    return this.n - this.hl + (f & TcpFlags.SYN ? 1 : 0) + (f & TcpFlags.FIN ? 1 : 0);
  }

  /**
   * Parse the options a SYN carries into `out`. Malformed options end the parse (what was read
   * so far stands), as a real stack would ignore what it cannot understand.
   */
  parseSynOptions(out: TcpSynOptions): void {
    out.mss = 0; out.windowScale = -1; out.sackPermitted = false; out.timestamps = false;
    const b = this.b;
    let i = this.o + TCP_HDR_LEN;
    const end = this.o + this.hl;
    while (i < end) {
      const kind = b[i]!;
      if (kind === TcpOption.END) break;
      if (kind === TcpOption.NOP) { i++; continue; }
      if (i + 1 >= end) break;
      const len = b[i + 1]!;
      if (len < 2 || i + len > end) break;
      if (kind === TcpOption.MSS && len === 4) out.mss = u16(b, i + 2);
      else if (kind === TcpOption.WINDOW_SCALE && len === 3) out.windowScale = Math.min(b[i + 2]!, 14);
      else if (kind === TcpOption.SACK_PERMITTED && len === 2) out.sackPermitted = true;
      else if (kind === TcpOption.TIMESTAMPS && len === 10) out.timestamps = true;
      i += len;
    }
  }
}

/**
 * Write a TCP header of `hl` bytes (20 + options, a multiple of 4). The checksum field is left 0;
 * the caller fills it (pseudo-header seed for NEEDS_CSUM, or a full sum without offloads).
 * Options, when hl > 20, are written by the caller at o+20.
 */
export function emitTcpHeader(b: Uint8Array, o: number, srcPort: number, dstPort: number, seq: number,
  ack: number, flags: number, window: number, hl = TCP_HDR_LEN): void {
  setU16(b, o + SRC_PORT, srcPort);
  setU16(b, o + DST_PORT, dstPort);
  setU32(b, o + SEQ, seq);
  setU32(b, o + ACK, ack);
  b[o + DATA_OFFSET] = (hl / 4) << 4;
  b[o + FLAGS] = flags;
  setU16(b, o + WINDOW, window);
  setU16(b, o + CHECKSUM, 0);
  setU16(b, o + URGENT, 0);
}

export function setTcpChecksum(b: Uint8Array, o: number, value: number): void {
  setU16(b, o + CHECKSUM, value);
}

/** Patch the fields that change between segments of one flow (header template reuse). */
export function patchTcpHeader(b: Uint8Array, o: number, seq: number, ack: number, flags: number, window: number): void {
  setU32(b, o + SEQ, seq);
  setU32(b, o + ACK, ack);
  b[o + FLAGS] = flags;
  setU16(b, o + WINDOW, window);
  setU16(b, o + CHECKSUM, 0);
}

/** MSS (4) + NOP + window scale (3) = 8 bytes of SYN-ACK options at b[o]. */
export function emitSynAckOptions(b: Uint8Array, o: number, mss: number, windowScale: number): number {
  b[o] = TcpOption.MSS; b[o + 1] = 4; setU16(b, o + 2, mss);
  if (windowScale < 0) return 4;
  b[o + 4] = TcpOption.NOP;
  b[o + 5] = TcpOption.WINDOW_SCALE; b[o + 6] = 3; b[o + 7] = windowScale;
  return 8;
}
