// A Device decorator for kernel-facing tests of TCP framing: it sits between a real TapDevice and
// the switch, records every TCP frame in both directions exactly as it crosses the TAP (virtio-net
// GSO fields, IP total length, frame length, sequence numbers, flags, window, SYN's MSS) and can
// inject one loss per rule: drop a frame, or cut a superframe after its first bytes (the "tail"
// lost, as when the last segments of a TSO burst vanish on a wire). Used by gso-kernel.test.ts.
//
// Direction names are from tapswitch's point of view: 'rx' = the container's kernel sent it (read
// from the TAP), 'tx' = tapswitch wrote it (to the container). A fault sees a frame before it is
// recorded; a dropped frame is recorded with `fault: 'drop'`, a cut one with the length it had on
// the wire after the cut and `fault: 'cut'`.
import type { Device, DeviceCounters, RxBatch } from '../../src/link/device';
import { checksum, fold, pseudoHeaderSum4 } from '../../src/wire/checksum';

export const OFF_ETH = 10;
export const OFF_IP = 24;

export interface TcpFrameRecord {
  dir: 'rx' | 'tx';
  /** Order of observation over both directions. */
  n: number;
  /** When it was seen (performance.now(), ms). */
  at: number;
  guestPort: number;
  remotePort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** TCP payload bytes (from the IP total length). */
  payload: number;
  ipTotalLength: number;
  /** Bytes of the frame on the TAP, virtio-net header included. */
  frameLength: number;
  vnetFlags: number;
  gsoType: number;
  gsoSize: number;
  /** MSS option of a SYN (0 when absent or not a SYN). */
  synMss: number;
  fault?: 'drop' | 'cut';
}

/** What a fault rule decides for one frame: pass it, drop it, or keep only `keep` payload bytes. */
export type FaultVerdict = 'pass' | 'drop' | { keep: number };
export type FaultRule = (r: TcpFrameRecord) => FaultVerdict;

const TCP_SYN = 0x02;

/** Parse a frame that starts with the 10-byte vnet header; null unless IPv4 + TCP. */
export function parseTcpFrame(b: Uint8Array, o: number, len: number, dir: 'rx' | 'tx', n: number): TcpFrameRecord | null {
  if (len < OFF_IP + 20) return null;
  if (b[o + OFF_ETH + 12] !== 0x08 || b[o + OFF_ETH + 13] !== 0x00) return null;
  const ip = o + OFF_IP;
  if (b[ip]! >> 4 !== 4 || b[ip + 9] !== 6) return null;
  const ihl = (b[ip]! & 0x0f) * 4;
  const total = (b[ip + 2]! << 8) | b[ip + 3]!;
  const t = ip + ihl;
  if (len < OFF_IP + ihl + 20) return null;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const doff = (b[t + 12]! >> 4) * 4;
  const sport = dv.getUint16(t);
  const dport = dv.getUint16(t + 2);
  const flags = b[t + 13]!;
  let synMss = 0;
  if (flags & TCP_SYN) {
    for (let i = t + 20; i < t + doff && i < o + len;) {
      const kind = b[i]!;
      if (kind === 0) break;
      if (kind === 1) { i++; continue; }
      const l = b[i + 1]!;
      if (kind === 2 && l === 4) synMss = dv.getUint16(i + 2);
      if (l < 2) break;
      i += l;
    }
  }
  return {
    dir, n, at: performance.now(),
    guestPort: dir === 'rx' ? sport : dport,
    remotePort: dir === 'rx' ? dport : sport,
    seq: dv.getUint32(t + 4),
    ack: dv.getUint32(t + 8),
    flags,
    window: dv.getUint16(t + 14),
    payload: total - ihl - doff,
    ipTotalLength: total,
    frameLength: len,
    vnetFlags: b[o]!,
    gsoType: b[o + 1]!,
    gsoSize: b[o + 4]! | (b[o + 5]! << 8),
    synMss,
  };
}

/**
 * Rewrite a TCP/IPv4 frame's header in place so it carries only the first `keep` payload bytes:
 * IP total length and header checksum, the NEEDS_CSUM pseudo-header seed, and the GSO fields (no
 * GSO once one segment is left). Returns the new frame length (vnet header included).
 */
export function cutFrameHeader(h: Uint8Array, keep: number): number {
  const ip = OFF_IP;
  const ihl = (h[ip]! & 0x0f) * 4;
  const t = ip + ihl;
  const doff = (h[t + 12]! >> 4) * 4;
  const total = ihl + doff + keep;
  h[ip + 2] = total >> 8; h[ip + 3] = total & 0xff;
  h[ip + 10] = 0; h[ip + 11] = 0;
  const c = checksum(h, ip, ihl);
  h[ip + 10] = c >> 8; h[ip + 11] = c & 0xff;
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  if (h[0]! & 1) {
    // NEEDS_CSUM: the checksum field holds the folded pseudo-header sum (tcp length changed)
    const seed = fold(pseudoHeaderSum4(dv.getUint32(ip + 12), dv.getUint32(ip + 16), 6, doff + keep));
    dv.setUint16(t + 16, seed);
  }
  const gsoSize = h[4]! | (h[5]! << 8);
  if (h[1] !== 0 && keep <= gsoSize) { h[1] = 0; h[4] = 0; h[5] = 0; }
  return OFF_IP + total;
}

