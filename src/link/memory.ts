// An in-memory Device for tests: frames injected by the test arrive as batches exactly as from a
// TAP (in a slot pool, with a virtio-net header), and frames sent are captured as copies.
import { type Device, type DeviceCounters, type RxBatch, newDeviceCounters } from './device';
import { SlotPool } from './slots';

export class MemoryDevice implements Device {
  readonly counters: DeviceCounters = newDeviceCounters();
  /** Every frame sent, copied, virtio-net header included. */
  readonly sent: Uint8Array[] = [];
  /** Called synchronously for each frame sent (after it is recorded). */
  onSend: ((frame: Uint8Array) => void) | null = null;
  private readonly pool: SlotPool;
  private onBatch: ((b: RxBatch) => void) | null = null;

  constructor(readonly name = 'mem0', slots = 16, readonly slotSize = 65_600) {
    this.pool = new SlotPool(slots, slotSize);
  }

  start(onBatch: (b: RxBatch) => void): void { this.onBatch = onBatch; }

  /** Deliver frames (each starting with a virtio-net header) as one batch. */
  inject(...frames: Uint8Array[]): void {
    if (!this.onBatch) throw new Error('MemoryDevice: inject before start');
    const slots = new Int32Array(frames.length);
    const got = this.pool.take(slots, frames.length);
    if (got < frames.length) {
      for (let i = 0; i < got; i++) this.pool.release(slots[i]!);
      this.counters.rxStalls++;
      return;
    }
    const offsets = new Int32Array(frames.length);
    const lengths = new Int32Array(frames.length);
    frames.forEach((f, i) => {
      const off = slots[i]! * this.slotSize;
      const len = Math.min(f.length, this.slotSize);
      this.pool.slab.set(f.subarray(0, len), off);
      offsets[i] = off; lengths[i] = len;
      this.counters.rxFrames++; this.counters.rxBytes += len;
    });
    try {
      this.onBatch({ buf: this.pool.slab, count: frames.length, offsets, lengths, slots });
    } finally {
      for (let i = 0; i < got; i++) this.pool.release(slots[i]!);
    }
  }

  /** Slots not currently free: lets tests prove retained slots are released. */
  get slotsInUse(): number { return this.pool.slotCount - this.pool.available; }

  retain(slot: number): void { this.pool.retain(slot); }
  release(slot: number): void { this.pool.release(slot); }

  send(parts: readonly Uint8Array[]): boolean {
    let len = 0;
    for (const p of parts) len += p.length;
    const f = new Uint8Array(len);
    let o = 0;
    for (const p of parts) { f.set(p, o); o += p.length; }
    return this.record(f);
  }

  sendRange(buf: Uint8Array, offset: number, length: number): boolean {
    return this.record(buf.slice(offset, offset + length));
  }

  private record(f: Uint8Array): boolean {
    this.sent.push(f);
    this.counters.txFrames++; this.counters.txBytes += f.length;
    this.onSend?.(f);
    return true;
  }

  close(): void { this.onBatch = null; }
}
