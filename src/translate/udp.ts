// UDP translation: the guest's datagrams leave through ordinary host dgram sockets.
//
// Theory of operation
// -------------------
// A flow is one guest source (address, port). It owns one host socket, bound to the outbound
// address (slirp4netns --outbound-addr) or to any address, on an ephemeral port. Every datagram
// the guest sends from that source goes out of that socket, whatever its destination: the mapping
// is endpoint-independent (RFC 4787 REQ-1), like a home NAT, so STUN, QUIC migration and DNS
// resolvers that reuse a port all behave.
//
// Destinations go through mapDestination(): the gateway stands for the host's 127.0.0.1 (or is
// unreachable: ICMP net unreachable back to the guest), the DNS address:53 for the upstream
// resolver, everything else for itself.
//
// Datagrams arriving on the host socket go back to the flow's guest (address, port). Their source
// must look like what the guest dialed:
//
//   - each flow keeps a few "peers": host (address, port) -> guest-visible (address, port),
//     recorded when the guest sends to a translated destination (gateway, DNS address) or to one
//     that would otherwise not pass (see below). 127.0.0.1:5000 becomes gateway:5000, the
//     resolver's 127.0.0.53:53 becomes dns:53;
//   - otherwise (full cone, RFC 4787 "endpoint-independent filtering") the datagram passes with
//     its own source only if that is a routable unicast address: never loopback, 0/8, multicast,
//     reserved, or an address inside the guest's own subnet, which would impersonate the gateway,
//     the DNS forwarder or a neighbour. The one exception is 127.0.0.1 on a flow that has dialed
//     the gateway: any host-loopback port shows up as gateway:port, which is exactly what the
//     gateway means (the same rule port forwards use for loopback clients).
//
// Port forwards (host -> guest) are the other direction: a host client's datagram arrives at a
// forward's listener (portfwd/), goes to the guest through emitToGuest() from the client's
// guest-visible (address, port), and addInbound() records where the guest's answers go. Guest
// datagrams matching a recorded (guest, port, remote, port) are handed to that callback instead of
// a host socket of our own; the forwarder owns the flow's lifetime and calls removeInbound().
//
// Timers: a flow that has only ever talked to port 53 (DNS) expires after 10 s idle, any other
// after 60 s; one sweep timer per translator (unref'd) checks. The table is bounded (1024 flows);
// a new flow beyond that evicts the least recently used one (lru-table.ts: an intrusive LRU list;
// a flow moves to its tail whenever it carries traffic, in either direction).
//
// Guest -> host is zero-copy from the receive slab; see host-dgram.ts for how the slot is retained
// only while libuv still points into it. Host -> guest builds vnet + Ethernet + IPv4 + UDP headers in one
// preallocated buffer and sends [headers, payload] as parts. With the TAP's offloads the UDP
// checksum is left to the kernel (NEEDS_CSUM, csum_start 34, csum_offset 6, the folded
// pseudo-header sum in the field); without them the full checksum is computed here.
//
// Datagrams from the host larger than the guest's MTU allows are IP-fragmented toward the guest
// (RFC 791), at most `maxFragments` pieces (64: a 64 KiB datagram at MTU 1500 needs 45), with the
// checksum computed in software because NEEDS_CSUM cannot span fragments. Larger: dropped and
// counted. A DNS answer with EDNS0 (up to 4096 bytes) at MTU 1500 takes this path.
//
// IPv6 (slirp4netns -6): onPacket6 runs the same flows through AF_INET6 sockets (bound to
// --outbound-addr6), in the same table: an IPv6 flow's guestIp is fold6() of its address, always
// negative, so IPv4 lookups never stop at it (see flow-table.ts) and the IPv4 path is unchanged.
// The gateway fd00::2 stands for ::1, fd00::3:53 for the (IPv4) upstream, sent to v4-mapped from
// the dual-stack socket (under --outbound-addr6, which binds that socket to one IPv6 address, from
// a second, IPv4 socket of the flow's, made on first use). A
// reply's source passes under the same rules (never loopback, link-local, multicast, v4-mapped or
// inside the guest's /64, unless it is a remembered peer); udp6-emit.ts builds the frames, and
// failed sends are answered with ICMPv6 (icmp6-error.ts).
//
// Errors: a send that fails locally (no route, EACCES...) is answered with the ICMP error the
// guest's kernel would have produced on a real link, quoting the guest's datagram (the send ring
// keeps a copy of its IP header + 8 bytes for that). ICMP errors arriving from the network are not
// visible: the host sockets are unconnected (they serve every destination), and Linux reports
// ICMP errors only to connected UDP sockets unless IP_RECVERR is set, which node:dgram cannot do.
import * as dgram from 'node:dgram';
import { fold, pseudoHeaderSum4, sum16 } from '../wire/checksum';
import { emitEthernet, EtherType, ETH_HDR_LEN, type EthernetView } from '../wire/ethernet';
import { count, type Counters, type Frame } from '../wire/frame';
import { IcmpUnreachCode } from '../wire/icmp';
import { emitIpv4Header, IpProtocol, IPV4_HDR_LEN, type Ipv4View } from '../wire/ipv4';
import type { Ipv6View } from '../wire/ipv6';
import { isLinkLocal6, isLoopback6, isMulticast6, ipv6Equal, ipv6PrefixEqual } from '../wire/ipv6-addr';
import { emitUdpHeader, setUdpChecksum, UdpView, UDP_HDR_LEN } from '../wire/udp';
import { setU16 } from '../wire/bytes';
import { checksum } from '../wire/checksum';
import { emitVnetHeader, emitVnetNone, GsoType, VnetFlags, VNET_HDR_LEN } from '../wire/vnet';
import { ipv6IsLowZero80, parseIpv6Into, prefixMask } from '../wire/addr';
import { fold6 } from './flow-table';
import { answerSendFailure6, icmp6Code, ringEntryIsIpv6, sendIcmp6Unreachable } from './icmp6-error';
import { Udp6Emitter, Udp6EmitResult } from './udp6-emit';
import type { DataPlaneConfig } from '../worker/protocol';
import { asInet6, mapDestination, mapDestination6, parseIpv6Config, type Ipv6Addrs } from './host-map';
import { ipv4FromString, SendRing, syncLookup } from './host-dgram';
import { dgramFd, UdpSendBatch } from './host-batch';
import { answerSendFailure, IcmpErrorResult, sendAbandoned, sendIcmpUnreachable } from './icmp-error';
import { KeyedLruTable, Sweeper, type LruEntry } from './lru-table';
import type { GuestSink, Logger, ProtocolTranslator, TranslatorContext } from './types';

