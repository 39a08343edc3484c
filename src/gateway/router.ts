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
//   IPv6      only with config.ipv6 (slirp4netns -6); without it every IPv6 frame is counted and
//             dropped. The router then also owns fe80::2 (link-local, source of its NDP), the
//             gateway fd00::2 and the DNS address fd00::3 (when enabled) on the /64 prefix:
//               - NDP (RFC 4861; hop limit 255, code 0 and checksum checked, options walked):
//                 NS for our addresses -> NA (Router, Solicited, Override flags, our MAC); a DAD
//                 probe (source ::) for one of our addresses is defended with a multicast NA
//                 (§7.2.4, RFC 4862 §5.4.3), any other DAD probe is never answered; RS -> RA
//                 (unicast to its source, or to ff02::1 from ::); NA -> neighbour cache; RA and
//                 Redirect from the guest -> dropped and counted;
//               - RAs (also unsolicited: on start, when the guest first shows up, then every
//                 66-200 s) carry our MAC, the MTU, the prefix (on-link, autonomous: SLAAC) and
//                 RDNSS with the DNS address; M/O flags off; router lifetime 1800 s;
//               - ICMPv6 echo requests to our addresses -> answered from the address asked;
//               - MLD (reports behind hop-by-hop options, or bare) -> dropped quietly, counted;
//               - TCP/UDP to a unicast global destination (fd00::2 and fd00::3 included), and
//                 echo requests to other addresses -> onForward6 (the translators);
//               - anything else: other extension headers, multicast, link-local or special
//                 destinations, sources outside the prefix and link-local -> dropped, counted.
//             Sources on the link are learned into the neighbour cache (gateway/ndp.ts).
//   Other ethertypes -> dropped and counted.
//
// The router is also the translators' GuestSink: macFor() answers from the ARP table, and when an
// address is unknown sends an ARP request from the gateway address (at most one per address per
// second, and at most ARP_REQUESTS_PER_SECOND overall) and returns null; macFor6() does the same
// with the neighbour cache and a Neighbor Solicitation from fe80::2 to the solicited-node group
// (NS_PER_SECOND, NS_RETRY_MS); send() hands frames to the switch as coming from this port.
// tick() (called about once a second by the data plane, and by tests on their own clock) sends
// the unsolicited RAs that are due.
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
import { IPV6_HDR_LEN, Ipv6NextHeader, Ipv6View, emitIpv6Header } from '../wire/ipv6';
import {
  emitMulticastMac6, emitSolicitedNodeMulticast6, ipv6Equal, ipv6PrefixEqual, isIpv4Mapped6, isLinkLocal6,
  isLoopback6, isMulticast6, isSolicitedNodeMulticast6, isUnspecified6, parseIpv6Address,
} from '../wire/ipv6-addr';
import {
  ICMPV6_NEXT_HEADER, Icmpv6Type, Icmpv6View, NaFlags, NdpOptionReader, NdpOptionType, NeighborAdvertView,
  NeighborSolicitView, PrefixFlags, RouterSolicitView, emitLinkLayerAddrOption, emitMtuOption, emitNeighborAdvert,
  emitNeighborSolicit, emitPrefixInfoOption, emitRdnssOption, emitRouterAdvert, finishIcmpv6Checksum,
} from '../wire/icmpv6';
import { VNET_HDR_LEN, emitVnetNone } from '../wire/vnet';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from '../wire/dhcp';
import type { Switch, SwitchPort } from '../switch/switch';
import type { GuestSink } from '../translate/types';
import type { DataPlaneConfig } from '../worker/protocol';
import { DhcpServer } from './dhcp-server';
import {
  NeighborCache, PREFIX_PREFERRED_LIFETIME_S, PREFIX_VALID_LIFETIME_S, RA_CUR_HOP_LIMIT, RA_ROUTER_LIFETIME_S,
  RDNSS_LIFETIME_S, RaSchedule,
} from './ndp';

export type RouterConfig = Pick<DataPlaneConfig,
  'network' | 'prefixLength' | 'gateway' | 'dns' | 'dhcpStart' | 'dhcpCount' | 'gatewayMac' | 'mtu' | 'ipv6'>;

