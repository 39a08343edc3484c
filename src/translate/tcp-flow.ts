// One translated TCP connection: the guest's side (sequence numbers, windows, retransmission
// state) and the host socket that carries its bytes.
//
// States (what each allows):
//   CONNECTING   guest SYN seen, host connect() in flight. Retransmitted SYNs are ignored; nothing
//                is sent to the guest until the host answers (SYN-ACK, RST or ICMP).
//   SYNACK_SENT  host connected, SYN-ACK sent (retransmitted on a timer). The host socket stays
//                paused: bytes a server sends first wait until the guest's ACK arrives.
//   ESTABLISHED  bytes flow both ways. Half-closes are events on top of this state, not states:
//                GUEST_FIN (guest sent FIN, socket.end() called), HOST_EOF (socket 'end'),
//                FIN_ACKED (our FIN, sent after the last queued byte, was acknowledged).
//   SYN_SENT     inbound flow (port forward): the host socket was accepted, our SYN went to the
//                guest (retransmitted on a timer); its SYN-ACK makes the flow ESTABLISHED, its RST
//                resets the host socket.
//   LINGER       both directions finished (or the flow is being torn down): the entry stays a few
//                seconds to re-ACK a retransmitted FIN, and is the first thing evicted when the
//                table is full. A new SYN for the same tuple replaces it.
//
// Sequence space on the host->guest side is tracked as 53-bit stream offsets (byte 0 is the first
// byte after our SYN), never wrapping; seqOf() maps an offset to the 32-bit wire value.
import type { Socket } from 'node:net';
import type { SlotOwner } from '../wire/frame';
import type { FlowEntry } from './flow-table';
import type { HostReader } from './host-read';
import type { WheelEntry } from './tcp-timers';
import { FRAME6_HDR_LEN, FRAME_HDR_LEN, TEMPLATE6_LEN, TEMPLATE_LEN } from './tcp-emit';

export const TcpFlowState = { CONNECTING: 0, SYNACK_SENT: 1, ESTABLISHED: 2, LINGER: 3, SYN_SENT: 4 } as const;
export type TcpFlowState = (typeof TcpFlowState)[keyof typeof TcpFlowState];
export const TCP_STATE_NAMES = ['CONNECTING', 'SYNACK_SENT', 'ESTABLISHED', 'LINGER', 'SYN_SENT'] as const;

export const TcpEvent = {
  /** Guest FIN received in order; socket.end() called. */
  GUEST_FIN: 1,
  /** Host socket 'end': our FIN goes out after the last queued byte. */
  HOST_EOF: 2,
  /** Our FIN was acknowledged by the guest. */
  FIN_ACKED: 4,
  /** Host socket 'close' seen. */
  SOCKET_CLOSED: 8,
  /** Host socket failed (reset, EPIPE...): RST the guest once queued bytes are delivered. */
  HOST_RESET: 16,
} as const;

/** Bytes read from the host socket, kept until the guest acknowledges them. */
export class SendQueue {
  private chunks: (Buffer | null)[] = [];
  /** starts[i] = stream offset of chunks[i][0]. */
  private starts: number[] = [];
  private head = 0;
  /** Stream offset one past the last byte queued. */
  endOff = 0;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.starts.push(this.endOff);
    this.endOff += b.length;
  }

  /** Forget whole chunks that lie before stream offset `off`. */
  trim(off: number): void {
    const chunks = this.chunks;
    const starts = this.starts;
    let h = this.head;
    while (h < chunks.length && starts[h]! + chunks[h]!.length <= off) { chunks[h] = null; h++; }
    this.head = h;
    if (h > 32 && h * 2 > chunks.length) {
      chunks.splice(0, h);
      starts.splice(0, h);
      this.head = 0;
    }
  }

  /** Push views of bytes [off, off+len) onto parts (no copy). The range must be queued. */
  collect(parts: Uint8Array[], off: number, len: number): void {
    const chunks = this.chunks;
    const starts = this.starts;
    // Binary search the chunk holding `off`.
    let lo = this.head;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= off) lo = mid; else hi = mid - 1;
    }
    let i = lo;
    while (len > 0 && i < chunks.length) {
      const c = chunks[i]!;
      const from = off - starts[i]!;
      const n = Math.min(c.length - from, len);
      parts.push(from === 0 && n === c.length ? c : c.subarray(from, from + n));
      off += n;
      len -= n;
      i++;
    }
  }

  clear(): void {
    this.chunks.length = 0;
    this.starts.length = 0;
    this.head = 0;
  }
}