export interface UdpTranslatorOptions {
  /** Idle time (ms) after which a flow's host socket is closed. Default 60 000. */
  idleTimeoutMs?: number;
  /** Idle time (ms) for flows that have only ever sent to port 53. Default 10 000. */
  dnsIdleTimeoutMs?: number;
  /** Most concurrent flows (= host sockets); the least recently used is evicted. Default 1024. */
  maxFlows?: number;
  /** Translated destinations remembered per flow (replaced round-robin). Default 8. */
  maxPeersPerFlow?: number;
  /** Most IP fragments one host datagram may become toward the guest. Default 64. */
  maxFragments?: number;
  /** Sends queued in libuv at once (socket buffers full) before datagrams are dropped. Default 256. */
  maxPendingSends?: number;
  /** Sweep period (ms). Default: min(1000, half the shorter idle timeout). */
  sweepIntervalMs?: number;
  /** Millisecond clock (tests may inject one). Default Date.now. */
  now?: () => number;
}

export const UDP_DEFAULTS = {
  idleTimeoutMs: 60_000,
  dnsIdleTimeoutMs: 10_000,
  maxFlows: 1024,
  maxPeersPerFlow: 8,
  maxFragments: 64,
  maxPendingSends: 256,
} as const;

/** Counter names (one place, so --stats readers and tests agree). */
export const UdpCounters = {
  FLOWS_CREATED: 'udp.flows.created',
  FLOWS_EXPIRED: 'udp.flows.expired',
  FLOWS_EVICTED: 'udp.flows.evicted',
  FLOWS_ERRORED: 'udp.flows.errored',
  TX_DATAGRAMS: 'udp.tx.datagrams',
  TX_BYTES: 'udp.tx.bytes',
  TX_DROP_MALFORMED: 'udp.tx.drop.malformed',
  TX_DROP_FRAGMENT: 'udp.tx.drop.fragment',
  TX_DROP_PORT_ZERO: 'udp.tx.drop.port_zero',
  TX_DROP_NOT_UNICAST: 'udp.tx.drop.not_unicast',
  TX_DROP_BAD_SOURCE: 'udp.tx.drop.bad_source',
  TX_DROP_UNREACHABLE: 'udp.tx.drop.unreachable',
  TX_DROP_SOCKET: 'udp.tx.drop.socket',
  TX_DROP_BACKLOG: 'udp.tx.drop.backlog',
  TX_ERROR: 'udp.tx.error',
  RX_DATAGRAMS: 'udp.rx.datagrams',
  RX_BYTES: 'udp.rx.bytes',
  RX_FRAGMENTED: 'udp.rx.fragmented',
  RX_DROP_LOOPBACK_SOURCE: 'udp.rx.drop.loopback_source',
  RX_DROP_UNROUTABLE_SOURCE: 'udp.rx.drop.unroutable_source',
  RX_DROP_NO_MAC: 'udp.rx.drop.no_mac',
  RX_DROP_TOO_BIG: 'udp.rx.drop.too_big',
  RX_DROP_SINK: 'udp.rx.drop.sink',
  ICMP_SENT: 'udp.icmp_errors_sent',
  FWD_REPLIES: 'udp.fwd.replies',
  FWD_DROP: 'udp.fwd.drop',
  /** IPv6 datagram while IPv6 is off (no config.ipv6) */
  TX_DROP_IPV6_OFF: 'udp.tx.drop.ipv6_off',
  FLOWS6_CREATED: 'udp.flows6.created',
} as const;

const LOOPBACK = 0x7f000001;
const TTL = 64;
const IP_OFF = VNET_HDR_LEN + ETH_HDR_LEN; // 24
const UDP_OFF = IP_OFF + IPV4_HDR_LEN; // 44
const HDRS_LEN = UDP_OFF + UDP_HDR_LEN; // 52
/** csum_start / csum_offset are relative to the Ethernet frame (the vnet header excluded). */
const CSUM_START = ETH_HDR_LEN + IPV4_HDR_LEN; // 34
const CSUM_OFFSET = 6;
const EMPTY = new Uint8Array(0);

/** A remembered translation: replies from host (addr, port) appear as from guest (ip, port). */
interface Peer {
  hostAddr: string;
  hostPort: number;
  guestIp: number;
  guestPort: number;
  /** IPv6 flows: the guest-visible source (guestIp then holds its fold6()). */
  guestIp6: Uint8Array | null;
}

