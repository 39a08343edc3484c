// A flow table for the datagram translators (udp.ts, icmp.ts): lookup by a small-integer key plus
// an intrusive least-recently-used list.
//
// Theory of operation
// -------------------
// Every packet looks its flow up and marks it most recently used, so neither may allocate:
//
//   - the key is an int32 the caller derives from the flow's identity (a small integer to V8, a
//     "Smi", so Map.get/set do not box a heap number per packet). Several flows may share a key:
//     the Map holds the newest and each entry links the next through `twin`. Callers walk that
//     chain themselves (first(key), then `.twin`) comparing the fields that really identify a flow,
//     which needs no closure per lookup;
//   - the LRU order lives in the entries themselves (`older` / `newer`): oldest at the head, most
//     recently used at the tail. touch() is two unlinks and an append, no array shifting, no nodes.
//
// The table only links and unlinks; creating, evicting (remove(oldest)) and closing flows, and the
// policy of when to do so, stay with the translator. Sweeper is the lazily started, unref'd
// interval both translators use to expire idle flows while they have any.

/** The links an entry carries for the table (set and cleared by it, read freely by callers). */
export interface LruEntry<T> {
  readonly key: number;
  /** Next entry with the same key, or null. */
  twin: T | null;
  /** LRU neighbours: older (toward the head) and newer (toward the tail). */
  older: T | null;
  newer: T | null;
}

export class KeyedLruTable<T extends LruEntry<T>> {
  /** key -> newest entry with that key (the rest chain through `twin`). */
  private readonly byKey = new Map<number, T>();
  private count = 0;
  private head: T | null = null;
  private tail: T | null = null;

  get size(): number { return this.count; }

  /** The least recently used entry (the LRU head; follow `.newer` to walk toward the tail). */
  get oldest(): T | null { return this.head; }

  /** The most recently used entry. */
  get newest(): T | null { return this.tail; }

  /** The first entry with this key (follow `.twin` for the others), or null. */
  first(key: number): T | null {
    return this.byKey.get(key) ?? null;
  }

  /** Add an entry (not in the table yet) as the most recently used. */
  insert(entry: T): void {
    entry.twin = this.byKey.get(entry.key) ?? null;
    this.byKey.set(entry.key, entry);
    this.count++;
    this.append(entry);
  }

  /** Take an entry out of its key chain and the LRU list. Call once per inserted entry. */
  remove(entry: T): void {
    const first = this.byKey.get(entry.key);
    if (first === entry) {
      if (entry.twin === null) this.byKey.delete(entry.key); else this.byKey.set(entry.key, entry.twin);
    } else {
      let f: T | null = first ?? null;
      while (f !== null && f.twin !== entry) f = f.twin;
      if (f !== null) f.twin = entry.twin;
    }
    entry.twin = null;
    this.count--;
    this.unlink(entry);
  }

  /** Mark an entry most recently used: move it to the LRU tail. */
  touch(entry: T): void {
    if (this.tail === entry) return;
    this.unlink(entry);
    this.append(entry);
  }

  /** Forget every entry (their links are left as they were: callers drop them). */
  clear(): void {
    this.byKey.clear();
    this.count = 0;
    this.head = null;
    this.tail = null;
  }

  private append(entry: T): void {
    entry.older = this.tail;
    entry.newer = null;
    if (this.tail !== null) this.tail.newer = entry; else this.head = entry;
    this.tail = entry;
  }

  private unlink(entry: T): void {
    if (entry.older !== null) entry.older.newer = entry.newer; else if (this.head === entry) this.head = entry.newer;
    if (entry.newer !== null) entry.newer.older = entry.older; else if (this.tail === entry) this.tail = entry.older;
    entry.older = null;
    entry.newer = null;
  }
}

/** A periodic, unref'd timer that runs only while started: start() is a no-op when running. */
export class Sweeper {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly fn: () => void, private readonly periodMs: number) {}

  get running(): boolean { return this.timer !== null; }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(this.fn, this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }
}
