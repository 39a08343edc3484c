// ICMP echo translation through unprivileged ping sockets.
//
// Theory of operation
// -------------------
// Linux lets an unprivileged process send echo requests through
// socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) when its group is inside net.ipv4.ping_group_range
// (of the netns tapswitch runs in, i.e. the host's). The kernel owns the echo identifier: it
// rewrites the one we send to the socket's own "port" and delivers to the socket only the echo
// replies that carry it. node:dgram cannot create such a socket, but `bind({ fd })` on one the
// addon opened sends and receives on it (send() wants a port > 0, which the kernel ignores).
//
// A flow is one (guest source, echo identifier, destination): `ping -c 3 1.1.1.1` is one flow,
// two pings at once are two. Each flow owns one ping socket, so a reply needs no demultiplexing:
// it goes back to the flow's guest with the guest's identifier restored (RFC 1624 incremental
// checksum update: only that field changes) and the pinged address as its source (the gateway
// when the guest pinged the gateway and it mapped to 127.0.0.1). Sequence numbers and data pass
// through untouched, so the guest's ping matches replies and measures RTT as usual.
//
// Destinations go through mapDestination(): echo to the gateway and DNS addresses is answered by
// the router before it gets here, but if one arrives the gateway means 127.0.0.1 (or, with host
// loopback disabled, ICMP net unreachable) and the DNS address means the upstream resolver.
//
// Where ping sockets are not permitted (EACCES/EPERM: Debian's default range "1 0"), or the addon
// is not built, one warning says so and how to fix it; every later echo request is dropped and
// counted without another syscall, and everything else keeps working.
//
// ICMPv6 echo (slirp4netns -6): onPacket6 does the same with socket(AF_INET6, SOCK_DGRAM,
// IPPROTO_ICMPV6), which the same ping_group_range governs. IPv6 flows share the table (their
// guestIp/dst hold fold6() of the addresses, never equal to an IPv4 one: see flow-table.ts). The
// differences: the guest's checksum covers the IPv6 pseudo-header, and a reply's checksum is
// recomputed in full for the guest's addresses (the kernel computed it for the host's); the
// gateway fd00::2 means ::1; errors are ICMPv6 (icmp6-error.ts).
//
// Bounds: at most 256 flows (each an fd; the least recently used is evicted), idle timeout 30 s,
// at most 64 sends in flight. Sends are zero-copy from the receive slab exactly as for UDP (see
// host-dgram.ts). A send that fails locally (no route) is answered with ICMP unreachable.
// ICMP errors from the network about our echo requests (host unreachable...) are not seen: the
// ping sockets are unconnected and node:dgram cannot set IP_RECVERR. The guest's ping then just
// times out, as ping through slirp4netns does.
import * as dgram from 'node:dgram';
import { setU16, u16 } from '../wire/bytes';
import { checksum, pseudoHeaderSum6, updateChecksum16 } from '../wire/checksum';
import { Icmpv6Type } from '../wire/icmpv6';
import { IPV6_HDR_LEN } from '../wire/ipv6';
import { isLinkLocal6, isMulticast6, ipv6Equal, parseIpv6Address } from '../wire/ipv6-addr';
import { fold6 } from './flow-table';
import { answerSendFailure6, icmp6Code, ringEntryIsIpv6, sendIcmp6Unreachable } from './icmp6-error';
import { writeIpv6Header } from './udp6-emit';
import { emitEthernet, EtherType, ETH_HDR_LEN, type EthernetView } from '../wire/ethernet';
import { count, type Counters, type Frame } from '../wire/frame';
import { IcmpType, IcmpUnreachCode, IcmpView, ICMP_HDR_LEN } from '../wire/icmp';
import { emitIpv4Header, IpProtocol, IPV4_HDR_LEN, type Ipv4View } from '../wire/ipv4';
import type { Ipv6View } from '../wire/ipv6';
import { emitVnetNone, VNET_HDR_LEN } from '../wire/vnet';
import { ipv6IsLowZero80, parseIpv6Into, prefixMask } from '../wire/addr';
import type { DataPlaneConfig } from '../worker/protocol';
import { mapDestination, mapDestination6, parseIpv6Config, type Ipv6Addrs } from './host-map';
import { SendRing, syncLookup } from './host-dgram';
import { answerSendFailure, IcmpErrorResult, sendAbandoned, sendIcmpUnreachable } from './icmp-error';
import { KeyedLruTable, Sweeper, type LruEntry } from './lru-table';
import type { GuestSink, Logger, ProtocolTranslator, TranslatorContext } from './types';