export type ForwardFn = (frame: Frame, eth: EthernetView, ip: Ipv4View) => void;
export type Forward6Fn = (frame: Frame, eth: EthernetView, ip: Ipv6View) => void;

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
  /** IPv6 packets for the translators (only with config.ipv6); absent: counted and dropped. */
  onForward6?: Forward6Fn;
  /** Bound of the IPv6 neighbour cache. Default 1024. */
  neighborCacheSize?: number;
  /** Uniform [0, 1) for the RA interval. Default Math.random. */
  random?: () => number;
}

/** The IPv6 side of the config, parsed once. */
interface Ipv6Plan {
  prefix: Uint8Array;
  gateway: Uint8Array;
  /** null: no DNS forwarder. */
  dns: Uint8Array | null;
  linkLocal: Uint8Array;
  /** RDNSS servers in RAs (empty without DNS). */
  rdnss: Uint8Array[];
}

function parsePlan6(cfg: NonNullable<RouterConfig['ipv6']>): Ipv6Plan {
  const need = (what: string, text: string): Uint8Array => {
    const a = parseIpv6Address(text);
    if (a === null) throw new Error(`router: ipv6.${what} is not an IPv6 address: ${text}`);
    return a;
  };
  if (cfg.prefixLength !== 64) throw new Error('router: ipv6.prefixLength must be 64');
  const prefix = need('prefix', cfg.prefix);
  for (let i = 8; i < 16; i++) prefix[i] = 0;
  const dns = cfg.dns === null ? null : need('dns', cfg.dns);
  const linkLocal = need('linkLocal', cfg.linkLocal);
  if (!isLinkLocal6(linkLocal, 0)) throw new Error(`router: ipv6.linkLocal must be link-local: ${cfg.linkLocal}`);
  return { prefix, gateway: need('gateway', cfg.gateway), dns, linkLocal, rdnss: dns === null ? [] : [dns] };
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
/** ICMPv6 right after a fixed IPv6 header (replies never carry extension headers). */
const L4_6 = IP + IPV6_HDR_LEN;
/** The largest frame: an IPv6 payload of 65535 bytes (an IPv4 packet's 65535 include its header). */
const MAX_FRAME = L4_6 + 0xffff;
/** IPv6 (RFC 8200 §5): every link carries 1280; an MTU option below that is meaningless. */
const IPV6_MIN_MTU = 1280;
const ALL_NODES = Uint8Array.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);
const NO_OWNER = { retain(): void {}, release(): void {} };

