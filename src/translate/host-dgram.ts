// Pieces the UDP and ICMP translators share for driving node:dgram sockets from the packet path.
//
// Zero-copy sends from the receive slab
// -------------------------------------
// `dgram.send(slab, off, len, ...)` does not copy. With an address string it first runs the
// socket's `lookup` (by default dns.lookup, which answers even an IP literal on a later tick: the
// bytes would be read after our batch callback returned and the slot was reused — measured), then
// libuv tries a synchronous sendto() and only if that would block (EAGAIN) queues the request,
// holding a pointer into our slab until the kernel takes it. So:
//
//  - every socket gets `syncLookup`: IP literals need no resolution, and answering inline makes
//    send() one synchronous sendto() in the common case: the kernel has copied the bytes before
//    send() returns (verified: rewriting the buffer right after send() does not change what the
//    peer receives), with no extra tick;
//  - every send takes an entry of a SendRing, which retains the frame's slot. Right after send()
//    returns, `socket.getSendQueueCount() === 0` proves libuv holds nothing of ours (sent, or failed
//    synchronously), and the slot is released at once; otherwise it stays retained until the send
//    callback. Without that early release every datagram would hold its slot until the next tick,
//    and a TAP drain (up to 8 x 32 frames) of UDP traffic would exhaust the 64-slot pool and stall;
//  - the ring keeps a copy of the guest's IP header + 8 bytes, so a send that fails (reported on a
//    later tick) can still be answered with an ICMP error quoting it;
//  - the ring's callbacks are created once, so the steady state allocates nothing of ours per
//    datagram (dgram itself allocates a Buffer view, a one-element list, a closure and a SendWrap
//    per send). A full ring (that many sends queued in libuv) means the host cannot keep up: the
//    datagram is dropped and counted, which also bounds the slots UDP can hold.
//
// Copying every datagram instead was considered: it needs the same lifetime tracking for the
// copies and costs a memcpy per datagram, for no gain.
import type { SlotOwner } from '../wire/frame';

/** dgram `lookup` for IP literals: answers synchronously (see above). */
export function syncLookup(address: string, _family: unknown,
  cb: (err: Error | null, address: string, family: number) => void): void {
  // dgram ignores the family (the socket's own decides), so IPv6 sockets can use this too.
  cb(null, address, 4);
}

/** Dotted-quad text (as dgram reports a peer) to u32, or -1: wire/addr's allocation-free parser. */
export { dottedTail as ipv4FromString } from '../wire/addr';

/** Largest quote kept per send: an IPv4 header with options (60) + 8 bytes (RFC 792). */
export const QUOTE_MAX = 68;

/** A send failed: entry `i` of the ring still holds the quote and the destination. */
export type SendFailed = (ring: SendRing, i: number, err: Error) => void;

/** In-flight sends; see the comment at the top of this file. */
export class SendRing {
  /** Quotes of the guest packets: entry i at [i * QUOTE_MAX, i * QUOTE_MAX + quoteLen[i]). */
  readonly quote: Uint8Array;
  readonly quoteLen: Uint16Array;
  /** The guest-side destination of each send (u32). */
  readonly dst: Float64Array;
  /** Sends handed to dgram whose callback has not run yet. */
  pending = 0;
  private readonly owners: Array<SlotOwner | null>;
  private readonly slots: Int32Array;
  /** 1 while the entry's slot is still retained. */
  private readonly held: Uint8Array;
  private readonly busy: Uint8Array;
  private readonly cbs: Array<(err: Error | null) => void>;
  private next = 0;

  constructor(readonly size: number, private readonly failed: SendFailed) {
    this.quote = new Uint8Array(size * QUOTE_MAX);
    this.quoteLen = new Uint16Array(size);
    this.dst = new Float64Array(size);
    this.owners = new Array<SlotOwner | null>(size).fill(null);
    this.slots = new Int32Array(size);
    this.held = new Uint8Array(size);
    this.busy = new Uint8Array(size);
    this.cbs = [];
    for (let i = 0; i < size; i++) this.cbs.push((err) => this.complete(i, err));
  }

  /**
   * Claim an entry for sending part of the IPv4 (or IPv6) packet at buf[ipOff, ipOff+ipLen), which lives in
   * `slot` of `owner`: retains the slot and copies the quote. -1 when every entry is in flight.
   */
  begin(owner: SlotOwner, slot: number, buf: Uint8Array, ipOff: number, ipLen: number, dst: number): number {
    const i = this.next;
    if (this.busy[i] !== 0) return -1;
    this.next = i + 1 === this.size ? 0 : i + 1;
    this.busy[i] = 1;
    this.pending++;
    owner.retain(slot);
    this.owners[i] = owner;
    this.slots[i] = slot;
    this.held[i] = 1;
    this.dst[i] = dst;
    // The header length: IHL for IPv4; an IPv6 packet (version 6) quotes its 40-byte fixed header.
    const vi = buf[ipOff]!;
    const hl = vi >> 4 === 6 ? 40 : (vi & 0x0f) * 4;
    const n = Math.min(ipLen, hl + 8, QUOTE_MAX);
    const q = this.quote;
    const base = i * QUOTE_MAX;
    // A short loop beats subarray()+set() (which allocates a view) for <= 68 bytes.
    for (let k = 0; k < n; k++) q[base + k] = buf[ipOff + k]!;
    this.quoteLen[i] = n;
    return i;
  }

  /** The send callback for entry i (created once). */
  callback(i: number): (err: Error | null) => void {
    return this.cbs[i]!;
  }

  /** libuv holds nothing of entry i any more (checked by the caller): give the slot back now. */
  settle(i: number): void {
    if (this.held[i] === 0) return;
    this.held[i] = 0;
    const owner = this.owners[i]!;
    this.owners[i] = null;
    owner.release(this.slots[i]!);
  }

  private complete(i: number, err: Error | null): void {
    if (this.busy[i] === 0) return; // cannot happen: dgram calls back once per send
    try {
      if (err !== null) this.failed(this, i, err);
    } finally {
      this.settle(i);
      this.busy[i] = 0;
      this.pending--;
    }
  }
}