/** One guest source (address, port) and its host socket. */
class UdpFlow implements LruEntry<UdpFlow> {
  lastActive: number;
  /** Only port 53 so far: the short DNS idle timeout applies. */
  onlyDns = true;
  /** Has sent to the gateway: host-loopback replies map to the gateway. */
  dialedGateway = false;
  readonly peers: Peer[] = [];
  peerNext = 0;
  // The last destination and what it mapped to: one compare instead of mapDestination() (which
  // allocates) for every datagram of a conversation.
  cDst = -1;
  cPort = -1;
  cAddr = '';
  cHostPort = 0;
  /** IPv6 flows: the guest's address (guestIp holds its fold6()), and the cached destination's. */
  guestIp6: Uint8Array | null = null;
  cDst6: Uint8Array | null = null;
  /**
   * IPv6 flows under --outbound-addr6: their socket is bound to one IPv6 address and cannot reach
   * an IPv4 upstream (the DNS address's) v4-mapped, so that goes through this IPv4 socket, made on
   * first use (bound4: its 'listening' was seen). cUse4: the cached destination goes through it.
   */
  sock4: dgram.Socket | null = null;
  bound4 = false;
  cUse4 = false;
  closed = false;
  /** The socket is bound ('listening' seen): sends go straight to libuv. */
  bound = false;
  /** IPv4 flows, once bound: the socket's fd, for batched sends (host-batch.ts); -1: none. */
  fd = -1;
  /** cAddr as a u32 (-1: not an IPv4 literal). */
  cAddrNum = -1;
  /** Table links (lru-table.ts); `twin`: guests whose addresses share the low 16 bits. */
  twin: UdpFlow | null = null;
  older: UdpFlow | null = null;
  newer: UdpFlow | null = null;

  constructor(readonly key: number, readonly guestIp: number, readonly guestPort: number,
    readonly sock: dgram.Socket, now: number) {
    this.lastActive = now;
  }
}

/** A port-forward flow's way back: guest datagrams to (remoteIp, remotePort) go to `deliver`. */
interface InboundFlow {
  readonly guestIp: number;
  readonly guestPort: number;
  readonly remoteIp: number;
  readonly remotePort: number;
  readonly deliver: (payload: Buffer) => void;
}

/**
 * The table key: the guest address's low 16 bits and the port, as an int32 (a small integer to
 * V8, so Map lookups do not box a number per datagram). Guests that share the low 16 bits (only
 * possible in subnets wider than /16) chain through `twin`.
 */
function flowKey(ip: number, port: number): number {
  return ((ip << 16) | port) | 0;
}

export class UdpTranslator implements ProtocolTranslator {
  private readonly cfg: DataPlaneConfig;
  private readonly sink: GuestSink;
  private readonly counters: Counters;
  private readonly log: Logger;
  private readonly idleMs: number;
  private readonly dnsIdleMs: number;
  private readonly maxFlows: number;
  private readonly maxPeers: number;
  private readonly maxFragments: number;
  private readonly now: () => number;
  private readonly subnetMask: number;

  /** Flows by flowKey(), in LRU order. */
  private readonly flows = new KeyedLruTable<UdpFlow>();
  private readonly sweeper: Sweeper;
  private readonly udp = new UdpView();
  private readonly ring: SendRing;
  /** Guest -> host datagrams of the current receive batch, sent together (host-batch.ts). */
  private readonly batch: UdpSendBatch;
  private warnedBind = false;
  /** Port-forward flows by flowKey(guestIp, guestPort); see addInbound(). */
  private readonly inbound = new Map<number, InboundFlow[]>();
  private inboundCount = 0;

  // Host -> guest: headers are built here; payloads are sent as a second part.
  private readonly hdr = new Uint8Array(HDRS_LEN);
  private readonly hdrWithUdp = this.hdr.subarray(0, HDRS_LEN);
  private readonly hdrIpOnly = this.hdr.subarray(0, UDP_OFF);
  private readonly parts: Uint8Array[] = [this.hdrWithUdp, EMPTY];
  private ident = 0;
  /** config.ipv6 parsed (null: IPv6 off), the IPv6 frame builder, a scratch address. */
  private readonly v6: Ipv6Addrs | null;
  private readonly out6: Udp6Emitter;
  private readonly addr6 = new Uint8Array(16);

  constructor(ctx: TranslatorContext, opts: UdpTranslatorOptions = {}) {
    this.cfg = ctx.config;
    this.sink = ctx.sink;
    this.counters = ctx.counters;
    this.log = ctx.log;
    this.idleMs = opts.idleTimeoutMs ?? UDP_DEFAULTS.idleTimeoutMs;
    this.dnsIdleMs = opts.dnsIdleTimeoutMs ?? UDP_DEFAULTS.dnsIdleTimeoutMs;
    this.maxFlows = Math.max(1, opts.maxFlows ?? UDP_DEFAULTS.maxFlows);
    this.maxPeers = Math.max(1, opts.maxPeersPerFlow ?? UDP_DEFAULTS.maxPeersPerFlow);
    this.maxFragments = Math.max(1, opts.maxFragments ?? UDP_DEFAULTS.maxFragments);
    this.sweeper = new Sweeper(() => this.sweep(), opts.sweepIntervalMs ??
      Math.max(10, Math.min(1000, Math.floor(Math.min(this.idleMs, this.dnsIdleMs) / 2))));
    this.now = opts.now ?? Date.now;
    this.subnetMask = prefixMask(this.cfg.prefixLength);
    this.ring = new SendRing(Math.max(1, opts.maxPendingSends ?? UDP_DEFAULTS.maxPendingSends),
      (ring, i, err) => this.onSendFailed(ring, i, err));
    this.batch = new UdpSendBatch(this.ring);
    this.v6 = parseIpv6Config(this.cfg);
    this.out6 = new Udp6Emitter(this.sink, this.cfg.mtu, this.maxFragments);
  }

  get flowCount(): number { return this.flows.size; }

  /** Sends handed to dgram whose callback has not run yet (each holds a receive slot). */
  get pendingSends(): number { return this.ring.pending; }