/** Opens one IPv4 ping socket: an fd, or -errno. */
export type PingSocketOpener = () => number;

export interface IcmpTranslatorOptions {
  /** Idle time (ms) after which a flow's ping socket is closed. Default 30 000. */
  idleTimeoutMs?: number;
  /** Most concurrent flows (= ping sockets); the least recently used is evicted. Default 256. */
  maxFlows?: number;
  /** Sends queued in libuv at once before requests are dropped. Default 64. */
  maxPendingSends?: number;
  /** Sweep period (ms). Default min(1000, idle timeout / 2). */
  sweepIntervalMs?: number;
  /** Millisecond clock (tests may inject one). Default Date.now. */
  now?: () => number;
  /** Default: the native addon's openPingSocket(4). */
  openPingSocket?: PingSocketOpener;
  /** The ICMPv6 twin (default: the addon's openPingSocket(6)). */
  openPingSocket6?: PingSocketOpener;
  /** Closes an fd that never became a socket (default: the addon's close). */
  closeFd?: (fd: number) => void;
}

export const ICMP_DEFAULTS = {
  idleTimeoutMs: 30_000,
  maxFlows: 256,
  maxPendingSends: 64,
} as const;

export const IcmpCounters = {
  FLOWS_CREATED: 'icmp.flows.created',
  FLOWS_EXPIRED: 'icmp.flows.expired',
  FLOWS_EVICTED: 'icmp.flows.evicted',
  FLOWS_ERRORED: 'icmp.flows.errored',
  TX_ECHO: 'icmp.tx.echo_requests',
  TX_DROP_MALFORMED: 'icmp.tx.drop.malformed',
  TX_DROP_FRAGMENT: 'icmp.tx.drop.fragment',
  TX_DROP_NOT_ECHO: 'icmp.tx.drop.not_echo_request',
  TX_DROP_BAD_CHECKSUM: 'icmp.tx.drop.bad_checksum',
  TX_DROP_NOT_UNICAST: 'icmp.tx.drop.not_unicast',
  /** ICMPv6 while IPv6 is off (no config.ipv6) */
  TX_DROP_IPV6_OFF: 'icmp.tx.drop.ipv6_off',
  FLOWS6_CREATED: 'icmp.flows6.created',
  TX_DROP_UNREACHABLE: 'icmp.tx.drop.unreachable',
  /** Ping sockets are not permitted here (or the addon is missing): echo is disabled. */
  TX_DROP_NOT_PERMITTED: 'icmp.tx.drop.not_permitted',
  TX_DROP_SOCKET: 'icmp.tx.drop.socket',
  TX_DROP_BACKLOG: 'icmp.tx.drop.backlog',
  TX_ERROR: 'icmp.tx.error',
  RX_ECHO: 'icmp.rx.echo_replies',
  RX_DROP_NOT_REPLY: 'icmp.rx.drop.not_echo_reply',
  RX_DROP_WRONG_SOURCE: 'icmp.rx.drop.wrong_source',
  RX_DROP_NO_MAC: 'icmp.rx.drop.no_mac',
  RX_DROP_TOO_BIG: 'icmp.rx.drop.too_big',
  RX_DROP_SINK: 'icmp.rx.drop.sink',
  ICMP_SENT: 'icmp.errors_sent',
} as const;

/** The one warning when ping sockets are refused (EACCES/EPERM). */
export const PING_NOT_PERMITTED_WARNING =
  "ICMP echo disabled: this user's group is outside net.ipv4.ping_group_range " +
  "(allow it with: sysctl -w net.ipv4.ping_group_range='0 2147483647'); everything else keeps working";

const EPERM = 1;
const EACCES = 13;
const TTL = 64;
const IP_OFF = VNET_HDR_LEN + ETH_HDR_LEN; // 24
const HDRS_LEN = IP_OFF + IPV4_HDR_LEN; // 44
const EMPTY = new Uint8Array(0);

