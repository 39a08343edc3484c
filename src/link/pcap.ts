// A pcap writer for `--pcap FILE`: every frame the data path reads or writes can be copied here and
// opened later with tcpdump or Wireshark.
//
// Theory of operation. Frames inside tapswitch begin with the 10-byte virtio-net header; the file
// holds plain Ethernet frames (classic libpcap format, LINKTYPE_ETHERNET), so the header is
// stripped. Superframes are written as they are (up to ~64 KiB): tcpdump shows one large TCP
// segment, which is exactly what crossed the TAP. Records are appended to one preallocated buffer
// and written with synchronous fs calls when it fills, on a timer, and on close(). This is a
// debugging aid on the packet path, so nothing here throws after open(): a failed write is counted,
// the buffered records are dropped and the file is cut back to its last whole record (writes are
// positional for that reason); after repeated failures the writer stops trying.
//
// File layout (all fields little-endian, as written by the host that made the file):
//
//   global header (24): magic a1b2c3d4 | version 2.4 | thiszone 0 | sigfigs 0 | snaplen | linktype 1
//   per frame     (16): ts_sec | ts_usec | incl_len | orig_len, then incl_len bytes of frame
import * as fs from 'node:fs';

export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const LINKTYPE_ETHERNET = 1;
export const PCAP_GLOBAL_HDR_LEN = 24;
export const PCAP_RECORD_HDR_LEN = 16;
/** tcpdump's own maximum snap length; larger than any frame a TAP can carry (14 + 65535). */
export const PCAP_DEFAULT_SNAPLEN = 262_144;
const VNET_HDR_LEN = 10;
/** Consecutive failed writes after which the writer gives up (counted as `disabled`). */
const MAX_CONSECUTIVE_ERRORS = 8;

export interface PcapOptions {
  /** Bytes buffered before a write; at least one maximum-size record. Default 1 MiB. */
  bufferSize?: number;
  /** Flush buffered records this often (ms); 0 disables the timer. Default 1000. */
  flushIntervalMs?: number;
  snaplen?: number;
  /** Wall clock in milliseconds with a fractional part (for tests). */
  now?: () => number;
}

export interface PcapCounters {
  /** Frames recorded (written or buffered). */
  frames: number;
  /** Ethernet bytes recorded (after truncation to snaplen). */
  bytes: number;
  /** Frames not recorded: shorter than the virtio-net header, after close, or lost to a failed write. */
  dropped: number;
  /** Failed fs writes. */
  errors: number;
  flushes: number;
}

/** Error thrown by PcapWriter.open() only (the CLI edge); carries a stable code. */
export class PcapOpenError extends Error {
  readonly code = 'ERR_PCAP_OPEN';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PcapOpenError';
  }
}

