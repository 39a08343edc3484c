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
// A Map from the MAC as a 48-bit number (macKey) to {port, seen}. Entries age out `agingMs` after
// the station was last heard (default 300 s, as 802.1D recommends). The Map's insertion order is
// kept close to "least recently heard first": an entry heard again more than REFRESH_MS after its
// last move is re-inserted at the end. So
//   - expiry sweeps walk from the front and stop at the first live entry (cheap), and
//   - when the table is full (default 4096 entries) and a new station appears, the entry at the
//     front (heard least recently, within REFRESH_MS) is evicted to make room: a station that is
//     talking always gets learned; the cost of a MAC flood from a container is only more flooding.
// Lookups are allocation-free; only learning a new station allocates its entry.
import { isMulticastMac, macKey } from '../wire/addr';
import { ETH_HDR_LEN } from '../wire/ethernet';
import { type Counters, type Frame, count } from '../wire/frame';
import { VNET_HDR_LEN } from '../wire/vnet';
import type { Device, RxBatch } from '../link/device';

/** Anything that frames can be switched to. */
export interface SwitchPort {
  /** Unique within one switch; for logs and stats. */
  readonly id: number;
  /** Send out a frame that arrived at another port (vnet header first). Must not keep `frame`. */
  deliver(frame: Frame): void;
  /** Send out a frame built from parts (parts[0] begins with the vnet header). Must not keep parts. */
  deliverParts(parts: readonly Uint8Array[]): void;
}

export interface SwitchOptions {
  /** Shared counters (a worker's); a fresh object when omitted. */
  counters?: Counters;
  /** Monotonic clock in milliseconds (injectable for tests). Default: performance.now(). */
  now?: () => number;
  /** How long a learned MAC stays without being heard again. Default 300 000 ms. */
  agingMs?: number;
  /** Bound of the MAC table. Default 4096. */
  maxEntries?: number;
}

interface MacEntry {
  port: SwitchPort;
  /** Last time the station was heard. */
  seen: number;
  /** Last time the entry was moved to the end of the Map's order. */
  moved: number;
}

/** Heard again this long after its last move, an entry is moved to the end of the table order. */
const REFRESH_MS = 1000;
/** Offset of the Ethernet header inside a frame. */
const ETH = VNET_HDR_LEN;
const MIN_FRAME = VNET_HDR_LEN + ETH_HDR_LEN;

export class Switch {
  readonly counters: Counters;
  private readonly now: () => number;
  private readonly agingMs: number;
  private readonly maxEntries: number;
  private readonly table = new Map<number, MacEntry>();
  private readonly ports: SwitchPort[] = [];

  constructor(opts: SwitchOptions = {}) {
    this.counters = opts.counters ?? {};
    this.now = opts.now ?? (() => performance.now());
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
    for (const [k, e] of this.table) if (e.port === port) this.table.delete(k);
  }

  get portCount(): number { return this.ports.length; }
  /** Learned stations (live or not yet swept). */
  get macCount(): number { return this.table.size; }

  /** The port a MAC (as macKey) was learned on, if the entry is still live. For tests and stats. */
  lookup(mac: number): SwitchPort | null {
    const e = this.table.get(mac);
    if (!e || this.now() - e.seen > this.agingMs) return null;
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
   * Learn the source and decide: null = flood, `from` = drop (hairpin, already counted),
   * otherwise the one port to send to.
   */
  private route(from: SwitchPort, b: Uint8Array, eth: number): SwitchPort | null {
    const c = this.counters;
    count(c, 'switch_rx');
    const now = this.now();
    if (isMulticastMac(b, eth + 6)) count(c, 'switch_src_multicast');
    else this.learn(from, macKey(b, eth + 6), now);

    if (isMulticastMac(b, eth)) {
      count(c, 'switch_flooded_multicast');
      return null;
    }
    const dst = macKey(b, eth);
    const e = this.table.get(dst);
    if (e === undefined) {
      count(c, 'switch_flooded_unknown');
      return null;
    }
    if (now - e.seen > this.agingMs) {
      this.table.delete(dst);
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

  private learn(port: SwitchPort, key: number, now: number): void {
    const table = this.table;
    const e = table.get(key);
    if (e !== undefined) {
      if (e.port !== port) {
        e.port = port;
        count(this.counters, 'switch_mac_moved');
      }
      e.seen = now;
      if (now - e.moved > REFRESH_MS) {
        e.moved = now;
        table.delete(key);
        table.set(key, e);
      }
      return;
    }
    this.sweep(now);
    if (table.size >= this.maxEntries) {
      // Full of live entries: evict the one heard least recently (the front of the order).
      for (const k of table.keys()) { table.delete(k); break; }
      count(this.counters, 'switch_mac_evicted');
    }
    table.set(key, { port, seen: now, moved: now });
    count(this.counters, 'switch_mac_learned');
  }

  /** Drop expired entries from the front of the order (at most until the first live one). */
  private sweep(now: number): void {
    const table = this.table;
    for (const [k, e] of table) {
      // `moved` lags `seen` by at most REFRESH_MS, so order by `moved` is order by `seen` within it.
      if (now - e.moved <= this.agingMs + REFRESH_MS) break;
      if (now - e.seen > this.agingMs) {
        table.delete(k);
        count(this.counters, 'switch_mac_expired');
      }
    }
  }
}

/**
 * A switch port over a Device (one TAP queue, or a MemoryDevice in tests). start() feeds every
 * received frame into the switch; frames the switch sends here are written to the device.
 */
export class TapPort implements SwitchPort {
  /** The one Frame object re-pointed at each received frame. */
  private readonly frame: Frame;

  constructor(readonly id: number, readonly device: Device) {
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
        sw.input(this, f);
      }
    });
  }
}