class PingFlow implements LruEntry<PingFlow> {
  lastActive: number;
  closed = false;
  bound = false;
  /** Table links (lru-table.ts). */
  twin: PingFlow | null = null;
  older: PingFlow | null = null;
  newer: PingFlow | null = null;
  /** ICMPv6 flows: the guest's address, the pinged one and the host's (guestIp/dst hold folds). */
  guestIp6: Uint8Array | null = null;
  dst6: Uint8Array | null = null;
  hostAddr6: Uint8Array | null = null;

  constructor(readonly key: number, readonly guestIp: number, readonly guestId: number,
    /** The address the guest pinged (the replies' source). */
    readonly dst: number,
    /** Where the ping socket sends (mapDestination's answer). */
    readonly hostAddr: string,
    readonly sock: dgram.Socket, now: number) {
    this.lastActive = now;
  }
}

/** A small-integer (Smi) key; flows sharing one chain through `twin`. */
function flowKey(guestIp: number, id: number, dst: number): number {
  return (dst ^ Math.imul(guestIp, 0x9e3779b1) ^ (id << 8)) | 0;
}

export class IcmpTranslator implements ProtocolTranslator {
  private readonly cfg: DataPlaneConfig;
  private readonly sink: GuestSink;
  private readonly counters: Counters;
  private readonly log: Logger;
  private readonly idleMs: number;
  private readonly maxFlows: number;
  private readonly now: () => number;
  private readonly subnetMask: number;
  private opener: PingSocketOpener | null;
  private opener6: PingSocketOpener | null;
  private closeFd: ((fd: number) => void) | null;
  /** Set once ping sockets proved unavailable: no more attempts, one warning. */
  private disabled = false;

  private readonly flows = new KeyedLruTable<PingFlow>();
  private readonly sweeper: Sweeper;
  private readonly icmp = new IcmpView();
  private readonly ring: SendRing;

  private readonly hdr = new Uint8Array(HDRS_LEN);
  private readonly parts: Uint8Array[] = [this.hdr, EMPTY];
  private ident = 0;
  /** IPv6: config (null: off), reply headers (vnet + Ethernet + IPv6), a scratch address. */
  private readonly v6: Ipv6Addrs | null;
  private readonly hdr6 = new Uint8Array(IP_OFF + IPV6_HDR_LEN);
  private readonly parts6: Uint8Array[] = [this.hdr6, EMPTY];
  private readonly addr6 = new Uint8Array(16);

  constructor(ctx: TranslatorContext, opts: IcmpTranslatorOptions = {}) {
    this.cfg = ctx.config;
    this.sink = ctx.sink;
    this.counters = ctx.counters;
    this.log = ctx.log;
    this.idleMs = opts.idleTimeoutMs ?? ICMP_DEFAULTS.idleTimeoutMs;
    this.maxFlows = Math.max(1, opts.maxFlows ?? ICMP_DEFAULTS.maxFlows);
    this.sweeper = new Sweeper(() => this.sweep(),
      opts.sweepIntervalMs ?? Math.max(10, Math.min(1000, Math.floor(this.idleMs / 2))));
    this.now = opts.now ?? Date.now;
    this.subnetMask = prefixMask(this.cfg.prefixLength);
    this.opener = opts.openPingSocket ?? null;
    this.opener6 = opts.openPingSocket6 ?? null;
    this.v6 = parseIpv6Config(this.cfg);
    this.closeFd = opts.closeFd ?? null;
    this.ring = new SendRing(Math.max(1, opts.maxPendingSends ?? ICMP_DEFAULTS.maxPendingSends),
      (ring, i, err) => this.onSendFailed(ring, i, err));
  }

  get flowCount(): number { return this.flows.size; }

  /** False once ping sockets proved unavailable (see PING_NOT_PERMITTED_WARNING). */
  get echoEnabled(): boolean { return !this.disabled; }

  get pendingSends(): number { return this.ring.pending; }

