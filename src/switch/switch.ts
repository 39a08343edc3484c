// An L2 learning switch (IEEE 802.1D's forwarding process without spanning tree).
//
// Theory of operation
// -------------------
// Every frame entering the switch comes from a port: a TAP queue (TapPort), the gateway (Router),
// or anything else that implements SwitchPort. For each frame the switch
//   1. learns: the source MAC now lives behind the ingress port (multicast sources are never
//      learned: no station has a group address);
//   2. forwards: a broadcast/multicast destination, or a unicast destination it has not learned,
//      is flooded to every port except the ingress; a learned destination goes to its one port;
//   3. never hairpins: a frame whose learned destination is its own ingress port is dropped
//      (the station already saw it on its own segment).
// Frames are never copied or queued here: each port's deliver() is called synchronously with the
// same bytes. A frame the switch was given as a Frame (a range of a receive slab) goes out through
// deliver(); one given as parts (built by the gateway or a translator) through deliverParts().
//
// MAC table
// ---------
// Entries age out `agingMs` after the station was last heard (default 300 s, as 802.1D
// recommends). The table is bounded (default 4096 entries): when it is full of live entries and a
// new station appears, the station heard least recently is evicted, so a station that is talking
// always gets learned and the cost of a MAC flood from a container is only more flooding.
//
// Allocation-free per frame: a MAC is looked up as two 24-bit halves (OUI, then the rest), each a
// small integer, in two levels of Maps. (A 48-bit macKey() is not a small integer in V8: every
// lookup by it would box a fresh heap number.) Entries also sit on a doubly linked list in the
// order they were last heard: expiry sweeps walk from its head and stop at the first live entry,
// eviction takes the head, hearing a station moves it to the tail: all O(1). Only learning a new
// station may allocate (its entry; removed entries are recycled).
//
// Pinned entries (pin(): the gateway's MAC on the router's port) never age and cannot be learned
// elsewhere: a frame from another port carrying a pinned source MAC is dropped and counted.
import { isMulticastMac } from '../wire/addr';
import { ETH_HDR_LEN } from '../wire/ethernet';
import { type Counters, type Frame, count } from '../wire/frame';
import { VNET_HDR_LEN } from '../wire/vnet';
import type { Device, RxBatch } from '../link/device';

/** Anything that frames can be switched to. */
export interface SwitchPort {
  /** Unique within one switch; for logs and stats. */
  readonly id: number;
  /**
   * Send out a frame that arrived at another port (vnet header first). The Frame object and its
   * bytes are only valid during the call; to keep the bytes longer, frame.owner.retain(frame.slot).
   */
  deliver(frame: Frame): void;
  /** Send out a frame built from parts (parts[0] begins with the vnet header). Must not keep parts. */
  deliverParts(parts: readonly Uint8Array[]): void;
}

export interface SwitchOptions {
  /** Shared counters (a worker's); a fresh object when omitted. */
  counters?: Counters;
  /** Monotonic clock in milliseconds (injectable for tests). Default: coarseNow(). */
  now?: () => number;
  /** How long a learned MAC stays without being heard again. Default 300 000 ms. */
  agingMs?: number;
  /** Bound of the MAC table. Default 4096. */
  maxEntries?: number;
}

interface MacEntry {
  /** The MAC's first and last three bytes. */
  hi: number;
  lo: number;
  port: SwitchPort | null;
  /** Last time the station was heard. */
  seen: number;
  /** Pinned by pin(): never ages, never moves, not on the last-heard list. */
  pinned: boolean;
  /** Neighbours in the last-heard order (prev: heard earlier). */
  prev: MacEntry | null;
  next: MacEntry | null;
}