/**
 * Writes handed to the host socket, oldest first. Node calls a stream's write callbacks in order,
 * so one bound callback per flow pops the head: no closure per write.
 */
export class WriteRing {
  private slots = new Int32Array(16);
  private lens = new Int32Array(16);
  private owners: (SlotOwner | null)[] = new Array<SlotOwner | null>(16).fill(null);
  private h = 0;
  size = 0;

  push(slot: number, owner: SlotOwner | null, len: number): void {
    if (this.size === this.slots.length) this.grow();
    const i = (this.h + this.size) & (this.slots.length - 1);
    this.slots[i] = slot;
    this.lens[i] = len;
    this.owners[i] = owner;
    this.size++;
  }

  /** Pop the oldest write: releases its slot (if it held one) and returns its length. */
  pop(): { len: number; retained: boolean } | null {
    if (this.size === 0) return null;
    const i = this.h;
    const owner = this.owners[i];
    const slot = this.slots[i]!;
    this.owners[i] = null;
    this.h = (i + 1) & (this.slots.length - 1);
    this.size--;
    const len = this.lens[i]!;
    if (owner && slot >= 0) owner.release(slot);
    POP.len = len;
    POP.retained = owner !== null && slot >= 0;
    return POP;
  }

  private grow(): void {
    const n = this.slots.length * 2;
    const slots = new Int32Array(n);
    const lens = new Int32Array(n);
    const owners = new Array<SlotOwner | null>(n).fill(null);
    for (let k = 0; k < this.size; k++) {
      const j = (this.h + k) & (this.slots.length - 1);
      slots[k] = this.slots[j]!;
      lens[k] = this.lens[j]!;
      owners[k] = this.owners[j] ?? null;
    }
    this.slots = slots; this.lens = lens; this.owners = owners; this.h = 0;
  }
}
const POP = { len: 0, retained: false };

export class TcpFlow implements FlowEntry, WheelEntry {
  // FlowEntry
  hashNext: FlowEntry | null = null;
  allPrev: FlowEntry | null = null;
  allNext: FlowEntry | null = null;
  // WheelEntry
  timerAt = 0;
  wheelTick = -1;
  wheelPrev: WheelEntry | null = null;
  wheelNext: WheelEntry | null = null;
  /** Membership of the connecting or linger list (intrusive). */
  listId = 0;
  lPrev: TcpFlow | null = null;
  lNext: TcpFlow | null = null;

  state: TcpFlowState = TcpFlowState.CONNECTING;
  /** Opened from the host side (port forward) rather than by a guest SYN. */
  inbound = false;
  /** The guest's MAC is known (inbound flows may have to wait for ARP). */
  macKnown = true;
  events = 0;
  removed = false;
  socket: Socket | null = null;
  /** Socket flowing (resumed). */
  reading = false;
  errorCode = '';

  /** Header template and views over it: data/ACK frames, and the SYN-ACK with options. */
  /** (IPv6 flows: 20 bytes longer; options always start at head.length.) */
  readonly tmpl: Uint8Array;
  readonly head: Uint8Array;
  synHead: Uint8Array;
  ipId = 0;
  readonly guestMac = new Uint8Array(6);
  /** The guest's SYN: IP header + 8 bytes, for ICMP errors. */
  quote: Uint8Array = new Uint8Array(0);

