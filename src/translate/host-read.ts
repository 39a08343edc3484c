// Reading host stream sockets into buffers tapswitch chooses (net.Socket's `onread` option), so a
// busy flow reads several superframes' worth of bytes per syscall and keeps them without a copy.
//
// Theory of operation
// - Node reads a stream socket 64 KiB at a time into a fresh buffer and calls JS once per read.
//   On host -> guest bulk transfers that is one recvmsg per 64 KiB, and each recvmsg on a busy
//   socket also sends the peer a window update (on loopback the peer's ACK processing, and the
//   wakeup of the sending process, run in our thread). Fewer, larger reads cost less per byte.
// - With `onread: { buffer: fn, callback }`, Node reads into the buffer fn() returned and calls
//   callback(nread, buffer); after each read it calls fn() again for the next buffer.
// - Every socket starts on the pool's one shared buffer: reads are copied out of it (small, or
//   idle flows pin no memory of their own). A read that fills the shared buffer means the flow
//   is streaming: it gets a private buffer (1 MiB) and later reads land in its free room; a
//   chunk handed on is a view of that buffer, so the bytes kept for retransmission are the bytes
//   the kernel wrote (no copy). A private buffer is carved until less than 64 KiB of room is
//   left, then replaced; the old one is reused once the guest has acknowledged every chunk in it
//   (below). A read under 16 KiB sends the flow back to the shared buffer.
// - Reuse: a buffer no longer read into is retired with the stream offset just past its last
//   chunk; when the guest has acknowledged that far (the caller's send queue has dropped every view
//   of it: nothing else keeps one, TAP writes are synchronous), acked() returns it to the pool's
//   free list for the next streaming read. Bulk flows then allocate nothing in steady state and the
//   GC has no 1 MiB garbage to find (it held ~65 MiB of it at peak).
// - Bounds: at most maxStreaming flows hold a private buffer at once (others keep copying out of
//   the shared one), so the memory pinned beyond the flows' queued bytes is at most
//   maxStreaming x bigSize.
// - `more` tells the caller the read filled the room it had: the socket probably holds more, so a
//   short tail may wait for the next read (tcp.ts sends it at the end of the event-loop turn).

/** Size of the shared buffer: what Node itself reads at once. */
export const HOST_READ_SHARED = 64 * 1024;
/**
 * A streaming flow's private read buffer. Each recvmsg on a backlogged socket sends the peer a
 * window update: measured on iperf3 -R, 256 KiB reads vs 64 KiB cut CPU/GB by a fifth, 1 MiB reads
 * by another third (the update then is under a tenth of the read's cost; the copy is the rest).
 */
export const HOST_READ_BIG = 1024 * 1024;
/** Replace a private buffer when less room than this is left in it. */
const MIN_ROOM = 64 * 1024;
/** Recycled buffers kept for reuse at most, 1 MiB each (beyond, the GC frees them). */
const MAX_FREE = 32;
/** A read smaller than this (that did not fill its room) ends the private buffer. */
const STREAM_END_BELOW = 16 * 1024;

export type HostChunkSink = (chunk: Buffer, more: boolean) => void;

export class HostReadPool {
  readonly shared: Buffer;
  /** Readers holding a private buffer. */
  streaming = 0;
  /** Private buffers whose every byte the guest has acknowledged, ready for reuse. */
  private readonly free: Buffer[] = [];
  /** Buffers allocated / reused (for tests and stats). */
  allocated = 0;
  reused = 0;

  constructor(readonly bigSize = HOST_READ_BIG, readonly maxStreaming = 32, sharedSize = HOST_READ_SHARED) {
    this.shared = Buffer.allocUnsafeSlow(sharedSize);
    if (this.bigSize < MIN_ROOM * 2) this.bigSize = MIN_ROOM * 2;
  }

  /** A reader for one socket: pass it as `onread` (its buffer/callback), release() when done. */
  reader(sink: HostChunkSink): HostReader {
    return new HostReader(this, sink);
  }

  /** A private buffer: a recycled one if any. */
  take(): Buffer {
    const b = this.free.pop();
    if (b !== undefined) { this.reused++; return b; }
    this.allocated++;
    return Buffer.allocUnsafeSlow(this.bigSize);
  }

  /** A buffer nothing refers to any more (see HostReader.acked). */
  give(b: Buffer): void {
    if (this.free.length < MAX_FREE && b.length === this.bigSize) this.free.push(b);
  }
}

export class HostReader {
  private buf: Buffer | null = null;
  private pos = 0;
  /** Bytes handed to the sink so far: the stream offset of the next chunk. */
  private delivered = 0;
  /**
   * Private buffers no longer read into, oldest first, with the stream offset just past their last
   * chunk: once the guest has acknowledged that far, the sender has dropped every view of it.
   */
  private readonly retired: Buffer[] = [];
  private readonly retiredEnd: number[] = [];

  constructor(private readonly pool: HostReadPool, private readonly sink: HostChunkSink) {}

  /** Node's onread.buffer: the room for the next read. */
  readonly buffer = (): Uint8Array => {
    const b = this.buf;
    return b === null ? this.pool.shared : b.subarray(this.pos);
  };

  /** Node's onread.callback: `n` bytes were read into `room` (the last buffer() result). */
  readonly callback = (n: number, room: Uint8Array): boolean => {
    const pool = this.pool;
    const more = n >= room.length;
    let chunk: Buffer;
    if (room === pool.shared || this.buf === null) {
      chunk = Buffer.allocUnsafe(n);
      chunk.set(room.subarray(0, n));
      this.delivered += n;
      if (more && pool.streaming < pool.maxStreaming) {
        this.buf = pool.take();
        this.pos = 0;
        pool.streaming++;
      }
    } else {
      const b = this.buf;
      chunk = b.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.delivered += n;
      if (!more && n < STREAM_END_BELOW) {
        // Quiet: back to the shared buffer (the next buffer() call); this one is done.
        this.retire(b);
        this.buf = null;
        this.pos = 0;
        pool.streaming--;
      } else if (b.length - this.pos < MIN_ROOM) {
        this.retire(b);
        this.buf = pool.take();
        this.pos = 0;
      }
    }
    this.sink(chunk, more);
    return true; // keep reading: the caller pauses the socket itself
  };

  get isStreaming(): boolean { return this.buf !== null; }

  private retire(b: Buffer): void {
    this.retired.push(b);
    this.retiredEnd.push(this.delivered);
  }

  /**
   * The guest acknowledged the stream up to offset `off` and the sender dropped its views of those
   * bytes (SendQueue.trim): retired buffers that end at or before it go back to the pool.
   */
  acked(off: number): void {
    const ends = this.retiredEnd;
    while (ends.length > 0 && ends[0]! <= off) {
      ends.shift();
      this.pool.give(this.retired.shift()!);
    }
  }

  /** The socket is done: drop the private buffer (not reused: the caller may still hold views). Idempotent. */
  release(): void {
    this.retired.length = 0;
    this.retiredEnd.length = 0;
    if (this.buf !== null) {
      this.buf = null;
      this.pos = 0;
      this.pool.streaming--;
    }
  }
}