function mac24(b: Uint8Array, o: number): number {
  return (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
}

// The switch reads the clock for every frame, and performance.now() costs more than the rest of
// the switching (and boxes a heap number per call). Aging is measured in minutes, so by default
// the switch reads a copy of performance.now() that an unref'd timer refreshes every 100 ms.
let coarseMs = performance.now();
let coarseTimer: ReturnType<typeof setInterval> | null = null;

/** performance.now() as of at most COARSE_CLOCK_MS ago (once startCoarseClock() ran). */
export function coarseNow(): number { return coarseMs; }
export const COARSE_CLOCK_MS = 100;

function startCoarseClock(): void {
  if (coarseTimer !== null) return;
  coarseMs = performance.now();
  coarseTimer = setInterval(() => { coarseMs = performance.now(); }, COARSE_CLOCK_MS);
  coarseTimer.unref();
}

/** Offset of the Ethernet header inside a frame. */
const ETH = VNET_HDR_LEN;
const MIN_FRAME = VNET_HDR_LEN + ETH_HDR_LEN;

export class Switch {
  readonly counters: Counters;
  private readonly now: () => number;
  private readonly agingMs: number;
  private readonly maxEntries: number;
  /** hi24 -> lo24 -> entry. */
  private readonly table = new Map<number, Map<number, MacEntry>>();
  private size = 0;
  /** Least recently heard. */
  private head: MacEntry | null = null;
  /** Most recently heard. */
  private tail: MacEntry | null = null;
  /** Removed entries, chained through `next`, for reuse. */
  private spare: MacEntry | null = null;
  private readonly ports: SwitchPort[] = [];
  private readonly pinned: MacEntry[] = [];

  constructor(opts: SwitchOptions = {}) {
    this.counters = opts.counters ?? {};
    if (opts.now === undefined) startCoarseClock();
    this.now = opts.now ?? coarseNow;
    this.agingMs = opts.agingMs ?? 300_000;
    this.maxEntries = Math.max(1, opts.maxEntries ?? 4096);
  }

  addPort(port: SwitchPort): void {
    if (this.ports.includes(port)) return;
    if (this.ports.some((p) => p.id === port.id)) throw new Error(`switch: duplicate port id ${port.id}`);
    this.ports.push(port);
  }

  /** Detach a port and forget every MAC learned behind it. */
  removePort(port: SwitchPort): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports.splice(i, 1);
    for (let j = this.pinned.length - 1; j >= 0; j--) {
      const e = this.pinned[j]!;
      if (e.port === port) { this.pinned.splice(j, 1); this.remove(e); }
    }
    for (let e = this.head; e !== null;) {
      const next = e.next;
      if (e.port === port) this.remove(e);
      e = next;
    }
  }

  /**
   * Tie a MAC to a port for good: the gateway's own MAC. It never ages out and is never learned
   * elsewhere: a frame from another port with this source MAC is dropped (a container cannot
   * impersonate the gateway), and frames to it are never flooded, even before its port has sent
   * anything.
   */
  pin(port: SwitchPort, mac: Uint8Array, off = 0): void {
    const hi = mac24(mac, off);
    const lo = mac24(mac, off + 3);
    const old = this.find(hi, lo);
    if (old !== undefined) {
      if (old.pinned) this.pinned.splice(this.pinned.indexOf(old), 1);
      this.remove(old);
    }
    const e: MacEntry = { hi, lo, port, seen: 0, pinned: true, prev: null, next: null };
    let inner = this.table.get(hi);
    if (inner === undefined) { inner = new Map(); this.table.set(hi, inner); }
    inner.set(lo, e);
    this.pinned.push(e);
  }

  get portCount(): number { return this.ports.length; }
  /** Learned stations (live or not yet swept). */
  get macCount(): number { return this.size; }

  /** The port a MAC (as macKey) was learned on, if the entry is still live. For tests and stats. */
  lookup(mac: number): SwitchPort | null {
    const e = this.find(Math.floor(mac / 0x1000000), mac % 0x1000000);
    if (e === undefined || (!e.pinned && this.now() - e.seen > this.agingMs)) return null;
    return e.port;
  }

  /** A frame `from` received (e.g. read from a TAP). */
  input(from: SwitchPort, frame: Frame): void {
    const c = this.counters;
    if (frame.len < MIN_FRAME || frame.off < 0 || frame.off + frame.len > frame.buf.length) {
      count(c, 'switch_runt_dropped');
      return;
    }
    const b = frame.buf;
    const eth = frame.off + ETH;
    const out = this.route(from, b, eth);
    if (out === null) {
      const ports = this.ports;
      for (let i = 0; i < ports.length; i++) {
        const p = ports[i]!;
        if (p !== from) p.deliver(frame);
      }
    } else if (out !== from) {
      out.deliver(frame);
    }
  }

  /**
   * A frame `from` built itself (e.g. a gateway reply); parts[0] holds at least the vnet and
   * Ethernet headers. Returns false when it went nowhere (malformed, or hairpin).
   */
  inputParts(from: SwitchPort, parts: readonly Uint8Array[]): boolean {
    const h = parts[0];
    if (h === undefined || h.length < MIN_FRAME) {
      count(this.counters, 'switch_runt_dropped');
      return false;
    }
    const out = this.route(from, h, ETH);
    if (out === null) {
      const ports = this.ports;
      let sent = false;
      for (let i = 0; i < ports.length; i++) {
        const p = ports[i]!;
        if (p !== from) { p.deliverParts(parts); sent = true; }
      }
      return sent;
    }
    if (out === from) return false;
    out.deliverParts(parts);
    return true;
  }

  /**
   * Learn the source and decide: null = flood, `from` = drop (already counted), otherwise the one
   * port to send to.
   */
  private route(from: SwitchPort, b: Uint8Array, eth: number): SwitchPort | null {
    const c = this.counters;
    count(c, 'switch_rx');
    const now = this.now();
    if (isMulticastMac(b, eth + 6)) count(c, 'switch_src_multicast');
    else if (!this.learn(from, mac24(b, eth + 6), mac24(b, eth + 9), now)) {
      count(c, 'switch_src_pinned_dropped');
      return from;
    }

    if (isMulticastMac(b, eth)) {
      count(c, 'switch_flooded_multicast');
      return null;
    }
    const e = this.find(mac24(b, eth), mac24(b, eth + 3));
    if (e === undefined) {
      count(c, 'switch_flooded_unknown');
      return null;
    }
    if (!e.pinned && now - e.seen > this.agingMs) {
      this.remove(e);
      count(c, 'switch_mac_expired');
      count(c, 'switch_flooded_unknown');
      return null;
    }
    if (e.port === from) {
      count(c, 'switch_hairpin_dropped');
      return from;
    }
    count(c, 'switch_forwarded');
    return e.port;
  }

  private find(hi: number, lo: number): MacEntry | undefined {
    const inner = this.table.get(hi);
    return inner === undefined ? undefined : inner.get(lo);
  }

  /** False: the source is pinned to another port (the frame must be dropped). */
  private learn(port: SwitchPort, hi: number, lo: number, now: number): boolean {
    const e = this.find(hi, lo);
    if (e !== undefined) {
      if (e.pinned) return e.port === port;
      if (e.port !== port) {
        e.port = port;
        count(this.counters, 'switch_mac_moved');
      }
      e.seen = now;
      if (e !== this.tail) { this.unlink(e); this.append(e); }
      return true;
    }
    this.sweep(now);
    if (this.size >= this.maxEntries && this.head !== null) {
      // Full of live entries: evict the station heard least recently.
      this.remove(this.head);
      count(this.counters, 'switch_mac_evicted');
    }
    let n = this.spare;
    if (n !== null) {
      this.spare = n.next;
      n.hi = hi; n.lo = lo; n.port = port; n.seen = now;
    } else {
      n = { hi, lo, port, seen: now, pinned: false, prev: null, next: null };
    }
    let inner = this.table.get(hi);
    if (inner === undefined) { inner = new Map(); this.table.set(hi, inner); }
    inner.set(lo, n);
    this.append(n);
    this.size++;
    count(this.counters, 'switch_mac_learned');
    return true;
  }

  /** Drop expired entries from the head of the last-heard order, up to the first live one. */
  private sweep(now: number): void {
    while (this.head !== null && now - this.head.seen > this.agingMs) {
      this.remove(this.head);
      count(this.counters, 'switch_mac_expired');
    }
  }

  /** Forget an entry (a pinned one must also be taken out of `pinned` by the caller). */
  private remove(e: MacEntry): void {
    const inner = this.table.get(e.hi);
    if (inner !== undefined) {
      inner.delete(e.lo);
      if (inner.size === 0) this.table.delete(e.hi);
    }
    e.port = null;
    if (e.pinned) return;
    this.unlink(e);
    this.size--;
    e.next = this.spare;
    this.spare = e;
  }

  private unlink(e: MacEntry): void {
    if (e.prev !== null) e.prev.next = e.next; else this.head = e.next;
    if (e.next !== null) e.next.prev = e.prev; else this.tail = e.prev;
    e.prev = null;
    e.next = null;
  }

  private append(e: MacEntry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail !== null) this.tail.next = e; else this.head = e;
    this.tail = e;
  }
}

