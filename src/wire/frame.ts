// A received frame as it moves through the data path: a range of a long-lived receive slab.
// One Frame object per worker is re-pointed at each frame (no allocation per frame).

/** Whoever owns the slab: retain() keeps the slot from being reused until release(). */
export interface SlotOwner {
  retain(slot: number): void;
  release(slot: number): void;
}

export interface Frame {
  /** The slab; the frame is buf[off, off+len) and begins with the 10-byte virtio-net header. */
  buf: Uint8Array;
  off: number;
  len: number;
  slot: number;
  owner: SlotOwner;
}

/** Named counters: malformed frames, drops, flows... Read by --stats and the API. */
export type Counters = Record<string, number>;

export function count(c: Counters, key: string, n = 1): void {
  c[key] = (c[key] ?? 0) + n;
}
