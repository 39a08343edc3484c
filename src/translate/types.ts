// What the translators need from the rest of the data path, and what they offer it.
import type { Counters, Frame } from '../wire/frame';
import type { EthernetView } from '../wire/ethernet';
import type { Ipv4View } from '../wire/ipv4';
import type { Ipv6View } from '../wire/ipv6';
import type { DataPlaneConfig, LogLevel } from '../worker/protocol';

/** The way back to the container: frames built by a translator are sent through it. */
export interface GuestSink {
  /** The gateway's MAC: source of every frame the translators build. */
  readonly gatewayMac: Uint8Array;
  /** The guest's MAC for an IPv4 address, or null when not yet known (an ARP request goes out). */
  macFor(ip: number): Uint8Array | null;
  /**
   * The guest's MAC for the 16-byte IPv6 address at b[o], or null when not yet known (a Neighbor
   * Solicitation goes out, rate-limited).
   */
  macFor6(b: Uint8Array, o: number): Uint8Array | null;
  /** Send one frame (virtio-net header first) made of parts. False: dropped. */
  send(parts: readonly Uint8Array[]): boolean;
  /** True when the guest's link carries offloads (NEEDS_CSUM/TSO); else full checksums are needed. */
  readonly offloads: boolean;
}

export interface Logger {
  enabled(level: LogLevel): boolean;
  log(level: LogLevel, msg: string): void;
}

/**
 * One protocol's translator (TCP, UDP, ICMP). onPacket takes an IPv4 packet from the guest whose
 * protocol it handles; eth and ip are bound to `frame`. It never throws: malformed input is
 * counted and dropped.
 */
export interface ProtocolTranslator {
  onPacket(frame: Frame, eth: EthernetView, ip: Ipv4View): void;
  /**
   * The same for an IPv6 packet from the guest (only when config.ipv6 is set). ip is bound to
   * `frame`; upper-layer protocol = ip.nextHeader (extension headers are not walked: packets
   * carrying them are dropped and counted by the router before they get here).
   */
  onPacket6(frame: Frame, eth: EthernetView, ip: Ipv6View): void;
  /** Number of live flows (bounded). */
  readonly flowCount: number;
  /** Close every host socket and forget every flow. */
  close(): void;
}

export interface TranslatorContext {
  config: DataPlaneConfig;
  sink: GuestSink;
  counters: Counters;
  log: Logger;
}