  /** An ICMPv6 packet from the guest: echo requests are translated (see the top of this file). */
  onPacket6(frame: Frame, _eth: EthernetView, ip: Ipv6View): void {
    const c = this.counters;
    const v6 = this.v6;
    if (v6 === null) { count(c, IcmpCounters.TX_DROP_IPV6_OFF); return; }
    if (ip.nextHeader !== 58) { count(c, IcmpCounters.TX_DROP_MALFORMED); return; }
    const m = this.icmp;
    if (!m.bind(ip.b, ip.payloadOffset, ip.payloadLength)) { count(c, IcmpCounters.TX_DROP_MALFORMED); return; }
    if (m.type !== Icmpv6Type.ECHO_REQUEST || m.code !== 0) { count(c, IcmpCounters.TX_DROP_NOT_ECHO); return; }
    const b = ip.b;
    const so = ip.srcAddrOffset;
    const dO = ip.dstAddrOffset;
    if (checksum(b, m.o, m.n, pseudoHeaderSum6(b, so, b, dO, 58, m.n)) !== 0) {
      count(c, IcmpCounters.TX_DROP_BAD_CHECKSUM);
      return;
    }
    if (isMulticast6(b, dO) || ipv6IsLowZero80(b, dO) || isLinkLocal6(b, dO)) {
      count(c, IcmpCounters.TX_DROP_NOT_UNICAST);
      return;
    }
    if (this.disabled) { count(c, IcmpCounters.TX_DROP_NOT_PERMITTED); return; }
    if (isMulticast6(b, so) || ipv6IsLowZero80(b, so)) { count(c, IcmpCounters.TX_DROP_MALFORMED); return; }
    const id = m.identifier;
    const now = this.now();
    const g = fold6(b, so);
    const d = fold6(b, dO);
    const key = flowKey(g, id, d);
    let flow = this.flows.first(key);
    while (flow !== null && (flow.guestIp !== g || flow.guestId !== id || flow.dst !== d ||
      !ipv6Equal(flow.guestIp6!, 0, b, so) || !ipv6Equal(flow.dst6!, 0, b, dO))) {
      flow = flow.twin;
    }
    if (flow === null) {
      const isDns = v6.dns !== null && ipv6Equal(b, dO, v6.dns, 0);
      const t = mapDestination6(this.cfg, v6, b, dO, isDns ? 53 : 1);
      // An IPv4 answer (the DNS address's upstream) cannot be pinged over ICMPv6.
      if (t.kind === 'unreachable' || !t.address.includes(':')) {
        count(c, IcmpCounters.TX_DROP_UNREACHABLE);
        this.icmpError6(IcmpUnreachCode.NET, b, ip.o, ip.totalLength);
        return;
      }
      const created = this.createFlow(key, g, id, d, t.address, now, b.slice(so, so + 16), b.slice(dO, dO + 16));
      if (created === null) return; // counted inside
      flow = created;
    }
    flow.lastActive = now;
    this.flows.touch(flow);

    const ring = this.ring;
    const i = ring.begin(frame.owner, frame.slot, b, ip.o, ip.totalLength, 0);
    if (i < 0) { count(c, IcmpCounters.TX_DROP_BACKLOG); return; }
    const sock = flow.sock;
    try {
      sock.send(b, m.o, m.n, 1, flow.hostAddr, ring.callback(i));
    } catch {
      count(c, IcmpCounters.TX_DROP_SOCKET);
      ring.callback(i)(null);
      return;
    }
    if (flow.bound && sock.getSendQueueCount() === 0) ring.settle(i);
    count(c, IcmpCounters.TX_ECHO);
  }