/**
 * A switch port over a Device (one TAP queue, or a MemoryDevice in tests). start() feeds every
 * received frame into the switch; frames the switch sends here are written to the device.
 */
export class TapPort implements SwitchPort {
  /** The one Frame object re-pointed at each received frame. */
  private readonly frame: Frame;

  /**
   * `onError`: called when switching one frame threw (a bug in some layer: the frame is dropped and
   * the rest of the batch goes on). Without it the exception propagates, which tests want.
   */
  constructor(readonly id: number, readonly device: Device, private readonly onError?: (e: unknown) => void) {
    this.frame = { buf: new Uint8Array(0), off: 0, len: 0, slot: -1, owner: device };
  }

  deliver(frame: Frame): void {
    this.device.sendRange(frame.buf, frame.off, frame.len);
  }

  deliverParts(parts: readonly Uint8Array[]): void {
    this.device.send(parts);
  }

  /** Start the device, switching every frame it receives through `sw`. */
  start(sw: Switch): void {
    const f = this.frame;
    this.device.start((batch: RxBatch) => {
      f.buf = batch.buf;
      for (let i = 0; i < batch.count; i++) {
        f.off = batch.offsets[i]!;
        f.len = batch.lengths[i]!;
        f.slot = batch.slots[i]!;
        if (this.onError === undefined) {
          sw.input(this, f);
        } else {
          try {
            sw.input(this, f);
          } catch (e) {
            this.onError(e);
          }
        }
      }
    });
  }
}
