// A bounded table of flows keyed by the guest-side 4-tuple (guest address, guest port,
// destination address, destination port), IPv4 addresses as u32.
//
// IPv6 flows live in the same table (one bound, one eviction order, one iteration). Their u32
// fields hold fold6() of the 16-byte addresses, which also carry on the entry. fold6() always has
// bit 31 set, so as a JS number it is negative, while an IPv4 address (a u32 from the header
// accessors) never is: the IPv4 lookup below can never match an IPv6 entry and needs no family
// check (its per-frame work is unchanged). lookup6() compares the folds first and then the bytes.
//
// Theory of operation
// - Lookups happen once per frame, so they must not allocate: no string keys, no Map with
//   53-bit number keys (those box). Instead a fixed power-of-two array of buckets, indexed by a
//   32-bit mix of the tuple, each bucket a singly linked chain threaded through the entries
//   themselves (`hashNext`). Chains are short: the bucket count is at least twice the bound.
// - The table never grows past `capacity`; policy (what to evict, what to refuse) belongs to the
//   translator, which checks `size` before inserting.
// - Every entry is also on one intrusive doubly linked list in insertion order (`allPrev/allNext`),
//   so iteration (close(), tests, stats) and "oldest first" scans need no extra storage.

export interface FlowEntry {
  readonly guestIp: number;
  readonly guestPort: number;
  readonly remoteIp: number;
  readonly remotePort: number;
  /** IPv6 flows only: the 16-byte addresses (guestIp/remoteIp then hold their fold6()). */
  readonly guestIp6?: Uint8Array | null;
  readonly remoteIp6?: Uint8Array | null;
  hashNext: FlowEntry | null;
  allPrev: FlowEntry | null;
  allNext: FlowEntry | null;
}

/** 32-bit mix of the tuple (murmur3 finalizer over a cheap combination). */
export function flowHash(guestIp: number, guestPort: number, remoteIp: number, remotePort: number): number {
  let h = Math.imul(guestIp ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ remoteIp ^ (h >>> 13), 0xc2b2ae35);
  h ^= (guestPort << 16) | remotePort;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * An IPv6 address as a u32-field stand-in: XOR of its four 32-bit words with bit 31 forced on,
 * as an int32 (so always < 0, unlike any IPv4 address; see the top of this file).
 */
export function fold6(b: Uint8Array, o: number): number {
  const w0 = (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
  const w1 = (b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!;
  const w2 = (b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!;
  const w3 = (b[o + 12]! << 24) | (b[o + 13]! << 16) | (b[o + 14]! << 8) | b[o + 15]!;
  return (w0 ^ w1 ^ w2 ^ w3) | 0x80000000;
}

function same16(a: Uint8Array, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[bo + i]) return false;
  return true;
}

export class FlowTable<T extends FlowEntry> {
  private readonly buckets: (T | null)[];
  private readonly mask: number;
  private head: T | null = null;
  private tail: T | null = null;
  size = 0;

  constructor(readonly capacity: number) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.buckets = new Array<T | null>(n).fill(null);
    this.mask = n - 1;
  }

  lookup(guestIp: number, guestPort: number, remoteIp: number, remotePort: number): T | null {
    let e = this.buckets[flowHash(guestIp, guestPort, remoteIp, remotePort) & this.mask] ?? null;
    while (e !== null) {
      if (e.guestPort === guestPort && e.remotePort === remotePort && e.guestIp === guestIp &&
        e.remoteIp === remoteIp) return e;
      e = e.hashNext as T | null;
    }
    return null;
  }

  /**
   * The IPv6 flow for guest address gb[go..go+16), guestPort, remote rb[ro..ro+16), remotePort.
   * Allocates nothing.
   */
  lookup6(gb: Uint8Array, go: number, guestPort: number, rb: Uint8Array, ro: number, remotePort: number): T | null {
    const g = fold6(gb, go);
    const r = fold6(rb, ro);
    let e = this.buckets[flowHash(g, guestPort, r, remotePort) & this.mask] ?? null;
    while (e !== null) {
      if (e.guestPort === guestPort && e.remotePort === remotePort && e.guestIp === g && e.remoteIp === r &&
        same16(e.guestIp6!, gb, go) && same16(e.remoteIp6!, rb, ro)) return e;
      e = e.hashNext as T | null;
    }
    return null;
  }

  /** Insert an entry whose tuple is not present. False when the table is at capacity. */
  insert(e: T): boolean {
    if (this.size >= this.capacity) return false;
    const i = flowHash(e.guestIp, e.guestPort, e.remoteIp, e.remotePort) & this.mask;
    e.hashNext = this.buckets[i] ?? null;
    this.buckets[i] = e;
    e.allPrev = this.tail;
    e.allNext = null;
    if (this.tail) this.tail.allNext = e; else this.head = e;
    this.tail = e;
    this.size++;
    return true;
  }

  /** Remove an entry; false if it was not in the table. */
  remove(e: T): boolean {
    const i = flowHash(e.guestIp, e.guestPort, e.remoteIp, e.remotePort) & this.mask;
    let prev: T | null = null;
    let cur = this.buckets[i] ?? null;
    while (cur !== null && cur !== e) { prev = cur; cur = cur.hashNext as T | null; }
    if (cur === null) return false;
    if (prev) prev.hashNext = e.hashNext; else this.buckets[i] = e.hashNext as T | null;
    e.hashNext = null;
    if (e.allPrev) e.allPrev.allNext = e.allNext; else this.head = e.allNext as T | null;
    if (e.allNext) e.allNext.allPrev = e.allPrev; else this.tail = e.allPrev as T | null;
    e.allPrev = null;
    e.allNext = null;
    this.size--;
    return true;
  }

  /** Oldest entry first (insertion order). */
  first(): T | null { return this.head; }

  next(e: T): T | null { return e.allNext as T | null; }

  /** A snapshot of all entries (control path only: allocates). */
  toArray(): T[] {
    const out: T[] = [];
    for (let e = this.head; e !== null; e = e.allNext as T | null) out.push(e);
    return out;
  }
}