/** Next Header values that are extension headers (RFC 8200 §4, RFC 7045). */
function isExtensionHeader(nh: number): boolean {
  return nh === Ipv6NextHeader.HOP_BY_HOP || nh === Ipv6NextHeader.ROUTING || nh === Ipv6NextHeader.FRAGMENT
    || nh === Ipv6NextHeader.DEST_OPTS || nh === 50 || nh === 51 || nh === 135 || nh === 139 || nh === 140
    || nh === Ipv6NextHeader.NO_NEXT;
}

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

  // ---- IPv6 (null/unused without config.ipv6) ----
  private readonly v6: Ipv6Plan | null;
  private readonly onForward6: Forward6Fn | null;
  private readonly ip6 = new Ipv6View();
  private readonly icmp6 = new Icmpv6View();
  private readonly rs = new RouterSolicitView();
  private readonly ns = new NeighborSolicitView();
  private readonly na = new NeighborAdvertView();
  private readonly opts6 = new NdpOptionReader();
  private readonly neighbors: NeighborCache;
  private readonly ra: RaSchedule;
  /** Whether any IPv6 frame came from the guest yet (the first one triggers an RA). */
  private guestSeen6 = false;
  /** Neighbor Solicitations from macFor6(), which may run while `out` is in use. */
  private readonly nsOut = new Uint8Array(L4_6 + 32);
  private readonly nsFrame: Frame;
  /** Scratch: a destination address built for a reply. */
  private readonly dst6 = new Uint8Array(16);

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
    this.v6 = cfg.ipv6 ? parsePlan6(cfg.ipv6) : null;
    this.onForward6 = opts.onForward6 ?? null;
    this.neighbors = new NeighborCache({ counters: this.counters, now: this.now, ...(opts.neighborCacheSize !== undefined ? { size: opts.neighborCacheSize } : {}) });
    this.ra = new RaSchedule(this.now, opts.random ?? Math.random);
    this.nsFrame = { buf: this.nsOut, off: 0, len: this.nsOut.length, slot: -1, owner: NO_OWNER };
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

  macFor6(b: Uint8Array, o: number): Uint8Array | null {
    const m = this.neighbors.lookup(b, o);
    if (m !== null) return m;
    this.solicit(b, o);
    return null;
  }

  send(parts: readonly Uint8Array[]): boolean {
    return this.sw.inputParts(this, parts);
  }

  /** Known guest addresses (control path: stats, tests). */
  arpEntries(): Array<[ip: number, mac: Uint8Array]> {
    return [...this.arpTable].map(([ip, mac]) => [ip >>> 0, mac.slice()]);
  }

  /** Known guest IPv6 addresses (control path: stats, tests). */
  neighborEntries(): Array<[addr: Uint8Array, mac: Uint8Array]> {
    return this.neighbors.entries();
  }

  /** Timers: send the unsolicited Router Advertisement when one is due. Call about once a second. */
  tick(): void {
    if (this.v6 === null || !this.ra.due()) return;
    this.sendRouterAdvert(null, 0, null, 0);
    count(this.counters, 'ndp_ra_unsolicited_sent');
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
      case EtherType.IPV6:
        if (this.v6 === null) count(c, 'gw_ipv6_dropped');
        else this.onIpv6(frame);
        return;
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

  // ---- IPv6 ----

  private onIpv6(frame: Frame): void {
    const c = this.counters;
    const eth = this.eth;
    const ip = this.ip6;
    const b = eth.b;
    if (!ip.bind(b, eth.payloadOffset, eth.payloadLength)) { count(c, 'ipv6_malformed'); return; }
    const src = ip.srcAddrOffset;
    const dst = ip.dstAddrOffset;
    if (isMulticast6(b, src)) { count(c, 'ipv6_bad_source_dropped'); return; }
    let kick = false;
    if (!this.guestSeen6) {
      // The guest's first IPv6 frame (its MLD report or DAD probe as its link comes up): tell it
      // about us now rather than at the next periodic RA (sent after this frame is handled; within
      // MIN_DELAY_BETWEEN_RAS of the last one, tick() sends it a little later).
      this.guestSeen6 = true;
      this.ra.restartInitial();
      kick = true;
    }
    if (this.isGuest6(b, src) && !isMulticastMac(b, eth.srcOffset)) this.neighbors.learn(b, src, b, eth.srcOffset);
    this.handleIpv6(frame, b, src, dst);
    if (kick && this.ra.multicastAllowed()) this.tick();
  }

  private handleIpv6(frame: Frame, b: Uint8Array, src: number, dst: number): void {
    const c = this.counters;
    const ip = this.ip6;
    const nh = ip.nextHeader;
    if (nh === ICMPV6_NEXT_HEADER) { this.onIcmpv6(frame, b, src, dst); return; }
    if (nh !== Ipv6NextHeader.TCP && nh !== Ipv6NextHeader.UDP) {
      if (nh === Ipv6NextHeader.HOP_BY_HOP && this.isMldBehindHopByHop(b)) count(c, 'ipv6_mld_dropped');
      else if (isExtensionHeader(nh)) count(c, 'ipv6_ext_header_dropped');
      else count(c, 'ipv6_protocol_unsupported');
      return;
    }
    if (!this.forwardable(b, src, dst)) return;
    this.forward6(frame);
  }

  /** A packet from src to dst may go to the translators; if not, counted. */
  private forwardable(b: Uint8Array, src: number, dst: number): boolean {
    const c = this.counters;
    if (isMulticast6(b, dst)) { count(c, 'ipv6_multicast_dropped'); return false; }
    if (isLinkLocal6(b, dst)) { count(c, 'ipv6_link_local_dst_dropped'); return false; }
    if (isUnspecified6(b, dst) || isLoopback6(b, dst) || isIpv4Mapped6(b, dst)) { count(c, 'ipv6_bad_destination_dropped'); return false; }
    if (!this.onLink6(b, src) || this.isOwn6(b, src)) { count(c, 'ipv6_bad_source_dropped'); return false; }
    return true;
  }

  private forward6(frame: Frame): void {
    if (this.onForward6 === null) { count(this.counters, 'ipv6_forward_dropped'); return; }
    count(this.counters, 'ipv6_forwarded');
    this.onForward6(frame, this.eth, this.ip6);
  }

  /** Hop-by-hop options header followed by an MLD message (how Linux sends its reports, RFC 3810 §5). */
  private isMldBehindHopByHop(b: Uint8Array): boolean {
    const ip = this.ip6;
    const h = ip.payloadOffset;
    if (ip.payloadLength < 8) return false;
    const extLen = (b[h + 1]! + 1) * 8;
    if (b[h] !== ICMPV6_NEXT_HEADER || ip.payloadLength < extLen + 4) return false;
    const t = b[h + extLen]!;
    return t === Icmpv6Type.MLD_QUERY || t === Icmpv6Type.MLD_REPORT || t === Icmpv6Type.MLD_DONE || t === Icmpv6Type.MLDV2_REPORT;
  }

  private onIcmpv6(frame: Frame, b: Uint8Array, src: number, dst: number): void {
    const c = this.counters;
    const ip = this.ip6;
    const icmp = this.icmp6;
    if (!icmp.bind(b, ip.payloadOffset, ip.payloadLength)) { count(c, 'icmpv6_malformed'); return; }
    const type = icmp.type;
    switch (type) {
      case Icmpv6Type.MLD_QUERY: case Icmpv6Type.MLD_REPORT: case Icmpv6Type.MLD_DONE: case Icmpv6Type.MLDV2_REPORT:
        count(c, 'ipv6_mld_dropped');
        return;
      case Icmpv6Type.ROUTER_SOLICIT: case Icmpv6Type.ROUTER_ADVERT: case Icmpv6Type.NEIGHBOR_SOLICIT:
      case Icmpv6Type.NEIGHBOR_ADVERT: case Icmpv6Type.REDIRECT:
        this.onNdp(b, src, dst, type);
        return;
      default:
        break;
    }
    if (this.isOwn6(b, dst)) {
      if (type !== Icmpv6Type.ECHO_REQUEST || icmp.code !== 0) { count(c, 'icmpv6_to_gateway_dropped'); return; }
      if (!icmp.checksumValid(b, src, dst)) { count(c, 'icmpv6_bad_checksum'); return; }
      if (!this.onLink6(b, src)) { count(c, 'ipv6_bad_source_dropped'); return; }
      this.echoReply6(b, src, dst);
      return;
    }
    if (type !== Icmpv6Type.ECHO_REQUEST) {
      if (isMulticast6(b, dst)) count(c, 'ipv6_multicast_dropped');
      else count(c, 'icmpv6_not_forwarded');
      return;
    }
    if (!this.forwardable(b, src, dst)) return;
    this.forward6(frame);
  }

  /** Neighbor Discovery from the guest: the validity checks of RFC 4861 §6.1 and §7.1, then each type. */
  private onNdp(b: Uint8Array, src: number, dst: number, type: number): void {
    const c = this.counters;
    const ip = this.ip6;
    const icmp = this.icmp6;
    if (ip.hopLimit !== 255) { count(c, 'ndp_bad_hop_limit'); return; }
    if (icmp.code !== 0) { count(c, 'ndp_bad_code'); return; }
    if (!icmp.checksumValid(b, src, dst)) { count(c, 'icmpv6_bad_checksum'); return; }
    const o = icmp.o;
    const n = icmp.n;
    switch (type) {
      case Icmpv6Type.ROUTER_SOLICIT:
        if (!this.rs.bind(b, o, n)) { count(c, 'ndp_malformed'); return; }
        this.onRouterSolicit(b, src, this.rs.optionsOffset, this.rs.optionsLength);
        return;
      case Icmpv6Type.NEIGHBOR_SOLICIT:
        if (!this.ns.bind(b, o, n)) { count(c, 'ndp_malformed'); return; }
        this.onNeighborSolicit(b, src, dst);
        return;
      case Icmpv6Type.NEIGHBOR_ADVERT:
        if (!this.na.bind(b, o, n)) { count(c, 'ndp_malformed'); return; }
        this.onNeighborAdvert(b, dst);
        return;
      case Icmpv6Type.ROUTER_ADVERT: count(c, 'ndp_ra_from_guest_dropped'); return;
      default: count(c, 'ndp_redirect_dropped'); return;
    }
  }

  private onRouterSolicit(b: Uint8Array, src: number, optOff: number, optLen: number): void {
    const c = this.counters;
    const r = this.opts6;
    if (!r.validate(b, optOff, optLen)) { count(c, 'ndp_bad_option'); return; }
    const slla = r.findLinkLayerAddr(b, optOff, optLen, NdpOptionType.SOURCE_LL_ADDR);
    const unspecified = isUnspecified6(b, src);
    // §6.1.1: from the unspecified address there must be no source link-layer address option.
    if (unspecified && slla >= 0) { count(c, 'ndp_malformed'); return; }
    if (!unspecified && !this.isGuest6(b, src)) { count(c, 'ipv6_bad_source_dropped'); return; }
    count(c, 'ndp_rs_rx');
    if (slla >= 0 && !isMulticastMac(b, slla)) this.neighbors.learn(b, src, b, slla);
    if (!this.ra.allowSolicited()) { count(c, 'ndp_ra_rate_limited'); return; }
    if (unspecified) {
      if (!this.ra.multicastAllowed()) { count(c, 'ndp_ra_rate_limited'); return; }
      this.sendRouterAdvert(null, 0, null, 0);
    } else {
      // §6.2.6: a router may answer a solicitation with a unicast RA to its source.
      const macB = slla >= 0 ? b : this.eth.b;
      this.sendRouterAdvert(b, src, macB, slla >= 0 ? slla : this.eth.srcOffset);
    }
    count(c, 'ndp_ra_solicited_sent');
  }

  private onNeighborSolicit(b: Uint8Array, src: number, dst: number): void {
    const c = this.counters;
    const ns = this.ns;
    const r = this.opts6;
    const target = ns.targetAddrOffset;
    if (isMulticast6(b, target)) { count(c, 'ndp_malformed'); return; }
    if (!r.validate(b, ns.optionsOffset, ns.optionsLength)) { count(c, 'ndp_bad_option'); return; }
    const slla = r.findLinkLayerAddr(b, ns.optionsOffset, ns.optionsLength, NdpOptionType.SOURCE_LL_ADDR);
    const dad = isUnspecified6(b, src);
    // §7.1.1: a DAD probe goes to a solicited-node group and carries no source link-layer address.
    if (dad && (!isSolicitedNodeMulticast6(b, dst) || slla >= 0)) { count(c, 'ndp_malformed'); return; }
    if (!this.isOwn6(b, target)) {
      // The guest probing or resolving an address that is not ours (its own DAD included):
      // silence is the only right answer.
      count(c, dad ? 'ndp_dad_ignored' : 'ndp_ns_ignored');
      return;
    }
    if (dad) {
      // Someone wants one of our addresses: defend it (RFC 4861 §7.2.4 via RFC 4862 §5.4.3): an
      // unsolicited NA to all-nodes, never a reply to ::.
      this.sendNeighborAdvert(b, target, ALL_NODES, 0, null, 0, NaFlags.ROUTER | NaFlags.OVERRIDE);
      count(c, 'ndp_dad_defended');
      return;
    }
    if (!this.onLink6(b, src)) { count(c, 'ipv6_bad_source_dropped'); return; }
    if (slla >= 0 && !isMulticastMac(b, slla) && this.isGuest6(b, src)) this.neighbors.learn(b, src, b, slla);
    const macB = slla >= 0 ? b : this.eth.b;
    this.sendNeighborAdvert(b, target, b, src, macB, slla >= 0 ? slla : this.eth.srcOffset,
      NaFlags.ROUTER | NaFlags.SOLICITED | NaFlags.OVERRIDE);
    count(c, 'ndp_na_sent');
  }

  private onNeighborAdvert(b: Uint8Array, dst: number): void {
    const c = this.counters;
    const na = this.na;
    const r = this.opts6;
    const target = na.targetAddrOffset;
    if (isMulticast6(b, target)) { count(c, 'ndp_malformed'); return; }
    // §7.1.2: an NA to a multicast address must not claim to be solicited.
    if (isMulticast6(b, dst) && na.solicitedFlag) { count(c, 'ndp_malformed'); return; }
    if (!r.validate(b, na.optionsOffset, na.optionsLength)) { count(c, 'ndp_bad_option'); return; }
    count(c, 'ndp_na_rx');
    if (this.isOwn6(b, target)) { count(c, 'ndp_na_conflict'); return; }
    if (!this.isGuest6(b, target)) { count(c, 'ndp_na_ignored'); return; }
    const tlla = r.findLinkLayerAddr(b, na.optionsOffset, na.optionsLength, NdpOptionType.TARGET_LL_ADDR);
    const macB = tlla >= 0 ? b : this.eth.b;
    const macO = tlla >= 0 ? tlla : this.eth.srcOffset;
    if (!isMulticastMac(macB, macO)) this.neighbors.learn(b, target, macB, macO);
  }

  /**
   * An RA from fe80::2: to the address at to[toOff] and the MAC at mac[macOff], or (to null) to
   * all-nodes. Built in `out`.
   */
  private sendRouterAdvert(to: Uint8Array | null, toOff: number, mac: Uint8Array | null, macOff: number): void {
    const v6 = this.v6!;
    const out = this.out;
    const at = L4_6;
    let n = emitRouterAdvert(out, at, RA_CUR_HOP_LIMIT, 0, RA_ROUTER_LIFETIME_S, 0, 0);
    n += emitLinkLayerAddrOption(out, at + n, NdpOptionType.SOURCE_LL_ADDR, this.gatewayMac, 0);
    if (this.cfg.mtu >= IPV6_MIN_MTU) n += emitMtuOption(out, at + n, this.cfg.mtu);
    n += emitPrefixInfoOption(out, at + n, 64, PrefixFlags.ON_LINK | PrefixFlags.AUTONOMOUS,
      PREFIX_VALID_LIFETIME_S, PREFIX_PREFERRED_LIFETIME_S, v6.prefix, 0);
    if (v6.rdnss.length > 0) n += emitRdnssOption(out, at + n, RDNSS_LIFETIME_S, v6.rdnss);
    this.emitIcmpv6(n, v6.linkLocal, 0, to ?? ALL_NODES, to === null ? 0 : toOff, mac, macOff);
    if (to === null) this.ra.sentMulticast();
    count(this.counters, 'ndp_ra_sent');
  }

  /** An NA for our address at tb[targetOff] to the address at to[toOff] (MAC mac[macOff], or from `to` when null). */
  private sendNeighborAdvert(tb: Uint8Array, targetOff: number, to: Uint8Array, toOff: number,
    mac: Uint8Array | null, macOff: number, flags: number): void {
    const out = this.out;
    // Copy the target first: it is also the source of the reply, and `to` may alias the frame.
    const self = this.dst6;
    for (let i = 0; i < 16; i++) self[i] = tb[targetOff + i]!;
    let n = emitNeighborAdvert(out, L4_6, flags, self, 0);
    n += emitLinkLayerAddrOption(out, L4_6 + n, NdpOptionType.TARGET_LL_ADDR, this.gatewayMac, 0);
    this.emitIcmpv6(n, self, 0, to, toOff, mac, macOff);
  }

  /** Echo reply from our address at b[self] to b[peer] (the request is bound in icmp6). */
  private echoReply6(b: Uint8Array, peer: number, self: number): void {
    const icmp = this.icmp6;
    const n = icmp.n;
    const out = this.out;
    // The request is copied whole (identifier, sequence, data); only type and checksum change.
    out.set(b.subarray(icmp.o, icmp.o + n), L4_6);
    out[L4_6] = Icmpv6Type.ECHO_REPLY;
    const selfAddr = this.dst6;
    for (let i = 0; i < 16; i++) selfAddr[i] = b[self + i]!;
    this.emitIcmpv6(n, selfAddr, 0, b, peer, this.eth.b, this.eth.srcOffset, 64);
    count(this.counters, 'icmpv6_echo_reply_sent');
  }

  /**
   * Finish out[L4_6, L4_6+n) (an ICMPv6 message) with IPv6 and Ethernet headers and send it: from
   * the address at from[fromOff] to to[toOff]; to the MAC at mac[macOff], or the group MAC of a
   * multicast `to` when mac is null. Hop limit 255 (NDP needs it) unless given.
   */
  private emitIcmpv6(n: number, from: Uint8Array, fromOff: number, to: Uint8Array, toOff: number,
    mac: Uint8Array | null, macOff: number, hopLimit = 255): void {
    const out = this.out;
    emitVnetNone(out, 0);
    emitEthernet(out, ETH, ZERO_MAC, this.gatewayMac, EtherType.IPV6);
    if (mac === null) emitMulticastMac6(out, ETH, to, toOff);
    else copyMac(out, ETH, mac, macOff);
    emitIpv6Header(out, IP, 0, 0, n, ICMPV6_NEXT_HEADER, hopLimit, ALL_NODES, ALL_NODES);
    for (let i = 0; i < 16; i++) { out[IP + 8 + i] = from[fromOff + i]!; out[IP + 24 + i] = to[toOff + i]!; }
    finishIcmpv6Checksum(out, L4_6, n, out, IP + 8, IP + 24);
    this.emit(L4_6 + n);
  }

  /** macFor6() found nothing: a Neighbor Solicitation for the address at b[o], if allowed. */
  private solicit(b: Uint8Array, o: number): void {
    const c = this.counters;
    const v6 = this.v6;
    if (v6 === null || !this.isGuest6(b, o)) { count(c, 'ndp_lookup_offlink'); return; }
    if (!this.neighbors.maySolicit(b, o)) { count(c, 'ndp_ns_rate_limited'); return; }
    const out = this.nsOut;
    const group = this.dst6;
    emitSolicitedNodeMulticast6(group, 0, b, o);
    emitVnetNone(out, 0);
    emitEthernet(out, ETH, ZERO_MAC, this.gatewayMac, EtherType.IPV6);
    emitMulticastMac6(out, ETH, group, 0);
    let n = emitNeighborSolicit(out, L4_6, b, o);
    n += emitLinkLayerAddrOption(out, L4_6 + n, NdpOptionType.SOURCE_LL_ADDR, this.gatewayMac, 0);
    emitIpv6Header(out, IP, 0, 0, n, ICMPV6_NEXT_HEADER, 255, v6.linkLocal, group);
    finishIcmpv6Checksum(out, L4_6, n, out, IP + 8, IP + 24);
    this.nsFrame.len = L4_6 + n;
    this.sw.input(this, this.nsFrame);
    count(c, 'ndp_ns_sent');
  }

  /** b[o] is one of our addresses: fe80::2, the gateway, the DNS address. */
  private isOwn6(b: Uint8Array, o: number): boolean {
    const v6 = this.v6;
    if (v6 === null) return false;
    return ipv6Equal(b, o, v6.gateway, 0) || ipv6Equal(b, o, v6.linkLocal, 0)
      || (v6.dns !== null && ipv6Equal(b, o, v6.dns, 0));
  }

  /** b[o] is a unicast address on this link: in the prefix or link-local (ours included). */
  private onLink6(b: Uint8Array, o: number): boolean {
    const v6 = this.v6!;
    return isLinkLocal6(b, o) || ipv6PrefixEqual(b, o, v6.prefix, 0, 64);
  }

  /**
   * b[o] could be a guest's: link-local or in the prefix, not ours, not the subnet-router anycast
   * address (interface id 0, RFC 4291 §2.6.1).
   */
  private isGuest6(b: Uint8Array, o: number): boolean {
    if (this.v6 === null || !this.onLink6(b, o) || this.isOwn6(b, o)) return false;
    for (let i = 8; i < 16; i++) if (b[o + i] !== 0) return true;
    return false;
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
