// The gateway: the virtual router's own addresses on a tapswitch network, as one switch port.
//
// Theory of operation
// -------------------
// The router is a station on the switch with MAC `gatewayMac` and the addresses network+2
// (gateway) and network+3 (DNS forwarder, when enabled). It sees frames addressed to its MAC plus
// every broadcast/multicast and unknown-unicast flood; it keeps what is addressed to it or to a
// group and ignores the rest.
//
//   ARP       requests for the gateway or DNS address are answered with gatewayMac. Nothing else
//             is answered: the guest only ARPs for on-link addresses, and (like slirp4netns) only
//             these two exist here. Senders are learned into the ARP table.
//   IPv4      the header is checked (length, version, header checksum; options are fine).
//             Fragments are dropped and counted: there is no reassembly (a container's kernel
//             does PMTU discovery and sends DF traffic; TSO superframes are not fragments).
//             Every packet's source, when inside the subnet, is learned into the ARP table.
//               - UDP to port 67 at the gateway or a broadcast address -> the DHCP server;
//               - ICMP echo request to the gateway/DNS address -> answered here;
//               - other ICMP to the gateway/DNS address -> dropped and counted;
//               - TCP/UDP to the gateway/DNS address, and TCP/UDP/ICMP to any other unicast
//                 destination -> onForward (the worker connects the translators);
//               - other broadcasts and multicasts -> dropped and counted.
//   IPv6, other ethertypes -> dropped and counted (IPv6 comes later).
//
// The router is also the translators' GuestSink: macFor() answers from the ARP table, and when an
// address is unknown sends an ARP request from the gateway address (at most one per address per
// second, and at most ARP_REQUESTS_PER_SECOND overall) and returns null; send() hands frames to
// the switch as coming from this port.
//
// Replies are built in buffers preallocated per router and sent with a virtio-net header of
// zeros: they are complete frames with every checksum filled in. Nothing here throws on input:
// every malformed or unwanted frame is counted under its own reason and dropped.
import { isMulticastMac, macEquals, prefixMask } from '../wire/addr';
import { ArpOp, ArpView, ARP_LEN, emitArp } from '../wire/arp';
import { checksum, pseudoHeaderSum4 } from '../wire/checksum';
import { ETH_HDR_LEN, EtherType, EthernetView, emitEthernet } from '../wire/ethernet';
import { type Counters, type Frame, count } from '../wire/frame';
import { IcmpType, IcmpView, finishIcmpChecksum } from '../wire/icmp';
import { IPV4_HDR_LEN, IpProtocol, Ipv4View, emitIpv4Header } from '../wire/ipv4';
import { UDP_HDR_LEN, UdpView, emitUdpHeader, setUdpChecksum } from '../wire/udp';
import { VNET_HDR_LEN, emitVnetNone } from '../wire/vnet';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from '../wire/dhcp';
import type { Switch, SwitchPort } from '../switch/switch';
import type { GuestSink } from '../translate/types';
import type { DataPlaneConfig } from '../worker/protocol';
import { DhcpServer } from './dhcp-server';

export type RouterConfig = Pick<DataPlaneConfig,
  'network' | 'prefixLength' | 'gateway' | 'dns' | 'dhcpStart' | 'dhcpCount' | 'gatewayMac' | 'mtu'>;

export type ForwardFn = (frame: Frame, eth: EthernetView, ip: Ipv4View) => void;

export interface RouterOptions {
  /** The switch this router is a port of; the constructor adds it (with `id`) and pins gatewayMac to it. */
  switch: Switch;
  /** Packets for the translators (see the theory above); eth and ip are bound to `frame`. */
  onForward: ForwardFn;
  /** Port id on the switch. Default 0. */
  id?: number;
  counters?: Counters;
  /** Monotonic clock in milliseconds. Default: performance.now(). */
  now?: () => number;
  /** GuestSink.offloads: the guest's links carry NEEDS_CSUM/TSO. Default true. */
  offloads?: boolean;
  /** The DHCP server; default one built from the config (same counters and clock); null: none. */
  dhcp?: DhcpServer | null;
  /** Bound of the ARP table (guest IPv4 -> MAC). Default 1024. */
  arpTableSize?: number;
}