  onPacket(frame: Frame, _eth: EthernetView, ip: Ipv4View): void {
    const c = this.counters;
    if (ip.protocol !== IpProtocol.ICMP) { count(c, IcmpCounters.TX_DROP_MALFORMED); return; }
    if (ip.isFragment) { count(c, IcmpCounters.TX_DROP_FRAGMENT); return; }
    const m = this.icmp;
    if (!m.bind(ip.b, ip.payloadOffset, ip.payloadLength)) { count(c, IcmpCounters.TX_DROP_MALFORMED); return; }
    // Only echo requests can be translated; the kernel refuses any other type or a nonzero code.
    if (m.type !== IcmpType.ECHO_REQUEST || m.code !== 0) { count(c, IcmpCounters.TX_DROP_NOT_ECHO); return; }
    // ICMP is never checksum-offloaded, so the guest's checksum is final: a bad one is noise.
    if (!m.checksumValid) { count(c, IcmpCounters.TX_DROP_BAD_CHECKSUM); return; }
    const dst = ip.dstAddr;
    if (!this.isUnicast(dst)) { count(c, IcmpCounters.TX_DROP_NOT_UNICAST); return; }
    if (this.disabled) { count(c, IcmpCounters.TX_DROP_NOT_PERMITTED); return; }
    const src = ip.srcAddr;
    const sfirst = src >>> 24;
    if (sfirst === 0 || sfirst === 127 || sfirst >= 224) { count(c, IcmpCounters.TX_DROP_MALFORMED); return; }
    const id = m.identifier;
    const now = this.now();

    const key = flowKey(src, id, dst);
    let flow = this.flows.first(key);
    while (flow !== null && (flow.guestIp !== src || flow.guestId !== id || flow.dst !== dst)) {
      flow = flow.twin;
    }
    if (flow === null) {
      // The DNS address only means something on port 53: ask mapDestination as if for it.
      const t = mapDestination(this.cfg, dst, dst === this.cfg.dns ? 53 : 1);
      if (t.kind === 'unreachable') {
        count(c, IcmpCounters.TX_DROP_UNREACHABLE);
        this.icmpError(IcmpUnreachCode.NET, this.cfg.gateway, ip.b, ip.o, ip.tl);
        return;
      }
      const created = this.createFlow(key, src, id, dst, t.address, now);
      if (created === null) return; // counted inside
      flow = created;
    }
    flow.lastActive = now;
    this.flows.touch(flow);

    const ring = this.ring;
    const i = ring.begin(frame.owner, frame.slot, ip.b, ip.o, ip.tl, dst);
    if (i < 0) { count(c, IcmpCounters.TX_DROP_BACKLOG); return; }
    const sock = flow.sock;
    try {
      // The whole ICMP message as the guest built it; the kernel sets the identifier and checksum.
      // Port 1: dgram insists on one, the kernel ignores it.
      sock.send(ip.b, m.o, m.n, 1, flow.hostAddr, ring.callback(i));
    } catch {
      count(c, IcmpCounters.TX_DROP_SOCKET);
      ring.callback(i)(null);
      return;
    }
    if (flow.bound && sock.getSendQueueCount() === 0) ring.settle(i);
    count(c, IcmpCounters.TX_ECHO);
  }

  close(): void {
    this.sweeper.stop();
    for (let f = this.flows.oldest; f !== null; f = this.flows.oldest) this.closeFlow(f, null);
    this.flows.clear();
  }

  /** Close idle flows now (the timer calls this; tests may too). */
  sweep(): void {
    const now = this.now();
    // LRU order is idle order here (one timeout for all): stop at the first live flow.
    for (let f = this.flows.oldest; f !== null && now - f.lastActive >= this.idleMs; f = this.flows.oldest) {
      this.closeFlow(f, IcmpCounters.FLOWS_EXPIRED);
    }
    if (this.flows.size === 0) this.sweeper.stop();
  }

  // --- ping sockets --------------------------------------------------------------------------

  /** The opener, loading the addon on first use; null (and echo disabled) when it cannot load. */
  private getOpener(v6 = false): PingSocketOpener | null {
    const given = v6 ? this.opener6 : this.opener;
    if (given !== null) return given;
    try {
      // Loaded lazily: tests and hosts without the addon still get UDP/TCP.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { native } = require('../link/native') as typeof import('../link/native');
      if (this.opener === null) this.opener = () => native.openPingSocket(4);
      if (this.opener6 === null) this.opener6 = () => native.openPingSocket(6);
      if (this.closeFd === null) this.closeFd = (fd) => { native.close(fd); };
      return v6 ? this.opener6 : this.opener;
    } catch (err) {
      this.disable(`ICMP echo disabled: the native addon is not available (${(err as Error).message})`);
      return null;
    }
  }

  private disable(warning: string): void {
    if (this.disabled) return;
    this.disabled = true;
    this.log.log('warn', warning);
  }