  // Guest -> host (we receive).
  guestIsn = 0;
  /** Next sequence number expected from the guest. */
  rcvNxt = 0;
  /** Right edge of the last window we advertised (sequence number). */
  rcvAdvEdge = 0;
  /** Last advertised window in bytes. */
  lastAdvWnd = 0;
  /** The guest offered window scaling: both directions scale. */
  wsOk = false;
  /** Our window scale shift (0 when the guest offered none). */
  rcvShift = 0;
  /** Bytes handed to socket.write() whose callback has not run. */
  pendingWrite = 0;
  /** The host socket is corked until the end of the current receive batch. */
  corked = false;
  /** Slots held by pending zero-copy writes. */
  retainedSlots = 0;
  readonly writes = new WriteRing();

  // Host -> guest (we send).
  ourIsn = 0;
  sndUnaOff = 0;
  sndNxtOff = 0;
  /** Highest offset ever sent (sndNxt rewinds on RTO). */
  sndMaxOff = 0;
  readonly sndq = new SendQueue();
  /** Guest's window in bytes (scaled). */
  sndWnd = 0;
  guestShift = 0;
  /** Guest's MSS (from its SYN, clamped): gso_size and our segment size. */
  mss = 536;
  /** After an RTO: send no further than this offset until an ACK arrives (-1: no limit). */
  recoverOff = -1;
  dupAcks = 0;

  // Retransmission timing (ms).
  srtt = 0;
  rttvar = 0;
  rto = 1000;
  /** Offset whose ACK completes the current RTT sample; -1 = none (Karn). */
  rttOff = -1;
  rttStart = 0;
  retransmits = 0;
  /** Deadline of the state's protocol timer (connect, SYN-ACK, RTO, persist, linger); 0 = none. */
  rtxAt = 0;
  persist = false;

  createdAt = 0;
  lastSeen = 0;
  /** Last frame we sent for this flow (coarse clock). */
  lastTx = 0;
  ackPending = false;
  /**
   * The host socket's last read filled its buffer, so more bytes are probably ready: a tail shorter
   * than a full superframe waits for them until the end of this event-loop turn (see holdTail).
   */
  hostMore = false;
  /** On the translator's list of flows whose tail is held. */
  tailHeld = false;
  /** Reads the host socket into pooled buffers (outbound flows; null: Node's own 'data' reads). */
  reader: HostReader | null = null;

  /** Bound once: the host socket's write callback. */
  onWritten: (err?: Error | null) => void = () => {};

  /**
   * An IPv4 flow, or with guestIp6/remoteIp6 (16 bytes each) an IPv6 one whose guestIp/remoteIp
   * are fold6() of them (flow-table.ts).
   */
  constructor(readonly guestIp: number, readonly guestPort: number, readonly remoteIp: number,
    readonly remotePort: number, readonly guestIp6: Uint8Array | null = null,
    readonly remoteIp6: Uint8Array | null = null) {
    const v6 = guestIp6 !== null;
    this.tmpl = new Uint8Array(v6 ? TEMPLATE6_LEN : TEMPLATE_LEN);
    this.head = this.tmpl.subarray(0, v6 ? FRAME6_HDR_LEN : FRAME_HDR_LEN);
    this.synHead = this.head;
  }

  seqOf(off: number): number {
    return (this.ourIsn + 1 + off) >>> 0;
  }
}

/** Intrusive list of flows (oldest first), for the connecting and linger classes. */
export class FlowList {
  head: TcpFlow | null = null;
  tail: TcpFlow | null = null;
  size = 0;

  constructor(readonly id: number) {}

  push(f: TcpFlow): void {
    if (f.listId !== 0) return;
    f.listId = this.id;
    f.lPrev = this.tail;
    f.lNext = null;
    if (this.tail) this.tail.lNext = f; else this.head = f;
    this.tail = f;
    this.size++;
  }

  remove(f: TcpFlow): void {
    if (f.listId !== this.id) return;
    if (f.lPrev) f.lPrev.lNext = f.lNext; else this.head = f.lNext;
    if (f.lNext) f.lNext.lPrev = f.lPrev; else this.tail = f.lPrev;
    f.lPrev = null;
    f.lNext = null;
    f.listId = 0;
    this.size--;
  }
}
