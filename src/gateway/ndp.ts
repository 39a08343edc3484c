// The gateway's IPv6 neighbour state and Neighbor Discovery timing (RFC 4861), kept apart from the
// router so each piece is small and testable.
//
//   Ipv6Table       a bounded table keyed by 16-byte addresses: a 30-bit hash (a small integer:
//                   lookups never allocate) into chains of entries whose addresses are compared
//                   byte by byte. When full, the entry inserted first is evicted.
//   NeighborCache   guest IPv6 address -> MAC, learned from NS/NA/RS link-layer options and from
//                   packet sources; plus the rate limit on the Neighbor Solicitations macFor6()
//                   sends for unknown addresses (per address and overall, like ARP in router.ts).
//   RaSchedule      when to send unsolicited Router Advertisements (RFC 4861 §6.2.4): a few
//                   quickly after start or after the guest shows up, then every
//                   MIN..MAX_RTR_ADV_INTERVAL_MS; and a cap on solicited ones.
//
// Constants in the RA follow the RFC's defaults scaled to the shorter advertisement interval:
// router lifetime 1800 s (AdvDefaultLifetime, as slirp4netns), prefix lifetimes 30 d / 7 d
// (AdvValidLifetime, AdvPreferredLifetime), RDNSS lifetime 3 x MaxRtrAdvInterval (RFC 8106 §5.1).
import { ipv6Equal, ipv6Hash } from '../wire/ipv6-addr';
import { type Counters, count } from '../wire/frame';

export const MAX_RTR_ADV_INTERVAL_MS = 200_000;
/** RFC 4861 §6.2.1: MinRtrAdvInterval defaults to 0.33 x MaxRtrAdvInterval. */
export const MIN_RTR_ADV_INTERVAL_MS = 66_000;
/** RFC 4861 §10: MAX_INITIAL_RTR_ADVERTISEMENTS, MAX_INITIAL_RTR_ADVERT_INTERVAL. */
export const MAX_INITIAL_RTR_ADVERTISEMENTS = 3;
export const MAX_INITIAL_RTR_ADVERT_INTERVAL_MS = 16_000;
/** RFC 4861 §10: MIN_DELAY_BETWEEN_RAS, for multicast RAs. */
export const MIN_DELAY_BETWEEN_RAS_MS = 3_000;
/** Cap on RAs sent in answer to solicitations (unicast answers are not limited by the RFC; a flood is). */
export const SOLICITED_RAS_PER_SECOND = 8;

export const RA_ROUTER_LIFETIME_S = 1800;
export const RA_CUR_HOP_LIMIT = 64;
export const PREFIX_VALID_LIFETIME_S = 2_592_000;
export const PREFIX_PREFERRED_LIFETIME_S = 604_800;
export const RDNSS_LIFETIME_S = 3 * (MAX_RTR_ADV_INTERVAL_MS / 1000);

/** Overall cap on Neighbor Solicitations macFor6() may send. */
export const NS_PER_SECOND = 32;
/** Minimum interval between two solicitations for the same address (RFC 4861 §10 RETRANS_TIMER). */
export const NS_RETRY_MS = 1000;

interface Entry<V> {
  readonly addr: Uint8Array;
  hash: number;
  value: V;
  /** Next entry with the same hash. */
  next: Entry<V> | null;
}

/** A bounded map from 16-byte IPv6 addresses to V. Lookups do not allocate. */
export class Ipv6Table<V> {
  private readonly buckets = new Map<number, Entry<V>>();
  /** Every entry, in insertion order (the first is evicted when full). */
  private readonly order = new Set<Entry<V>>();
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = Math.max(1, capacity);
  }

  get size(): number { return this.order.size; }

  private find(b: Uint8Array, o: number, h: number): Entry<V> | null {
    let e = this.buckets.get(h) ?? null;
    while (e !== null && !ipv6Equal(e.addr, 0, b, o)) e = e.next;
    return e;
  }

  get(b: Uint8Array, o: number): V | undefined {
    const e = this.find(b, o, ipv6Hash(b, o));
    return e === null ? undefined : e.value;
  }

  /** Set the value; returns 'updated', 'added' or 'evicted' (added after evicting the oldest). */
  set(b: Uint8Array, o: number, value: V): 'updated' | 'added' | 'evicted' {
    const h = ipv6Hash(b, o);
    const e = this.find(b, o, h);
    if (e !== null) { e.value = value; return 'updated'; }
    let evicted = false;
    if (this.order.size >= this.capacity) {
      for (const old of this.order) { this.remove(old); break; }
      evicted = true;
    }
    const addr = b.slice(o, o + 16);
    const n: Entry<V> = { addr, hash: h, value, next: this.buckets.get(h) ?? null };
    this.buckets.set(h, n);
    this.order.add(n);
    return evicted ? 'evicted' : 'added';
  }

  delete(b: Uint8Array, o: number): boolean {
    const e = this.find(b, o, ipv6Hash(b, o));
    if (e === null) return false;
    this.remove(e);
    return true;
  }

  private remove(e: Entry<V>): void {
    this.order.delete(e);
    const head = this.buckets.get(e.hash);
    if (head === e) {
      if (e.next === null) this.buckets.delete(e.hash);
      else this.buckets.set(e.hash, e.next);
    } else {
      for (let p = head ?? null; p !== null; p = p.next) {
        if (p.next === e) { p.next = e.next; break; }
      }
    }
    e.next = null;
  }

  /** Snapshot (control path). */
  entries(): Array<[addr: Uint8Array, value: V]> {
    return [...this.order].map((e) => [e.addr.slice(), e.value]);
  }
}