function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export class PcapWriter {
  readonly counters: PcapCounters = { frames: 0, bytes: 0, dropped: 0, errors: 0, flushes: 0 };
  readonly snaplen: number;
  private fd: number;
  private readonly buf: Buffer;
  private readonly dv: DataView;
  private used = 0;
  /** Records sitting in buf, so a failed write can move them from frames/bytes to dropped. */
  private pending = 0;
  private pendingBytes = 0;
  private consecutiveErrors = 0;
  /** Bytes of whole records in the file; writes are positional so a failed one can be cut off. */
  private fileSize = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  private constructor(fd: number, opts: PcapOptions) {
    this.fd = fd;
    this.snaplen = opts.snaplen ?? PCAP_DEFAULT_SNAPLEN;
    this.now = opts.now ?? wallClockMs;
    const size = Math.max(opts.bufferSize ?? 1 << 20, PCAP_GLOBAL_HDR_LEN + PCAP_RECORD_HDR_LEN + 65_600);
    this.buf = Buffer.allocUnsafe(size);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    const interval = opts.flushIntervalMs ?? 1000;
    if (interval > 0) {
      this.timer = setInterval(() => this.flush(), interval);
      this.timer.unref();
    }
  }

  /**
   * Create (truncate) `path` and write the global header. Throws PcapOpenError: this runs at
   * start-up, where a clear error beats a silently missing capture.
   */
  static open(path: string, opts: PcapOptions = {}): PcapWriter {
    const snaplen = opts.snaplen ?? PCAP_DEFAULT_SNAPLEN;
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > 0x7fffffff) {
      throw new PcapOpenError(`pcap snaplen ${snaplen} is not a positive 32-bit integer`);
    }
    let fd: number;
    try {
      fd = fs.openSync(path, 'w', 0o644);
    } catch (err) {
      throw new PcapOpenError(`cannot create pcap file ${path}: ${(err as Error).message}`, { cause: err });
    }
    const w = new PcapWriter(fd, opts);
    const dv = w.dv;
    dv.setUint32(0, PCAP_MAGIC_USEC, true);
    dv.setUint16(4, PCAP_VERSION_MAJOR, true);
    dv.setUint16(6, PCAP_VERSION_MINOR, true);
    dv.setInt32(8, 0, true);   // thiszone: timestamps are UTC
    dv.setUint32(12, 0, true); // sigfigs
    dv.setUint32(16, snaplen, true);
    dv.setUint32(20, LINKTYPE_ETHERNET, true);
    w.used = PCAP_GLOBAL_HDR_LEN;
    try {
      w.writeOut();
    } catch (err) {
      w.closeQuietly();
      throw new PcapOpenError(`cannot write pcap file ${path}: ${(err as Error).message}`, { cause: err });
    }
    return w;
  }

  get isOpen(): boolean { return this.fd >= 0; }

  /** Record the frame b[off, off+len), which begins with the virtio-net header. Never throws. */
  writeFrame(b: Uint8Array, off: number, len: number): void {
    if (this.fd < 0 || len < VNET_HDR_LEN || off < 0 || off + len > b.length) {
      this.counters.dropped++;
      return;
    }
    const ethLen = len - VNET_HDR_LEN;
    const incl = Math.min(ethLen, this.snaplen);
    if (!this.reserve(incl)) return;
    this.recordHeader(incl, ethLen);
    this.buf.set(b.subarray(off + VNET_HDR_LEN, off + VNET_HDR_LEN + incl), this.used);
    this.used += incl;
    this.recorded(incl);
  }

  /** Record a frame given as parts (as Device.send takes it); parts[0] begins with the header. */
  writeParts(parts: readonly Uint8Array[]): void {
    let total = 0;
    for (const p of parts) total += p.length;
    if (this.fd < 0 || total < VNET_HDR_LEN) {
      this.counters.dropped++;
      return;
    }
    const ethLen = total - VNET_HDR_LEN;
    const incl = Math.min(ethLen, this.snaplen);
    if (!this.reserve(incl)) return;
    this.recordHeader(incl, ethLen);
    let skip = VNET_HDR_LEN;
    let left = incl;
    for (const p of parts) {
      if (left === 0) break;
      if (skip >= p.length) { skip -= p.length; continue; }
      const n = Math.min(p.length - skip, left);
      this.buf.set(p.subarray(skip, skip + n), this.used);
      this.used += n; left -= n; skip = 0;
    }
    this.recorded(incl);
  }

  /** Write buffered records to the file. Never throws. */
  flush(): void {
    if (this.fd < 0 || this.used === 0) return;
    try {
      this.writeOut();
      this.consecutiveErrors = 0;
    } catch {
      // Cut off a partially written record so the file stays readable up to the last good one.
      try { fs.ftruncateSync(this.fd, this.fileSize); } catch { /* the next write will tell */ }
      this.counters.errors++;
      this.counters.dropped += this.pending;
      this.counters.frames -= this.pending;
      this.counters.bytes -= this.pendingBytes;
      this.used = 0;
      this.pending = 0;
      this.pendingBytes = 0;
      if (++this.consecutiveErrors >= MAX_CONSECUTIVE_ERRORS) this.closeQuietly();
    }
  }

  /** Flush and close the file; later frames are counted as dropped. Never throws. */
  close(): void {
    this.flush();
    this.closeQuietly();
  }

  /** Make room for one record of `incl` captured bytes, flushing first if needed. */
  private reserve(incl: number): boolean {
    const need = PCAP_RECORD_HDR_LEN + incl;
    if (need > this.buf.length) {
      // Only with a snaplen larger than the buffer: such a frame cannot be recorded.
      this.counters.dropped++;
      return false;
    }
    if (this.used + need > this.buf.length) this.flush();
    if (this.fd < 0) {
      this.counters.dropped++;
      return false;
    }
    return true;
  }

  private recordHeader(incl: number, orig: number): void {
    const t = this.now();
    let sec = Math.floor(t / 1000);
    let usec = Math.round((t - sec * 1000) * 1000);
    if (usec >= 1_000_000) { sec++; usec -= 1_000_000; }
    const o = this.used;
    this.dv.setUint32(o, sec >>> 0, true);
    this.dv.setUint32(o + 4, usec, true);
    this.dv.setUint32(o + 8, incl, true);
    this.dv.setUint32(o + 12, orig, true);
    this.used += PCAP_RECORD_HDR_LEN;
  }

  private recorded(incl: number): void {
    this.pending++;
    this.pendingBytes += incl;
    this.counters.frames++;
    this.counters.bytes += incl;
  }

  /** Write buf[0, used) completely; throws on an fs error (callers decide what that means). */
  private writeOut(): void {
    let done = 0;
    while (done < this.used) {
      const n = fs.writeSync(this.fd, this.buf, done, this.used - done, this.fileSize + done);
      if (n <= 0) throw new Error('pcap: write made no progress');
      done += n;
    }
    this.fileSize += this.used;
    this.used = 0;
    this.pending = 0;
    this.pendingBytes = 0;
    this.counters.flushes++;
  }

  private closeQuietly(): void {
    if (this.timer) { clearInterval(this.timer); this.timer = null; }
    if (this.fd < 0) return;
    try { fs.closeSync(this.fd); } catch { this.counters.errors++; }
    this.fd = -1;
  }
}