export class ObservedDevice implements Device {
  readonly records: TcpFrameRecord[] = [];
  /** Frames dropped or cut by a fault rule. */
  readonly faults: TcpFrameRecord[] = [];
  rxFault: FaultRule | null = null;
  txFault: FaultRule | null = null;
  private seqNo = 0;
  private readonly offsets = new Int32Array(256);
  private readonly lengths = new Int32Array(256);
  private readonly slots = new Int32Array(256);

  constructor(readonly inner: Device) {}

  get name(): string { return this.inner.name; }
  get counters(): DeviceCounters { return this.inner.counters; }

  start(onBatch: (batch: RxBatch) => void): void {
    this.inner.start((batch) => {
      let k = 0;
      for (let i = 0; i < batch.count; i++) {
        const off = batch.offsets[i]!;
        let len = batch.lengths[i]!;
        const r = parseTcpFrame(batch.buf, off, len, 'rx', this.seqNo++);
        if (r !== null) {
          const v = this.rxFault ? this.rxFault(r) : 'pass';
          if (v === 'drop') {
            r.fault = 'drop';
            this.faults.push(r);
            this.records.push(r);
            continue;
          }
          if (v !== 'pass') {
            // cut in place: the slot is ours until the batch callback returns
            len = cutFrameHeader(batch.buf.subarray(off, off + OFF_IP + 60), v.keep);
            r.fault = 'cut';
            r.payload = v.keep;
            r.ipTotalLength = len - OFF_IP;
            r.frameLength = len;
            this.faults.push(r);
          }
          this.records.push(r);
        }
        this.offsets[k] = off;
        this.lengths[k] = len;
        this.slots[k] = batch.slots[i]!;
        k++;
      }
      if (k > 0) onBatch({ buf: batch.buf, count: k, offsets: this.offsets, lengths: this.lengths, slots: this.slots });
    });
  }

  retain(slot: number): void { this.inner.retain(slot); }
  release(slot: number): void { this.inner.release(slot); }

  send(parts: readonly Uint8Array[]): boolean {
    const h = parts[0]!;
    let total = 0;
    for (const p of parts) total += p.length;
    const r = parseTcpFrame(h, 0, h.length, 'tx', this.seqNo++);
    if (r === null) return this.inner.send(parts);
    r.frameLength = total;
    const v = this.txFault ? this.txFault(r) : 'pass';
    if (v === 'drop') {
      r.fault = 'drop';
      this.faults.push(r);
      this.records.push(r);
      return true; // lost after leaving us, as on a wire
    }
    if (v !== 'pass') {
      const head = Uint8Array.from(h);
      const newLen = cutFrameHeader(head, v.keep);
      const out: Uint8Array[] = [head];
      let want = newLen - head.length;
      for (let i = 1; i < parts.length && want > 0; i++) {
        const p = parts[i]!;
        const n = Math.min(p.length, want);
        out.push(p.subarray(0, n));
        want -= n;
      }
      r.fault = 'cut';
      r.payload = v.keep;
      r.ipTotalLength = newLen - OFF_IP;
      r.frameLength = newLen;
      this.faults.push(r);
      this.records.push(r);
      return this.inner.send(out);
    }
    this.records.push(r);
    return this.inner.send(parts);
  }

  sendRange(buf: Uint8Array, offset: number, length: number): boolean {
    const r = parseTcpFrame(buf, offset, length, 'tx', this.seqNo++);
    if (r !== null) this.records.push(r);
    return this.inner.sendRange(buf, offset, length);
  }

  close(): void { this.inner.close(); }

  /** Frames of one flow (by the guest's port), in observation order. */
  flow(guestPort: number, dir?: 'rx' | 'tx'): TcpFrameRecord[] {
    return this.records.filter((r) => r.guestPort === guestPort && (dir === undefined || r.dir === dir));
  }
}

/** Byte ranges a flow's data frames carried in one direction, relative to that side's ISN. */
export interface StreamView {
  /** Initial sequence number (from the SYN or SYN-ACK seen), or null if no SYN was seen. */
  isn: number | null;
  /** Data frames that crossed the TAP (dropped ones excluded), in order. */
  frames: Array<{ off: number; len: number; rec: TcpFrameRecord }>;
  /** Bytes covered by the union of the frames. */
  covered: number;
  /** Highest offset covered + 1. */
  end: number;
  /** Data frames that resent bytes already sent before (retransmissions seen on the wire). */
  resent: Array<{ off: number; len: number; rec: TcpFrameRecord }>;
}

export function streamOf(recs: TcpFrameRecord[], dir: 'rx' | 'tx'): StreamView {
  const mine = recs.filter((r) => r.dir === dir);
  const syn = mine.find((r) => (r.flags & TCP_SYN) !== 0);
  const isn = syn ? syn.seq : null;
  const base = isn !== null ? (isn + 1) >>> 0 : (mine.find((r) => r.payload > 0)?.seq ?? 0);
  const frames: StreamView['frames'] = [];
  const resent: StreamView['resent'] = [];
  let maxEnd = 0;
  for (const r of mine) {
    if (r.payload <= 0 || r.fault === 'drop') continue;
    const off = (r.seq - base) >>> 0;
    const f = { off, len: r.payload, rec: r };
    frames.push(f);
    if (off < maxEnd) resent.push(f);
    maxEnd = Math.max(maxEnd, off + r.payload);
  }
  const sorted = [...frames].sort((a, b) => a.off - b.off);
  let covered = 0;
  let reach = 0;
  for (const f of sorted) {
    const s = Math.max(f.off, reach);
    const e = f.off + f.len;
    if (e > s) { covered += e - s; reach = e; }
  }
  return { isn, frames, covered, end: maxEnd, resent };
}
