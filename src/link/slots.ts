// A fixed pool of receive slots carved from one slab. Slots cycle through: free -> filled by a
// read -> handed to the batch callback -> free again, unless retained by a pending socket write.
// When every slot is retained the device stops reading, so a slow host socket pushes back on the
// container (its TAP queue fills, its TCP backs off) instead of tapswitch buffering without bound.

export class SlotPool {
  readonly slab: Uint8Array;
  private readonly free: Int32Array;
  private freeCount: number;
  private readonly refs: Uint16Array;

  constructor(readonly slotCount: number, readonly slotSize: number) {
    this.slab = new Uint8Array(slotCount * slotSize);
    this.free = new Int32Array(slotCount);
    this.refs = new Uint16Array(slotCount);
    for (let i = 0; i < slotCount; i++) this.free[i] = slotCount - 1 - i;
    this.freeCount = slotCount;
  }

  get available(): number { return this.freeCount; }

  /** Take up to `max` free slots into out[0..]; returns how many. They hold one reference each. */
  take(out: Int32Array, max: number): number {
    const n = Math.min(max, this.freeCount);
    for (let i = 0; i < n; i++) {
      const s = this.free[--this.freeCount]!;
      this.refs[s] = 1;
      out[i] = s;
    }
    return n;
  }

  retain(slot: number): void {
    if (slot < 0 || slot >= this.slotCount || this.refs[slot] === 0) return;
    this.refs[slot]!++;
  }

  release(slot: number): void {
    if (slot < 0 || slot >= this.slotCount || this.refs[slot] === 0) return;
    if (--this.refs[slot]! === 0) this.free[this.freeCount++] = slot;
  }
}
