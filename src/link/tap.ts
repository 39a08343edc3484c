// A TAP queue fd as a Device: a uv_poll on this thread's loop, non-blocking batched reads into a
// slot pool, writev of frame parts with no userspace copy.
import { native } from './native';
import { type Device, type DeviceCounters, type RxBatch, newDeviceCounters } from './device';
import { SlotPool } from './slots';
import { VNET_HDR_LEN } from '../wire/vnet';

/** vnet header (10) + Ethernet (14) + the largest IPv4/IPv6 packet (65535), rounded up to 64. */
export const SLOT_SIZE = 65_600;
export const DEFAULT_SLOTS = 64;
/** Frames per read batch: bounds the time one poll callback holds the thread. */
const BATCH = 32;

export interface TapDeviceOptions {
  name?: string;
  /** The fd carries the virtio-net header. If not, one is synthesized/stripped here. */
  vnetHdr: boolean;
  slots?: number;
}

export class TapDevice implements Device {
  readonly name: string;
  readonly counters: DeviceCounters = newDeviceCounters();
  private readonly pool: SlotPool;
  private readonly headroom: number;
  private readonly slotIdx = new Int32Array(BATCH);
  private readonly lens = new Int32Array(BATCH);
  private readonly offsets = new Int32Array(BATCH);
  private readonly batch: { buf: Uint8Array; count: number; offsets: Int32Array; lengths: Int32Array; slots: Int32Array };
  private poller: InstanceType<typeof native.Poller> | null = null;
  private onBatch: ((b: RxBatch) => void) | null = null;
  private paused = false;
  private closed = false;
  private readonly stripParts: Uint8Array[] = [];

  constructor(readonly fd: number, private readonly opts: TapDeviceOptions) {
    this.name = opts.name ?? `tap-fd${fd}`;
    this.pool = new SlotPool(opts.slots ?? DEFAULT_SLOTS, SLOT_SIZE);
    // Without a vnet header on the fd, read 10 bytes into the slot and zero that gap ourselves.
    this.headroom = opts.vnetHdr ? 0 : VNET_HDR_LEN;
    this.batch = { buf: this.pool.slab, count: 0, offsets: this.offsets, lengths: this.lens, slots: this.slotIdx };
  }

  start(onBatch: (b: RxBatch) => void): void {
    this.onBatch = onBatch;
    this.poller = new native.Poller(this.fd, () => this.drain());
    this.poller.start();
  }

  private drain(): void {
    const pool = this.pool;
    const onBatch = this.onBatch;
    if (!onBatch || this.closed) return;
    // Bounded number of rounds per wakeup so timers and sockets on this loop still get turns.
    for (let round = 0; round < 8; round++) {
      const want = pool.take(this.slotIdx, BATCH);
      if (want === 0) {
        this.counters.rxStalls++;
        this.pause();
        return;
      }
      const n = native.readBatch(this.fd, pool.slab, SLOT_SIZE, this.headroom, this.slotIdx, want, this.lens);
      const got = n > 0 ? n : 0;
      for (let i = 0; i < got; i++) {
        const off = this.slotIdx[i]! * SLOT_SIZE;
        this.offsets[i] = off;
        if (this.headroom !== 0) {
          pool.slab.fill(0, off, off + VNET_HDR_LEN);
          this.lens[i] = this.lens[i]! + VNET_HDR_LEN;
        }
        this.counters.rxFrames++;
        this.counters.rxBytes += this.lens[i]!;
      }
      this.batch.count = got;
      if (got > 0) {
        try {
          onBatch(this.batch);
        } finally {
          // The batch's own reference goes; retained slots stay out of the pool.
          for (let i = 0; i < want; i++) pool.release(this.slotIdx[i]!);
        }
      } else {
        for (let i = 0; i < want; i++) pool.release(this.slotIdx[i]!);
      }
      if (got < want) return;
    }
  }

  private pause(): void {
    if (!this.paused && this.poller) { this.paused = true; this.poller.stop(); }
  }

  retain(slot: number): void { this.pool.retain(slot); }

  release(slot: number): void {
    this.pool.release(slot);
    if (this.paused && !this.closed && this.pool.available > 0) {
      this.paused = false;
      this.poller?.start();
    }
  }

  send(parts: readonly Uint8Array[]): boolean {
    let n: number;
    if (this.headroom === 0) {
      n = native.writev(this.fd, parts);
    } else {
      const p = this.stripParts;
      p.length = 0;
      p.push(parts[0]!.subarray(VNET_HDR_LEN));
      for (let i = 1; i < parts.length; i++) p.push(parts[i]!);
      n = native.writev(this.fd, p);
    }
    return this.account(n);
  }

  sendRange(buf: Uint8Array, offset: number, length: number): boolean {
    const skip = this.headroom;
    return this.account(native.write(this.fd, buf, offset + skip, length - skip));
  }

  private account(n: number): boolean {
    if (n < 0) { this.counters.txErrors++; return false; }
    this.counters.txFrames++;
    this.counters.txBytes += n;
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.poller = null;
  }
}