  /** A flow with its ping socket: ICMPv4, or ICMPv6 when guest6/dst6 are given (then guestIp/dst are folds). */
  private createFlow(key: number, guestIp: number, guestId: number, dst: number, hostAddr: string,
    now: number, guest6: Uint8Array | null = null, dst6: Uint8Array | null = null): PingFlow | null {
    const c = this.counters;
    const open = this.getOpener(guest6 !== null);
    if (open === null) { count(c, IcmpCounters.TX_DROP_NOT_PERMITTED); return null; }
    let fd: number;
    try {
      fd = open();
    } catch (err) {
      fd = -1;
      this.log.log('debug', `icmp: openPingSocket threw: ${(err as Error).message}`);
    }
    if (fd < 0) {
      if (fd === -EACCES || fd === -EPERM) {
        this.disable(PING_NOT_PERMITTED_WARNING);
        count(c, IcmpCounters.TX_DROP_NOT_PERMITTED);
      } else {
        // EMFILE, ENOBUFS...: this request fails, later ones may not.
        if (this.log.enabled('debug')) this.log.log('debug', `icmp: cannot open a ping socket: errno ${-fd}`);
        count(c, IcmpCounters.TX_DROP_SOCKET);
      }
      return null;
    }
    // Only now that a socket exists is it worth evicting the least recently used flow for it.
    const lru = this.flows.oldest;
    if (this.flows.size >= this.maxFlows && lru !== null) this.closeFlow(lru, IcmpCounters.FLOWS_EVICTED);
    let sock: dgram.Socket;
    try {
      sock = dgram.createSocket({ type: guest6 === null ? 'udp4' : 'udp6', lookup: syncLookup as never });
    } catch {
      this.closeFd?.(fd);
      count(c, IcmpCounters.TX_DROP_SOCKET);
      return null;
    }
    const flow = new PingFlow(key, guestIp, guestId, dst, hostAddr, sock, now);
    if (guest6 === null) {
      sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onReply(flow, msg, rinfo));
    } else {
      flow.guestIp6 = guest6;
      flow.dst6 = dst6;
      flow.hostAddr6 = parseIpv6Address(hostAddr);
      sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onReply6(flow, msg, rinfo));
    }
    sock.on('error', (err: Error) => this.onSocketError(flow, err));
    sock.on('listening', () => { flow.bound = true; });
    try {
      // From here the socket owns the fd (closing the socket closes it).
      sock.bind({ fd });
    } catch (err) {
      this.log.log('debug', `icmp: cannot adopt ping socket fd ${fd}: ${(err as Error).message}`);
      this.closeFd?.(fd);
      count(c, IcmpCounters.TX_DROP_SOCKET);
      return null;
    }
    this.flows.insert(flow);
    count(c, IcmpCounters.FLOWS_CREATED);
    if (guest6 !== null) count(c, IcmpCounters.FLOWS6_CREATED);
    this.sweeper.start();
    return flow;
  }

  private closeFlow(flow: PingFlow, reason: string | null): void {
    if (flow.closed) return;
    flow.closed = true;
    this.flows.remove(flow);
    if (reason !== null) count(this.counters, reason);
    try {
      flow.sock.close();
    } catch {
      // Already closed.
    }
  }

  private onSocketError(flow: PingFlow, err: Error): void {
    if (this.log.enabled('debug')) {
      this.log.log('debug', `icmp: ping socket error: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
    }
    this.closeFlow(flow, IcmpCounters.FLOWS_ERRORED);
  }

  private onSendFailed(ring: SendRing, i: number, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (sendAbandoned(code)) return;
    count(this.counters, IcmpCounters.TX_ERROR);
    // Echo has no ports: ECONNREFUSED has no ICMP equivalent here.
    const r = ringEntryIsIpv6(ring, i) && this.v6 !== null
      ? answerSendFailure6(this.sink, this.v6.gateway, this.cfg.mtu, code, false, ring, i)
      : answerSendFailure(this.sink, this.cfg.gateway, code, false, ring, i);
    if (r === IcmpErrorResult.SENT) count(this.counters, IcmpCounters.ICMP_SENT);
    else if (r < 0 && this.log.enabled('debug')) this.log.log('debug', `icmp: send failed: ${code ?? err.message}`);
  }

  private icmpError(code: number, from: number, buf: Uint8Array, ipOff: number, ipLen: number): void {
    if (sendIcmpUnreachable(this.sink, code, from, buf, ipOff, ipLen) === 0) {
      count(this.counters, IcmpCounters.ICMP_SENT);
    }
  }

  private icmpError6(code: number, buf: Uint8Array, ipOff: number, ipLen: number): void {
    if (sendIcmp6Unreachable(this.sink, icmp6Code(code), this.v6!.gateway, 0, buf, ipOff, ipLen, this.cfg.mtu) === 0) {
      count(this.counters, IcmpCounters.ICMP_SENT);
    }
  }

  // --- replies -------------------------------------------------------------------------------

  /** An ICMPv6 echo reply on an IPv6 flow's ping socket (message without its IPv6 header). */
  private onReply6(flow: PingFlow, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (flow.closed) return;
    const c = this.counters;
    if (msg.length < ICMP_HDR_LEN || msg[0] !== Icmpv6Type.ECHO_REPLY || msg[1] !== 0) {
      count(c, IcmpCounters.RX_DROP_NOT_REPLY);
      return;
    }
    const host = flow.hostAddr6;
    if (host === null || !parseIpv6Into(rinfo.address, this.addr6, 0) || !ipv6Equal(this.addr6, 0, host, 0)) {
      count(c, IcmpCounters.RX_DROP_WRONG_SOURCE);
      return;
    }
    if (IPV6_HDR_LEN + msg.length > this.cfg.mtu) { count(c, IcmpCounters.RX_DROP_TOO_BIG); return; }
    const guest = flow.guestIp6!;
    const from = flow.dst6!;
    const sink = this.sink;
    const mac = sink.macFor6(guest, 0);
    if (mac === null) { count(c, IcmpCounters.RX_DROP_NO_MAC); return; }
    flow.lastActive = this.now();
    this.flows.touch(flow);
    // The guest's identifier back, and a checksum over the guest's pseudo-header (the kernel's
    // covered the host's addresses). The Buffer is ours: rewrite it in place.
    setU16(msg, 4, flow.guestId);
    setU16(msg, 2, 0);
    setU16(msg, 2, checksum(msg, 0, msg.length, pseudoHeaderSum6(from, 0, guest, 0, 58, msg.length)));
    const h = this.hdr6;
    emitVnetNone(h, 0);
    emitEthernet(h, VNET_HDR_LEN, mac, sink.gatewayMac, EtherType.IPV6);
    writeIpv6Header(h, IP_OFF, msg.length, 58, from, 0, guest, 0);
    const parts = this.parts6;
    parts[1] = msg;
    const ok = sink.send(parts);
    parts[1] = EMPTY;
    if (ok) count(c, IcmpCounters.RX_ECHO); else count(c, IcmpCounters.RX_DROP_SINK);
  }

  private onReply(flow: PingFlow, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (flow.closed) return;
    const c = this.counters;
    // A ping socket delivers the ICMP message without its IP header.
    if (msg.length < ICMP_HDR_LEN || msg[0] !== IcmpType.ECHO_REPLY || msg[1] !== 0) {
      count(c, IcmpCounters.RX_DROP_NOT_REPLY);
      return;
    }
    if (rinfo.address !== flow.hostAddr) { count(c, IcmpCounters.RX_DROP_WRONG_SOURCE); return; }
    if (IPV4_HDR_LEN + msg.length > this.cfg.mtu) { count(c, IcmpCounters.RX_DROP_TOO_BIG); return; }
    const sink = this.sink;
    const mac = sink.macFor(flow.guestIp);
    if (mac === null) { count(c, IcmpCounters.RX_DROP_NO_MAC); return; }
    flow.lastActive = this.now();
    this.flows.touch(flow);

    // Give the guest its own identifier back. The Buffer is ours (dgram allocates one per
    // message), so rewrite it in place.
    const hostId = u16(msg, 4);
    setU16(msg, 2, updateChecksum16(u16(msg, 2), hostId, flow.guestId));
    setU16(msg, 4, flow.guestId);

    const h = this.hdr;
    emitVnetNone(h, 0);
    emitEthernet(h, VNET_HDR_LEN, mac, sink.gatewayMac, EtherType.IPV4);
    this.ident = (this.ident + 1) & 0xffff;
    emitIpv4Header(h, IP_OFF, IPV4_HDR_LEN + msg.length, this.ident, TTL, IpProtocol.ICMP, flow.dst, flow.guestIp, false);
    const parts = this.parts;
    parts[1] = msg;
    const ok = sink.send(parts);
    parts[1] = EMPTY;
    if (ok) count(c, IcmpCounters.RX_ECHO); else count(c, IcmpCounters.RX_DROP_SINK);
  }

  /** Unicast and not the subnet's broadcast address. */
  private isUnicast(a: number): boolean {
    if (a >>> 28 >= 14 || a === 0) return false;
    const host = ~this.subnetMask >>> 0;
    return !(host !== 0 && ((a & this.subnetMask) >>> 0) === this.cfg.network && ((a & host) >>> 0) === host);
  }
}
