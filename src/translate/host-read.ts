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
//   left, then replaced; the old one is freed by the GC once the guest has acknowledged every
//   chunk in it. A read under 16 KiB sends the flow back to the shared buffer.
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
/** A read smaller than this (that did not fill its room) ends the private buffer. */
const STREAM_END_BELOW = 16 * 1024;

export type HostChunkSink = (chunk: Buffer, more: boolean) => void;

export class HostReadPool {
  readonly shared: Buffer;
  /** Readers holding a private buffer. */
  streaming = 0;

  constructor(readonly bigSize = HOST_READ_BIG, readonly maxStreaming = 32, sharedSize = HOST_READ_SHARED) {
    this.shared = Buffer.allocUnsafeSlow(sharedSize);
    if (this.bigSize < MIN_ROOM * 2) this.bigSize = MIN_ROOM * 2;
  }

  /** A reader for one socket: pass it as `onread` (its buffer/callback), release() when done. */
  reader(sink: HostChunkSink): HostReader {
    return new HostReader(this, sink);
  }
}

export class HostReader {
  private buf: Buffer | null = null;
  private pos = 0;

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
      if (more && pool.streaming < pool.maxStreaming) {
        this.buf = Buffer.allocUnsafeSlow(pool.bigSize);
        this.pos = 0;
        pool.streaming++;
      }
    } else {
      const b = this.buf;
      chunk = b.subarray(this.pos, this.pos + n);
      this.pos += n;
      if (!more && n < STREAM_END_BELOW) this.release();
      else if (b.length - this.pos < MIN_ROOM) { this.buf = Buffer.allocUnsafeSlow(pool.bigSize); this.pos = 0; }
    }
    this.sink(chunk, more);
    return true; // keep reading: the caller pauses the socket itself
  };

  get isStreaming(): boolean { return this.buf !== null; }

  /** Give up the private buffer (the socket is done, or the flow went quiet). Idempotent. */
  release(): void {
    if (this.buf !== null) {
      this.buf = null;
      this.pos = 0;
      this.pool.streaming--;
    }
  }
}
