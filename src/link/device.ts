// The boundary between frames and everything that reads or writes them (the wireguard-go shape:
// batched reads into caller-owned, long-lived buffers; writes of one frame from several parts).
//
// Every frame inside tapswitch starts with the 10-byte virtio-net header, whether or not the TAP
// itself carries one: a device without the header synthesizes a zero header on read and strips it
// on write, so the layers above see one frame format.

export interface RxBatch {
  /** The receive slab; frames live in it until the batch callback returns (or longer, if retained). */
  readonly buf: Uint8Array;
  readonly count: number;
  /** Frame i is buf[offsets[i], offsets[i] + lengths[i]), beginning with the virtio-net header. */
  readonly offsets: Int32Array;
  readonly lengths: Int32Array;
  /** The slot each frame lives in, for retain(). */
  readonly slots: Int32Array;
}

export interface DeviceCounters {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  txErrors: number;
  /** Reads skipped because every slot was retained (backpressure towards the container). */
  rxStalls: number;
}

export interface Device {
  readonly name: string;
  readonly counters: DeviceCounters;
  /** Begin delivering received batches to onBatch until close(). */
  start(onBatch: (batch: RxBatch) => void): void;
  /**
   * Keep a slot out of reuse after the batch callback returns: a zero-copy socket.write() of a
   * payload slice must not see the slot overwritten. Every retain needs one release.
   */
  retain(slot: number): void;
  release(slot: number): void;
  /** Send one frame given as parts (the first begins with the virtio-net header). False: dropped. */
  send(parts: readonly Uint8Array[]): boolean;
  /** Send one frame from a single buffer range. False: dropped. */
  sendRange(buf: Uint8Array, offset: number, length: number): boolean;
  close(): void;
}

export function newDeviceCounters(): DeviceCounters {
  return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txErrors: 0, rxStalls: 0 };
}