  /** An IPv6 datagram from the guest (see the top of this file). */
  onPacket6(frame: Frame, _eth: EthernetView, ip: Ipv6View): void {
    const c = this.counters;
    const v6 = this.v6;
    if (v6 === null) { count(c, UdpCounters.TX_DROP_IPV6_OFF); return; }
    if (ip.nextHeader !== 17) { count(c, UdpCounters.TX_DROP_MALFORMED); return; }
    const u = this.udp;
    if (!u.bind(ip.b, ip.payloadOffset, ip.payloadLength)) { count(c, UdpCounters.TX_DROP_MALFORMED); return; }
    const dport = u.dstPort;
    if (dport === 0) { count(c, UdpCounters.TX_DROP_PORT_ZERO); return; }
    const b = ip.b;
    const so = ip.srcAddrOffset;
    const dO = ip.dstAddrOffset;
    if (isMulticast6(b, dO) || ipv6IsLowZero80(b, dO) || isLinkLocal6(b, dO)) {
      count(c, UdpCounters.TX_DROP_NOT_UNICAST);
      return;
    }
    if (isMulticast6(b, so) || ipv6IsLowZero80(b, so)) { count(c, UdpCounters.TX_DROP_BAD_SOURCE); return; }
    const sport = u.srcPort;
    const g = fold6(b, so);
    const key = flowKey(g, sport);
    const now = this.now();

    let flow = this.flows.first(key);
    while (flow !== null && (flow.guestIp !== g || flow.guestPort !== sport || !ipv6Equal(flow.guestIp6!, 0, b, so))) {
      flow = flow.twin;
    }
    const dfold = fold6(b, dO);
    let addr: string;
    let hport: number;
    if (flow !== null && flow.cDst === dfold && flow.cPort === dport && ipv6Equal(flow.cDst6!, 0, b, dO)) {
      addr = flow.cAddr;
      hport = flow.cHostPort;
    } else {
      const t = mapDestination6(this.cfg, v6, b, dO, dport);
      if (t.kind === 'unreachable' || t.port <= 0 || t.port > 65535) {
        count(c, UdpCounters.TX_DROP_UNREACHABLE);
        this.icmpError6(IcmpUnreachCode.NET, v6.gateway, 0, b, ip.o, ip.totalLength);
        return;
      }
      // An IPv4 upstream goes v4-mapped through the dual-stack socket, or through sock4 when
      // --outbound-addr6 pins that socket to an IPv6 address.
      const use4 = !t.address.includes(':') && v6.outboundAddr !== undefined;
      addr = use4 ? t.address : asInet6(t.address);
      hport = t.port;
      if (flow === null) {
        const created = this.createFlow(key, g, sport, now, b.slice(so, so + 16));
        if (created === null) { count(c, UdpCounters.TX_DROP_SOCKET); return; }
        flow = created;
      }
      const cd = flow.cDst6 ?? (flow.cDst6 = new Uint8Array(16));
      for (let i = 0; i < 16; i++) cd[i] = b[dO + i]!;
      flow.cDst = dfold; flow.cPort = dport; flow.cAddr = addr; flow.cHostPort = hport; flow.cUse4 = use4;
      const toGateway = ipv6Equal(b, dO, v6.gateway, 0);
      if (toGateway) flow.dialedGateway = true;
      if (toGateway || (v6.dns !== null && ipv6Equal(b, dO, v6.dns, 0)) || !this.isRoutable6(b, dO)) {
        this.rememberPeer6(flow, addr, hport, b, dO, dport);
      }
    }
    flow.lastActive = now;
    if (dport !== 53) flow.onlyDns = false;
    this.flows.touch(flow);

    // As in onPacket: zero-copy from the receive slot, retained only while libuv holds it.
    const ring = this.ring;
    const i = ring.begin(frame.owner, frame.slot, b, ip.o, ip.totalLength, 0);
    if (i < 0) { count(c, UdpCounters.TX_DROP_BACKLOG); return; }
    const len = u.payloadLength;
    const sock = flow.cUse4 ? this.socket4(flow) : flow.sock;
    if (sock === null) {
      count(c, UdpCounters.TX_DROP_SOCKET);
      ring.callback(i)(null);
      return;
    }
    try {
      sock.send(b, u.payloadOffset, len, hport, addr, ring.callback(i));
    } catch {
      count(c, UdpCounters.TX_DROP_SOCKET);
      ring.callback(i)(null);
      return;
    }
    if ((flow.cUse4 ? flow.bound4 : flow.bound) && sock.getSendQueueCount() === 0) ring.settle(i);
    count(c, UdpCounters.TX_DATAGRAMS);
    count(c, UdpCounters.TX_BYTES, len);
  }