/** Overall cap on ARP requests macFor() may send. */
export const ARP_REQUESTS_PER_SECOND = 32;
/** Minimum interval between two ARP requests for the same address. */
export const ARP_RETRY_MS = 1000;
/** How many addresses the per-address rate limit remembers. */
const ARP_PENDING_MAX = 256;

const ETH = VNET_HDR_LEN;
const IP = ETH + ETH_HDR_LEN;
const L4 = IP + IPV4_HDR_LEN;
const MAX_FRAME = IP + 0xffff;
const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);
const NO_OWNER = { retain(): void {}, release(): void {} };

function copyMac(dst: Uint8Array, d: number, src: Uint8Array, s: number): void {
  dst[d] = src[s]!; dst[d + 1] = src[s + 1]!; dst[d + 2] = src[s + 2]!;
  dst[d + 3] = src[s + 3]!; dst[d + 4] = src[s + 4]!; dst[d + 5] = src[s + 5]!;
}

/** Big-endian 32 bits as a signed int32 (see the note on addresses in Router). */
function i32(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

export class Router implements SwitchPort, GuestSink {
  readonly id: number;
  readonly gatewayMac: Uint8Array;
  readonly offloads: boolean;
  readonly counters: Counters;
  readonly dhcp: DhcpServer | null;
  private readonly sw: Switch;
  private readonly onForward: ForwardFn;
  private readonly now: () => number;
  private readonly cfg: RouterConfig;
  // Addresses on the packet path are signed int32 (`a | 0`): small integers, which V8 never boxes,
  // where a u32 above 2^31 (e.g. 192.168.x.x) would become a heap number at every call boundary.
  private readonly mask32: number;
  private readonly net32: number;
  private readonly bcast32: number;
  private readonly gw32: number;
  /** 0 when the DNS forwarder is disabled. */
  private readonly dns32: number;

  private readonly eth = new EthernetView();
  private readonly ip = new Ipv4View();
  private readonly arp = new ArpView();
  private readonly icmp = new IcmpView();
  private readonly udp = new UdpView();

  /** Replies (ARP, ICMP echo, DHCP) are built here; one reply at a time, sent synchronously. */
  private readonly out = new Uint8Array(MAX_FRAME);
  private readonly outFrame: Frame;
  /** ARP requests from macFor(), which may run while `out` is in use. */
  private readonly arpOut = new Uint8Array(ETH + ETH_HDR_LEN + ARP_LEN);
  private readonly arpFrame: Frame;
  /** Frames given as parts are gathered here (deliverParts is not a hot path). */
  private readonly gather = new Uint8Array(MAX_FRAME);
  private readonly gatherFrame: Frame;
  private ident = 0;

  /** Keyed by the address as a signed int32 (ip | 0): a small integer, so lookups never box. */
  private readonly arpTable = new Map<number, Uint8Array>();
  private readonly arpTableSize: number;
  private readonly arpPending = new Map<number, number>();
  private arpWindowStart = -Infinity;
  private arpWindowCount = 0;

  constructor(cfg: RouterConfig, opts: RouterOptions) {
    if (cfg.gatewayMac.length !== 6) throw new Error('router: gatewayMac must have 6 bytes');
    this.cfg = cfg;
    this.id = opts.id ?? 0;
    this.gatewayMac = Uint8Array.from(cfg.gatewayMac);
    this.offloads = opts.offloads ?? true;
    this.counters = opts.counters ?? {};
    this.now = opts.now ?? (() => performance.now());
    this.dhcp = opts.dhcp === undefined ? new DhcpServer(cfg, { counters: this.counters, now: this.now }) : opts.dhcp;
    this.arpTableSize = Math.max(1, opts.arpTableSize ?? 1024);
    this.mask32 = prefixMask(cfg.prefixLength) | 0;
    this.net32 = cfg.network & this.mask32;
    this.bcast32 = this.net32 | ~this.mask32;
    this.gw32 = cfg.gateway | 0;
    this.dns32 = cfg.dns | 0;
    this.outFrame = { buf: this.out, off: 0, len: 0, slot: -1, owner: NO_OWNER };
    this.arpFrame = { buf: this.arpOut, off: 0, len: this.arpOut.length, slot: -1, owner: NO_OWNER };
    this.gatherFrame = { buf: this.gather, off: 0, len: 0, slot: -1, owner: NO_OWNER };
    this.sw = opts.switch;
    this.onForward = opts.onForward;
    this.sw.addPort(this);
    // Frames to the gateway MAC come here from the start, and no container can take the MAC over.
    this.sw.pin(this, this.gatewayMac);
  }

  // ---- GuestSink ----

  macFor(ip: number): Uint8Array | null {
    const m = this.arpTable.get(ip | 0);
    if (m !== undefined) return m;
    this.requestArp(ip | 0);
    return null;
  }

  macFor6(_b: Uint8Array, _o: number): Uint8Array | null {
    return null; // no IPv6 neighbour table yet
  }

  send(parts: readonly Uint8Array[]): boolean {
    return this.sw.inputParts(this, parts);
  }

  /** Known guest addresses (control path: stats, tests). */
  arpEntries(): Array<[ip: number, mac: Uint8Array]> {
    return [...this.arpTable].map(([ip, mac]) => [ip >>> 0, mac.slice()]);
  }

  // ---- SwitchPort ----

  deliverParts(parts: readonly Uint8Array[]): void {
    let n = 0;
    for (let i = 0; i < parts.length; i++) n += parts[i]!.length;
    if (n > this.gather.length) { count(this.counters, 'gw_too_big_dropped'); return; }
    let o = 0;
    for (let i = 0; i < parts.length; i++) { const p = parts[i]!; this.gather.set(p, o); o += p.length; }
    this.gatherFrame.len = n;
    this.deliver(this.gatherFrame);
  }

  deliver(frame: Frame): void {
    const c = this.counters;
    const b = frame.buf;
    const eth = this.eth;
    if (frame.len < ETH + ETH_HDR_LEN || !eth.bind(b, frame.off + ETH, frame.len - ETH)) {
      count(c, 'gw_runt_dropped');
      return;
    }
    const dst = eth.dstOffset;
    if (!isMulticastMac(b, dst) && !macEquals(b, dst, this.gatewayMac, 0)) {
      count(c, 'gw_not_for_us');
      return;
    }
    count(c, 'gw_rx');
    switch (eth.etherType) {
      case EtherType.IPV4: this.onIpv4(frame); return;
      case EtherType.ARP: this.onArp(); return;
      case EtherType.IPV6: count(c, 'gw_ipv6_dropped'); return;
      default: count(c, 'gw_ethertype_dropped'); return;
    }
  }

  // ---- ARP ----

  private onArp(): void {
    const c = this.counters;
    const eth = this.eth;
    const arp = this.arp;
    const b = eth.b;
    if (!arp.bind(b, eth.payloadOffset, eth.payloadLength)) { count(c, 'arp_malformed'); return; }
    const spa = arp.spa | 0;
    this.learn(spa, b, arp.shaOffset);
    const oper = arp.oper;
    if (oper === ArpOp.REPLY) { count(c, 'arp_reply_rx'); return; }
    if (oper !== ArpOp.REQUEST) { count(c, 'arp_bad_oper'); return; }
    const tpa = arp.tpa | 0;
    if (!this.isOwnAddress(tpa)) { count(c, 'arp_request_ignored'); return; }
    const out = this.out;
    emitVnetNone(out, 0);
    emitEthernet(out, ETH, ZERO_MAC, this.gatewayMac, EtherType.ARP);
    copyMac(out, ETH, b, eth.srcOffset);
    emitArp(out, IP, ArpOp.REPLY, this.gatewayMac, tpa, ZERO_MAC, spa);
    copyMac(out, IP + 18, b, arp.shaOffset);
    this.emit(IP + ARP_LEN);
    count(c, 'arp_reply_sent');
  }

  /** Learn ip (int32) -> MAC (at b[macOff]) when ip is a possible guest address on the subnet. */
  private learn(ip: number, b: Uint8Array, macOff: number): void {
    if (!this.isGuestAddress(ip) || isMulticastMac(b, macOff)) return;
    const table = this.arpTable;
    const known = table.get(ip);
    if (known !== undefined) {
      if (macEquals(known, 0, b, macOff)) return;
      count(this.counters, 'arp_table_updated');
    } else {
      if (table.size >= this.arpTableSize) {
        for (const k of table.keys()) { table.delete(k); break; }
        count(this.counters, 'arp_table_evicted');
      }
      count(this.counters, 'arp_table_learned');
    }
    // A fresh array, so a MAC a translator holds never changes under it.
    const mac = new Uint8Array(6);
    copyMac(mac, 0, b, macOff);
    table.set(ip, mac);
    this.arpPending.delete(ip);
  }

  /** ip is int32. */
  private requestArp(ip: number): void {
    const c = this.counters;
    if (!this.isGuestAddress(ip)) {
      count(c, 'arp_lookup_offlink');
      return;
    }
    const now = this.now();
    const last = this.arpPending.get(ip);
    if (last !== undefined && now - last < ARP_RETRY_MS) { count(c, 'arp_request_rate_limited'); return; }
    if (now - this.arpWindowStart >= 1000) { this.arpWindowStart = now; this.arpWindowCount = 0; }
    if (this.arpWindowCount >= ARP_REQUESTS_PER_SECOND) { count(c, 'arp_request_rate_limited'); return; }
    this.arpWindowCount++;
    if (last !== undefined) this.arpPending.delete(ip);
    else if (this.arpPending.size >= ARP_PENDING_MAX) {
      for (const k of this.arpPending.keys()) { this.arpPending.delete(k); break; }
    }
    this.arpPending.set(ip, now);
    const out = this.arpOut;
    emitVnetNone(out, 0);
    emitEthernet(out, ETH, BROADCAST_MAC, this.gatewayMac, EtherType.ARP);
    emitArp(out, IP, ArpOp.REQUEST, this.gatewayMac, this.cfg.gateway, ZERO_MAC, ip >>> 0);
    this.sw.input(this, this.arpFrame);
    count(c, 'arp_request_sent');
  }

  // ---- IPv4 ----

  private onIpv4(frame: Frame): void {
    const c = this.counters;
    const eth = this.eth;
    const ip = this.ip;
    const b = eth.b;
    if (!ip.bind(b, eth.payloadOffset, eth.payloadLength)) { count(c, 'ipv4_malformed'); return; }
    if (!ip.headerChecksumValid) { count(c, 'ipv4_bad_checksum'); return; }
    const src = i32(b, ip.o + 12); // Source Address
    const dst = i32(b, ip.o + 16); // Destination Address
    this.learn(src, b, eth.srcOffset);
    if (ip.isFragment) { count(c, 'ipv4_fragment_dropped'); return; }
    const proto = ip.protocol;
    const toUs = this.isOwnAddress(dst);
    const broadcast = dst === -1 || dst === this.bcast32;

    if (proto === IpProtocol.UDP && (broadcast || dst === this.gw32)) {
      const udp = this.udp;
      if (!udp.bind(b, ip.payloadOffset, ip.payloadLength)) { count(c, 'udp_malformed'); return; }
      if (udp.dstPort === DHCP_SERVER_PORT && this.dhcp !== null) { this.onDhcp(); return; }
    }
    if (toUs) {
      if (proto === IpProtocol.TCP || proto === IpProtocol.UDP) this.forward(frame);
      else if (proto === IpProtocol.ICMP) this.onIcmp(dst, src);
      else count(c, 'ipv4_to_gateway_dropped');
      return;
    }
    if (broadcast) { count(c, 'ipv4_broadcast_dropped'); return; }
    if (dst >>> 28 === 0xe) { count(c, 'ipv4_multicast_dropped'); return; }
    this.forward(frame);
  }

  private forward(frame: Frame): void {
    count(this.counters, 'ipv4_forwarded');
    this.onForward(frame, this.eth, this.ip);
  }

  /** ICMP to one of our addresses: echo requests are answered, everything else dropped. */
  private onIcmp(self: number, peer: number): void {
    const c = this.counters;
    const icmp = this.icmp;
    const ip = this.ip;
    const b = ip.b;
    if (!icmp.bind(b, ip.payloadOffset, ip.payloadLength)) { count(c, 'icmp_malformed'); return; }
    if (icmp.type !== IcmpType.ECHO_REQUEST || icmp.code !== 0) { count(c, 'icmp_to_gateway_dropped'); return; }
    if (!icmp.checksumValid) { count(c, 'icmp_bad_checksum'); return; }
    const n = icmp.n;
    const out = this.out;
    // The request is copied whole (id, sequence, data); only type and checksum change.
    out.set(b.subarray(icmp.o, icmp.o + n), L4);
    out[L4] = IcmpType.ECHO_REPLY;
    finishIcmpChecksum(out, L4, n);
    emitVnetNone(out, 0);
    emitEthernet(out, ETH, ZERO_MAC, this.gatewayMac, EtherType.IPV4);
    copyMac(out, ETH, b, this.eth.srcOffset);
    emitIpv4Header(out, IP, IPV4_HDR_LEN + n, this.ident++, 64, IpProtocol.ICMP, self, peer, false);
    this.emit(L4 + n);
    count(c, 'icmp_echo_reply_sent');
  }

  // ---- DHCP ----

  private onDhcp(): void {
    const dhcp = this.dhcp!;
    const udp = this.udp;
    const out = this.out;
    const at = L4 + UDP_HDR_LEN;
    const n = dhcp.handle(udp.b, udp.payloadOffset, udp.payloadLength, out, at);
    if (n === 0) return;
    const dstIp = dhcp.replyDstIp;
    emitVnetNone(out, 0);
    emitEthernet(out, ETH, BROADCAST_MAC, this.gatewayMac, EtherType.IPV4);
    // Unicast replies go to the client's hardware address (chaddr, at offset 28 of the message).
    if (!dhcp.replyBroadcast) copyMac(out, ETH, out, at + 28);
    const udpLen = UDP_HDR_LEN + n;
    emitIpv4Header(out, IP, IPV4_HDR_LEN + udpLen, this.ident++, 64, IpProtocol.UDP, this.cfg.gateway, dstIp, false);
    emitUdpHeader(out, L4, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, udpLen);
    const sum = checksum(out, L4, udpLen, pseudoHeaderSum4(this.cfg.gateway, dstIp, IpProtocol.UDP, udpLen));
    setUdpChecksum(out, L4, sum === 0 ? 0xffff : sum);
    this.emit(L4 + udpLen);
    count(this.counters, 'dhcp_reply_sent');
  }

  // ---- helpers ----

  /** a (int32) is the gateway or the DNS address. */
  private isOwnAddress(a: number): boolean {
    return a === this.gw32 || (this.dns32 !== 0 && a === this.dns32);
  }

  /** a (int32) is on the subnet and could be a guest: not the network, broadcast or our own address. */
  private isGuestAddress(a: number): boolean {
    return (a & this.mask32) === this.net32 && a !== this.net32 && a !== this.bcast32 && !this.isOwnAddress(a);
  }

  /** Send out[0, len) through the switch as coming from this port. */
  private emit(len: number): void {
    this.outFrame.len = len;
    this.sw.input(this, this.outFrame);
  }
}