export interface NeighborCacheOptions {
  /** Bound of the learned table. Default 1024. */
  size?: number;
  /** How many addresses the per-address solicitation limit remembers. Default 256. */
  pendingSize?: number;
  counters: Counters;
  now: () => number;
}

/** Guest IPv6 address -> MAC, and when a solicitation for an unknown one may go out. */
export class NeighborCache {
  private readonly table: Ipv6Table<Uint8Array>;
  private readonly pending: Ipv6Table<number>;
  private readonly counters: Counters;
  private readonly now: () => number;
  private windowStart = -Infinity;
  private windowCount = 0;

  constructor(o: NeighborCacheOptions) {
    this.table = new Ipv6Table(o.size ?? 1024);
    this.pending = new Ipv6Table(o.pendingSize ?? 256);
    this.counters = o.counters;
    this.now = o.now;
  }

  get size(): number { return this.table.size; }

  lookup(b: Uint8Array, o: number): Uint8Array | null {
    return this.table.get(b, o) ?? null;
  }

  /** Learn the address at b[o] -> the MAC at m[mo] (the caller checked both are a guest's). */
  learn(b: Uint8Array, o: number, m: Uint8Array, mo: number): void {
    const known = this.table.get(b, o);
    if (known !== undefined) {
      if (known[0] === m[mo] && known[1] === m[mo + 1] && known[2] === m[mo + 2] &&
        known[3] === m[mo + 3] && known[4] === m[mo + 4] && known[5] === m[mo + 5]) return;
      count(this.counters, 'ndp_cache_updated');
    } else {
      count(this.counters, 'ndp_cache_learned');
    }
    // A fresh array, so a MAC a translator holds never changes under it.
    const r = this.table.set(b, o, m.slice(mo, mo + 6));
    if (r === 'evicted') count(this.counters, 'ndp_cache_evicted');
    this.pending.delete(b, o);
  }

  /**
   * Whether a Neighbor Solicitation for the address at b[o] may go out now: at most one per address
   * per NS_RETRY_MS and NS_PER_SECOND overall. A yes records the attempt.
   */
  maySolicit(b: Uint8Array, o: number): boolean {
    const now = this.now();
    const last = this.pending.get(b, o);
    if (last !== undefined && now - last < NS_RETRY_MS) return false;
    if (now - this.windowStart >= 1000) { this.windowStart = now; this.windowCount = 0; }
    if (this.windowCount >= NS_PER_SECOND) return false;
    this.windowCount++;
    this.pending.set(b, o, now);
    return true;
  }

  entries(): Array<[addr: Uint8Array, mac: Uint8Array]> {
    return this.table.entries().map(([a, m]) => [a, m.slice()]);
  }
}

/** When unsolicited RAs go out, and whether a solicited one may. */
export class RaSchedule {
  /** Time of the next unsolicited RA (-Infinity: as soon as asked). */
  private nextAt = -Infinity;
  /** Unsolicited RAs left in the initial, quick series. */
  private initialLeft = MAX_INITIAL_RTR_ADVERTISEMENTS;
  private lastMulticastAt = -Infinity;
  private windowStart = -Infinity;
  private windowCount = 0;

  constructor(private readonly now: () => number, private readonly random: () => number) {}

  /** The guest appeared: restart the quick initial series (RFC 4861 §6.2.4 allows it on a change). */
  restartInitial(): void {
    this.initialLeft = MAX_INITIAL_RTR_ADVERTISEMENTS;
    this.nextAt = Math.min(this.nextAt, this.lastMulticastAt + MIN_DELAY_BETWEEN_RAS_MS);
  }

  /** An unsolicited (multicast) RA is due now. */
  due(): boolean {
    return this.now() >= this.nextAt;
  }

  /** A multicast RA went out now: plan the next unsolicited one. */
  sentMulticast(): void {
    const now = this.now();
    this.lastMulticastAt = now;
    let interval = MIN_RTR_ADV_INTERVAL_MS + this.random() * (MAX_RTR_ADV_INTERVAL_MS - MIN_RTR_ADV_INTERVAL_MS);
    if (this.initialLeft > 0) {
      this.initialLeft--;
      if (this.initialLeft > 0) interval = Math.min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL_MS);
    }
    this.nextAt = now + interval;
  }

  /** Whether a multicast RA may go out now (RFC 4861 §6.2.6: at most one per MIN_DELAY_BETWEEN_RAS). */
  multicastAllowed(): boolean {
    return this.now() - this.lastMulticastAt >= MIN_DELAY_BETWEEN_RAS_MS;
  }

  /** Whether an RA answering a solicitation may go out now; a yes counts against the cap. */
  allowSolicited(): boolean {
    const now = this.now();
    if (now - this.windowStart >= 1000) { this.windowStart = now; this.windowCount = 0; }
    if (this.windowCount >= SOLICITED_RAS_PER_SECOND) return false;
    this.windowCount++;
    return true;
  }

  /** Milliseconds until the next unsolicited RA (for stats and tests). */
  get msUntilNext(): number { return this.nextAt - this.now(); }
}