  onPacket(frame: Frame, _eth: EthernetView, ip: Ipv4View): void {
    const c = this.counters;
    if (ip.protocol !== IpProtocol.UDP) { count(c, UdpCounters.TX_DROP_MALFORMED); return; }
    // The router drops fragments before us; a stray one cannot be translated on its own.
    if (ip.isFragment) { count(c, UdpCounters.TX_DROP_FRAGMENT); return; }
    const u = this.udp;
    if (!u.bind(ip.b, ip.payloadOffset, ip.payloadLength)) { count(c, UdpCounters.TX_DROP_MALFORMED); return; }
    const dport = u.dstPort;
    if (dport === 0) { count(c, UdpCounters.TX_DROP_PORT_ZERO); return; }
    const src = ip.srcAddr;
    const dst = ip.dstAddr;
    if (!this.isUnicast(dst)) { count(c, UdpCounters.TX_DROP_NOT_UNICAST); return; }
    const sfirst = src >>> 24;
    if (sfirst === 0 || sfirst === 127 || sfirst >= 224) { count(c, UdpCounters.TX_DROP_BAD_SOURCE); return; }
    const sport = u.srcPort;
    if (this.inboundCount !== 0 && this.toInbound(src, sport, dst, dport, ip.b, u.payloadOffset, u.payloadLength)) return;
    const key = flowKey(src, sport);
    const now = this.now();

    let flow = this.flows.first(key);
    while (flow !== null && (flow.guestIp !== src || flow.guestPort !== sport)) flow = flow.twin;
    let addr: string;
    let hport: number;
    if (flow !== null && flow.cDst === dst && flow.cPort === dport) {
      addr = flow.cAddr;
      hport = flow.cHostPort;
    } else {
      const t = mapDestination(this.cfg, dst, dport);
      if (t.kind === 'unreachable' || t.port <= 0 || t.port > 65535) {
        // The gateway with host loopback disabled, the DNS address on another port or with no
        // upstream: fail as a real network would, so the guest's socket reports ENETUNREACH.
        count(c, UdpCounters.TX_DROP_UNREACHABLE);
        this.icmpError(IcmpUnreachCode.NET, this.cfg.gateway, ip.b, ip.o, ip.tl);
        return;
      }
      addr = t.address;
      hport = t.port;
      if (flow === null) {
        const created = this.createFlow(key, src, sport, now);
        if (created === null) { count(c, UdpCounters.TX_DROP_SOCKET); return; }
        flow = created;
      }
      flow.cDst = dst; flow.cPort = dport; flow.cAddr = addr; flow.cHostPort = hport;
      flow.cAddrNum = ipv4FromString(addr);
      if (dst === this.cfg.gateway) flow.dialedGateway = true;
      if (dst === this.cfg.gateway || dst === this.cfg.dns || !this.isRoutable(dst)) {
        this.rememberPeer(flow, addr, hport, dst, dport);
      }
    }
    flow.lastActive = now;
    if (dport !== 53) flow.onlyDns = false;
    this.flows.touch(flow);

    const ring = this.ring;
    const i = ring.begin(frame.owner, frame.slot, ip.b, ip.o, ip.tl, dst);
    if (i < 0) { count(c, UdpCounters.TX_DROP_BACKLOG); return; }
    const len = u.payloadLength;
    const sock = flow.sock;
    if (flow.fd >= 0 && frame.slot >= 0 && flow.cAddrNum >= 0) {
      // The frame stays in its retained slot until the batch is flushed (host-batch.ts).
      this.batch.add(sock, flow.fd, ip.b, u.payloadOffset, len, flow.cAddrNum, addr, hport, i);
      count(c, UdpCounters.TX_DATAGRAMS);
      count(c, UdpCounters.TX_BYTES, len);
      return;
    }
    try {
      sock.send(ip.b, u.payloadOffset, len, hport, addr, ring.callback(i));
    } catch {
      // Only a socket closed under us gets here (the arguments are valid by construction).
      // The callback will not run: complete the entry through it now.
      count(c, UdpCounters.TX_DROP_SOCKET);
      ring.callback(i)(null);
      return;
    }
    // Nothing queued in libuv: the kernel already has the bytes (see host-dgram.ts).
    if (flow.bound && sock.getSendQueueCount() === 0) ring.settle(i);
    count(c, UdpCounters.TX_DATAGRAMS);
    count(c, UdpCounters.TX_BYTES, len);
  }

  /**
   * A port forward's flow: from now on the guest's datagrams from guestIp:guestPort to
   * remoteIp:remotePort (the client as the guest sees it) go to `deliver` (a copy of the payload),
   * not out of a host socket of ours. Replaces an earlier registration of the same tuple.
   */
  addInbound(guestIp: number, guestPort: number, remoteIp: number, remotePort: number,
    deliver: (payload: Buffer) => void): void {
    guestIp >>>= 0;
    remoteIp >>>= 0;
    const key = flowKey(guestIp, guestPort);
    const list = this.inbound.get(key) ?? [];
    const i = list.findIndex((f) => f.guestIp === guestIp && f.guestPort === guestPort
      && f.remoteIp === remoteIp && f.remotePort === remotePort);
    const flow: InboundFlow = { guestIp, guestPort, remoteIp, remotePort, deliver };
    if (i >= 0) {
      list[i] = flow;
    } else {
      list.push(flow);
      this.inboundCount++;
    }
    this.inbound.set(key, list);
  }

  /** Forget a port-forward flow (it expired or its forward was removed). */
  removeInbound(guestIp: number, guestPort: number, remoteIp: number, remotePort: number): void {
    guestIp >>>= 0;
    remoteIp >>>= 0;
    const key = flowKey(guestIp, guestPort);
    const list = this.inbound.get(key);
    if (list === undefined) return;
    const i = list.findIndex((f) => f.guestIp === guestIp && f.guestPort === guestPort
      && f.remoteIp === remoteIp && f.remotePort === remotePort);
    if (i < 0) return;
    list.splice(i, 1);
    this.inboundCount--;
    if (list.length === 0) this.inbound.delete(key);
  }

  /** Port-forward flows registered with addInbound(). */
  get inboundFlowCount(): number { return this.inboundCount; }

  private toInbound(src: number, sport: number, dst: number, dport: number, b: Uint8Array, off: number, len: number): boolean {
    const list = this.inbound.get(flowKey(src, sport));
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) {
      const f = list[i]!;
      if (f.guestIp === (src >>> 0) && f.guestPort === sport && f.remoteIp === (dst >>> 0) && f.remotePort === dport) {
        count(this.counters, UdpCounters.FWD_REPLIES);
        // A copy: the receive slot is reused as soon as we return, and the send is asynchronous.
        try {
          f.deliver(Buffer.from(b.subarray(off, off + len)));
        } catch {
          count(this.counters, UdpCounters.FWD_DROP);
        }
        return true;
      }
    }
    return false;
  }

  close(): void {
    this.inbound.clear();
    this.inboundCount = 0;
    this.sweeper.stop();
    for (let f = this.flows.oldest; f !== null; f = this.flows.oldest) this.closeFlow(f, null);
    this.flows.clear();
  }

  /** Close idle flows now (the timer calls this; tests may too). */
  sweep(): void {
    const now = this.now();
    // Walk the whole list: DNS flows expire sooner, so LRU order is not expiry order.
    let flow = this.flows.oldest;
    while (flow !== null) {
      const next = flow.newer;
      const idle = flow.onlyDns ? this.dnsIdleMs : this.idleMs;
      if (now - flow.lastActive >= idle) this.closeFlow(flow, UdpCounters.FLOWS_EXPIRED);
      flow = next;
    }
    if (this.flows.size === 0) this.sweeper.stop();
  }

  // --- flows ---------------------------------------------------------------------------------

  /** A flow for a guest source: IPv4, or IPv6 with `guest6` (then guestIp is its fold6()). */
  private createFlow(key: number, guestIp: number, guestPort: number, now: number,
    guest6: Uint8Array | null = null): UdpFlow | null {
    const lru = this.flows.oldest;
    if (this.flows.size >= this.maxFlows && lru !== null) this.closeFlow(lru, UdpCounters.FLOWS_EVICTED);
    let sock: dgram.Socket;
    try {
      sock = dgram.createSocket({ type: guest6 === null ? 'udp4' : 'udp6', lookup: syncLookup as never });
    } catch (err) {
      this.log.log('debug', `udp: cannot create a host socket: ${(err as Error).message}`);
      return null;
    }
    const flow = new UdpFlow(key, guestIp, guestPort, sock, now);
    flow.guestIp6 = guest6;
    if (guest6 === null) sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onHostMessage(flow, msg, rinfo));
    else sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onHostMessage6(flow, msg, rinfo));
    sock.on('error', (err: Error) => this.onSocketError(flow, err));
    sock.on('listening', () => { flow.bound = true; if (guest6 === null) flow.fd = dgramFd(sock); });
    this.flows.insert(flow);
    try {
      // With syncLookup the bind happens inside this call; a failure (a bad --outbound-addr)
      // is emitted as 'error' synchronously and closes the flow before we go on.
      sock.bind({ port: 0, address: guest6 === null ? this.cfg.outboundAddr : this.v6?.outboundAddr, exclusive: true });
    } catch (err) {
      this.onSocketError(flow, err as Error);
    }
    if (flow.closed) return null;
    count(this.counters, UdpCounters.FLOWS_CREATED);
    if (guest6 !== null) count(this.counters, UdpCounters.FLOWS6_CREATED);
    this.sweeper.start();
    return flow;
  }

  private closeFlow(flow: UdpFlow, reason: string | null): void {
    if (flow.closed) return;
    // Queued datagrams name sockets by fd: send them before any fd can be closed and reused.
    this.batch.flush();
    flow.closed = true;
    this.flows.remove(flow);
    if (reason !== null) count(this.counters, reason);
    try {
      flow.sock.close();
    } catch {
      // Already closed (an error closed it first): nothing left to release.
    }
    if (flow.sock4 !== null) {
      try { flow.sock4.close(); } catch { /* already closed */ }
    }
  }

  /** An IPv6 flow's IPv4 socket (see UdpFlow.sock4), made on first use; null when it cannot be. */
  private socket4(flow: UdpFlow): dgram.Socket | null {
    if (flow.sock4 !== null) return flow.sock4;
    let s: dgram.Socket;
    try {
      s = dgram.createSocket({ type: 'udp4', lookup: syncLookup as never });
    } catch {
      return null;
    }
    flow.sock4 = s;
    s.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onHostMessage6(flow, msg, rinfo));
    s.on('error', (err: Error) => this.onSocketError(flow, err));
    s.on('listening', () => { flow.bound4 = true; });
    try {
      s.bind({ port: 0, address: this.cfg.outboundAddr, exclusive: true });
    } catch (err) {
      this.onSocketError(flow, err as Error);
    }
    return flow.closed ? null : s;
  }

  private rememberPeer(flow: UdpFlow, hostAddr: string, hostPort: number, guestIp: number, guestPort: number): void {
    const peers = flow.peers;
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      if (p.guestIp === guestIp && p.guestPort === guestPort) {
        p.hostAddr = hostAddr; p.hostPort = hostPort;
        return;
      }
    }
    const entry: Peer = { hostAddr, hostPort, guestIp, guestPort, guestIp6: null };
    if (peers.length < this.maxPeers) {
      peers.push(entry);
    } else {
      peers[flow.peerNext] = entry;
      flow.peerNext = (flow.peerNext + 1) % this.maxPeers;
    }
  }

  /** rememberPeer() for an IPv6 flow: the guest-visible address is the 16 bytes at b[o]. */
  private rememberPeer6(flow: UdpFlow, hostAddr: string, hostPort: number, b: Uint8Array, o: number, guestPort: number): void {
    const peers = flow.peers;
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      if (p.guestPort === guestPort && ipv6Equal(p.guestIp6!, 0, b, o)) {
        p.hostAddr = hostAddr; p.hostPort = hostPort;
        return;
      }
    }
    const entry: Peer = { hostAddr, hostPort, guestIp: fold6(b, o), guestPort, guestIp6: b.slice(o, o + 16) };
    if (peers.length < this.maxPeers) {
      peers.push(entry);
    } else {
      peers[flow.peerNext] = entry;
      flow.peerNext = (flow.peerNext + 1) % this.maxPeers;
    }
  }

  private onSocketError(flow: UdpFlow, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    if ((err as NodeJS.ErrnoException).syscall === 'bind' && !this.warnedBind) {
      this.warnedBind = true;
      this.log.log('warn', `udp: cannot bind host sockets to ${this.cfg.outboundAddr ?? '0.0.0.0'}: ${code}`);
    } else if (this.log.enabled('debug')) {
      this.log.log('debug', `udp: host socket error on flow ${flow.guestPort}: ${code}`);
    }
    this.closeFlow(flow, UdpCounters.FLOWS_ERRORED);
  }

  private onSendFailed(ring: SendRing, i: number, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (sendAbandoned(code)) return;
    count(this.counters, UdpCounters.TX_ERROR);
    const r = ringEntryIsIpv6(ring, i) && this.v6 !== null
      ? answerSendFailure6(this.sink, this.v6.gateway, this.cfg.mtu, code, true, ring, i)
      : answerSendFailure(this.sink, this.cfg.gateway, code, true, ring, i);
    if (r === IcmpErrorResult.SENT) count(this.counters, UdpCounters.ICMP_SENT);
    else if (r < 0 && this.log.enabled('debug')) this.log.log('debug', `udp: send failed: ${code ?? err.message}`);
  }

  private icmpError(code: number, from: number, buf: Uint8Array, ipOff: number, ipLen: number): void {
    if (sendIcmpUnreachable(this.sink, code, from, buf, ipOff, ipLen) === 0) {
      count(this.counters, UdpCounters.ICMP_SENT);
    }
  }

  private icmpError6(code: number, from: Uint8Array, fromOff: number, buf: Uint8Array, ipOff: number, ipLen: number): void {
    if (sendIcmp6Unreachable(this.sink, icmp6Code(code), from, fromOff, buf, ipOff, ipLen, this.cfg.mtu) === 0) {
      count(this.counters, UdpCounters.ICMP_SENT);
    }
  }

  // --- host -> guest -------------------------------------------------------------------------

  private onHostMessage(flow: UdpFlow, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (flow.closed) return;
    const c = this.counters;
    let srcIp = -1;
    let sport = rinfo.port;
    const peers = flow.peers;
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      if (p.hostPort === rinfo.port && p.hostAddr === rinfo.address) {
        srcIp = p.guestIp; sport = p.guestPort;
        break;
      }
    }
    if (srcIp < 0) {
      const a = ipv4FromString(rinfo.address);
      if (a >>> 24 === 127) {
        if (a !== LOOPBACK || !flow.dialedGateway || !this.cfg.hostLoopback) {
          count(c, UdpCounters.RX_DROP_LOOPBACK_SOURCE);
          return;
        }
        srcIp = this.cfg.gateway;
      } else if (a < 0 || !this.isRoutable(a)) {
        count(c, UdpCounters.RX_DROP_UNROUTABLE_SOURCE);
        return;
      } else {
        srcIp = a;
      }
    }
    flow.lastActive = this.now();
    this.flows.touch(flow);
    if (this.emitToGuest(flow.guestIp, flow.guestPort, srcIp, sport, msg)) {
      count(c, UdpCounters.RX_DATAGRAMS);
      count(c, UdpCounters.RX_BYTES, msg.length);
    }
  }

  /** A datagram on an IPv6 flow's socket (see the top of this file for the source rules). */
  private onHostMessage6(flow: UdpFlow, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (flow.closed) return;
    const c = this.counters;
    const v6 = this.v6!;
    let from: Uint8Array | null = null;
    let sport = rinfo.port;
    const peers = flow.peers;
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i]!;
      if (p.hostPort === rinfo.port && p.hostAddr === rinfo.address) {
        from = p.guestIp6; sport = p.guestPort;
        break;
      }
    }
    if (from === null) {
      const a = this.addr6;
      if (!parseIpv6Into(rinfo.address, a, 0)) { count(c, UdpCounters.RX_DROP_UNROUTABLE_SOURCE); return; }
      if (isLoopback6(a, 0)) {
        if (!flow.dialedGateway || !this.cfg.hostLoopback) { count(c, UdpCounters.RX_DROP_LOOPBACK_SOURCE); return; }
        from = v6.gateway;
      } else if (!this.isRoutable6(a, 0)) {
        count(c, UdpCounters.RX_DROP_UNROUTABLE_SOURCE);
        return;
      } else {
        from = a;
      }
    }
    flow.lastActive = this.now();
    this.flows.touch(flow);
    if (this.emitToGuest6(flow.guestIp6!, 0, flow.guestPort, from, 0, sport, msg)) {
      count(c, UdpCounters.RX_DATAGRAMS);
      count(c, UdpCounters.RX_BYTES, msg.length);
    }
  }

  /**
   * emitToGuest() for IPv6: to [dst]:dport from [src]:sport (16-byte addresses at dst[dOff] and
   * src[sOff]), fragmented when it does not fit the MTU (udp6-emit.ts).
   */
  emitToGuest6(dst: Uint8Array, dOff: number, dport: number, src: Uint8Array, sOff: number, sport: number,
    payload: Uint8Array): boolean {
    const c = this.counters;
    switch (this.out6.emit(dst, dOff, dport, src, sOff, sport, payload)) {
      case Udp6EmitResult.SENT: return true;
      case Udp6EmitResult.FRAGMENTED: count(c, UdpCounters.RX_FRAGMENTED); return true;
      case Udp6EmitResult.NO_MAC: count(c, UdpCounters.RX_DROP_NO_MAC); return false;
      case Udp6EmitResult.TOO_BIG: count(c, UdpCounters.RX_DROP_TOO_BIG); return false;
      default: count(c, UdpCounters.RX_DROP_SINK); return false;
    }
  }

  /**
   * Build and send one UDP datagram to the guest (as one frame, or as IP fragments when it does
   * not fit the MTU). Exposed for the DNS forwarder and port forwards, which have the same need.
   */
  emitToGuest(dstIp: number, dport: number, srcIp: number, sport: number, payload: Uint8Array): boolean {
    const c = this.counters;
    const sink = this.sink;
    const mac = sink.macFor(dstIp);
    if (mac === null) { count(c, UdpCounters.RX_DROP_NO_MAC); return false; }
    const udpLen = UDP_HDR_LEN + payload.length;
    if (udpLen + IPV4_HDR_LEN > 65535) { count(c, UdpCounters.RX_DROP_TOO_BIG); return false; }
    const h = this.hdr;
    emitEthernet(h, VNET_HDR_LEN, mac, sink.gatewayMac, EtherType.IPV4);
    emitUdpHeader(h, UDP_OFF, sport, dport, udpLen);
    const pseudo = pseudoHeaderSum4(srcIp, dstIp, IpProtocol.UDP, udpLen);
    const ipRoom = this.cfg.mtu - IPV4_HDR_LEN;
    this.ident = (this.ident + 1) & 0xffff;
    const parts = this.parts;

    if (udpLen <= ipRoom) {
      emitIpv4Header(h, IP_OFF, IPV4_HDR_LEN + udpLen, this.ident, TTL, IpProtocol.UDP, srcIp, dstIp, false);
      if (sink.offloads) {
        // The kernel finishes the sum from csum_start; it starts from what the field holds.
        emitVnetHeader(h, 0, VnetFlags.NEEDS_CSUM, GsoType.NONE, HDRS_LEN - VNET_HDR_LEN, 0, CSUM_START, CSUM_OFFSET);
        setUdpChecksum(h, UDP_OFF, fold(pseudo));
      } else {
        emitVnetNone(h, 0);
        setUdpChecksum(h, UDP_OFF, this.fullChecksum(pseudo, payload));
      }
      parts[0] = this.hdrWithUdp;
      parts[1] = payload;
      const ok = sink.send(parts);
      parts[1] = EMPTY; // do not keep the host's Buffer alive
      if (!ok) count(c, UdpCounters.RX_DROP_SINK);
      return ok;
    }

    // IP fragmentation toward the guest (RFC 791 3.2): every piece but the last carries a
    // multiple of 8 bytes of the UDP datagram (header included) and More Fragments.
    const fragRoom = ipRoom & ~7;
    if (fragRoom < 8) { count(c, UdpCounters.RX_DROP_TOO_BIG); return false; }
    const pieces = Math.ceil(udpLen / fragRoom);
    if (pieces > this.maxFragments) { count(c, UdpCounters.RX_DROP_TOO_BIG); return false; }
    emitVnetNone(h, 0);
    setUdpChecksum(h, UDP_OFF, this.fullChecksum(pseudo, payload));
    let ok = true;
    for (let k = 0; k < pieces; k++) {
      const start = k * fragRoom;
      const end = Math.min(udpLen, start + fragRoom);
      emitIpv4Header(h, IP_OFF, IPV4_HDR_LEN + (end - start), this.ident, TTL, IpProtocol.UDP, srcIp, dstIp, false);
      setU16(h, IP_OFF + 6, (end < udpLen ? 0x2000 : 0) | (start >>> 3));
      setU16(h, IP_OFF + 10, 0);
      setU16(h, IP_OFF + 10, checksum(h, IP_OFF, IPV4_HDR_LEN));
      if (k === 0) {
        parts[0] = this.hdrWithUdp;
        parts[1] = payload.subarray(0, end - UDP_HDR_LEN);
      } else {
        parts[0] = this.hdrIpOnly;
        parts[1] = payload.subarray(start - UDP_HDR_LEN, end - UDP_HDR_LEN);
      }
      if (!sink.send(parts)) ok = false;
    }
    parts[1] = EMPTY;
    if (ok) count(c, UdpCounters.RX_FRAGMENTED); else count(c, UdpCounters.RX_DROP_SINK);
    return ok;
  }

  /** The complete UDP checksum (header in this.hdr with its field zeroed, then the payload). */
  private fullChecksum(pseudo: number, payload: Uint8Array): number {
    setUdpChecksum(this.hdr, UDP_OFF, 0);
    const s = sum16(payload, 0, payload.length, sum16(this.hdr, UDP_OFF, UDP_HDR_LEN, pseudo));
    const ck = ~fold(s) & 0xffff;
    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    return ck === 0 ? 0xffff : ck;
  }

  // --- address classes -----------------------------------------------------------------------

  /** Unicast and not the subnet's broadcast address. */
  private isUnicast(a: number): boolean {
    if (a >>> 28 >= 14 || a === 0) return false;
    const host = ~this.subnetMask >>> 0;
    return !(host !== 0 && ((a & this.subnetMask) >>> 0) === this.cfg.network && ((a & host) >>> 0) === host);
  }

  /**
   * An IPv6 address a reply may carry as its source into the guest's world: not multicast,
   * link-local, in ::/80 (loopback, unspecified, v4-mapped) or inside the guest's own prefix.
   */
  private isRoutable6(b: Uint8Array, o: number): boolean {
    const v6 = this.v6!;
    return !isMulticast6(b, o) && !ipv6IsLowZero80(b, o) && !isLinkLocal6(b, o) &&
      !ipv6PrefixEqual(b, o, v6.prefix, 0, v6.prefixLength);
  }

  /** A real address a reply may carry as its source into the guest's world. */
  private isRoutable(a: number): boolean {
    const first = a >>> 24;
    if (first === 0 || first === 127 || first >= 224) return false;
    return ((a & this.subnetMask) >>> 0) !== this.cfg.network;
  }
}
