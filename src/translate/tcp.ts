// TCP translation: the guest's TCP connections become ordinary host sockets (userspace MASQUERADE).
//
// Theory of operation
//
// tapswitch sits between two real TCP endpoints: the guest's kernel on the TAP, and whatever the
// host socket talks to. So, as in passt, a flow is driven by events (guest SYN, host connected,
// guest FIN, host EOF, ACKs, RSTs, timer expiry) rather than by a full RFC 9293 state machine:
// the host side is the kernel's job; on the guest side we only need what makes the guest's kernel
// see a well-behaved peer.
//
// Opening. A guest SYN (no ACK) for an unknown tuple is mapped (host-map.ts). Unreachable
// destinations get ICMP net unreachable at once. Otherwise the host socket connects *first*; only
// when it connects does the guest get a SYN-ACK (MSS = our MTU - 40, window scale when offered, no
// SACK, no timestamps). Refused -> RST,ACK; host/net unreachable -> ICMP; timeout -> ICMP host
// unreachable. Retransmitted SYNs while connecting are ignored.
//
// Guest -> host. Only in-order bytes are accepted (seq == rcvNxt, with the already-received front
// of a retransmission trimmed); anything out of order is dropped and answered at once with a
// duplicate ACK (so the guest can fast-retransmit), so there is no reassembly queue to bound.
// Accepted payload is written to the socket without a copy: the receive slot is retained and the
// slice handed to socket.write(); the write's callback releases the slot (callbacks come in order,
// so one bound callback per flow pops a small ring: no closure per write). Payloads under
// copyBelow, and any payload once the flow already pins maxRetainedSlots, are copied instead, so a
// slow host socket cannot pin the shared receive slab. The socket is corked while a receive batch
// is processed and uncorked in the microtask that follows it: a batch of segments is one writev.
// The same microtask sends one ACK per flow per batch. Bytes are ACKed as soon as Node holds them;
// the window advertised is min(per-flow budget, global budget) minus bytes still pending in Node,
// scaled by our shift, never moving its right edge left. Write completions and 'drain' reopen it
// with a window update. Data beyond the advertised edge is trimmed.
//
// Host -> guest. Socket 'data' chunks are appended to the flow's send queue and kept until ACKed.
// We send what the guest's window allows, in superframes of up to ~64 KiB (one frame with a GSO
// virtio-net header when the link has offloads, MSS-sized segments with full checksums when not).
// The socket is paused whenever the queue reaches the guest's window (at least 64 KiB) or the
// per-flow cap, and whenever all flows together hold more than the global cap; ACKs resume it.
// Retransmission: RTO from measured RTT (RFC 6298, Karn), exponential backoff, go-back-N from
// sndUna one superframe at a time; fast retransmit on the third duplicate ACK; persist probes
// while the guest's window is zero; RST both ways after too many retransmissions.
//
// Closing. Guest FIN -> socket.end(); socket 'end' -> our FIN after the last queued byte. When the
// guest has sent its FIN and ACKed ours, the flow lingers briefly (to re-ACK a retransmitted FIN)
// and is forgotten. Guest RST -> resetAndDestroy() (plain destroy() once end() was called: libuv
// cannot reset a socket that is shutting down) and forget. Host failure -> deliver what is queued,
// then RST. Segments for unknown tuples get a RST (RFC 9293 3.10.7.1); RSTs never get one.
//
// Port forwarding. openInbound() takes a host socket already accepted and opens the flow from our
// side: SYN to the guest (after ARP if its MAC is unknown), retransmitted with backoff; the guest's
// SYN-ACK establishes it, its RST (or silence) resets the host client. From then on an inbound flow
// is like any other.
//
// IPv6 (slirp4netns -6). onPacket6 runs the same flows: the gateway fd00::2 stands for the host's
// ::1, the DNS address port 53 for the (IPv4) upstream, anything else for itself through an
// AF_INET6 socket (bound to --outbound-addr6). Differences are confined to the edges: the table
// keys IPv6 flows by fold6() plus the bytes (flow-table.ts), frames use a 40-byte IPv6 header and
// GSO TCPV6 (tcp-emit.ts), our MSS is MTU - 60, and errors are ICMPv6 type 1 (icmp6-error.ts).
//
// Bounds. At most maxFlows flows, at most maxConnecting of them with a handshake in flight (host
// connect pending, or our SYN-ACK / inbound SYN not yet acknowledged by the guest). A SYN
// beyond the connecting bound evicts the oldest connecting flow (silently: the guest retransmits
// that SYN), so a SYN flood to black holes cannot lock out a legitimate connection. With the table
// full, a SYN evicts the oldest lingering flow, else the oldest connecting one, else it is dropped:
// established flows are never evicted. Every flow has exactly one timer entry on a coarse wheel;
// idle flows time out (established, half-closed); nothing ever throws out of onPacket.
import * as net from 'node:net';
import { randomFillSync } from 'node:crypto';
import { ipv4ToString, ipv6IsLowZero80 } from '../wire/addr';
import { isLinkLocal6, isMulticast6 } from '../wire/ipv6-addr';
import type { EthernetView } from '../wire/ethernet';
import { count, type Counters, type Frame } from '../wire/frame';
import { IcmpUnreachCode } from '../wire/icmp';
import type { Ipv4View } from '../wire/ipv4';
import { IPV6_HDR_LEN, Ipv6View, ipv6ToString } from '../wire/ipv6';
import { seqDiff, seqGt } from '../wire/seq';
import { TcpFlags, TcpView, emitSynAckOptions, newTcpSynOptions } from '../wire/tcp';
import { FlowTable, fold6 } from './flow-table';
import { HostReadPool } from './host-read';
import { TcpCounters as C } from './tcp-counters';
export { TcpCounters } from './tcp-counters';
import { mapDestination, mapDestination6, parseIpv6Config, type HostTarget, type Ipv6Addrs } from './host-map';
import { icmp6Code, sendIcmp6Unreachable } from './icmp6-error';
import { MAX_SUPERFRAME_PAYLOAD, MAX_SUPERFRAME_PAYLOAD6, TcpEmitter, initTemplate, initTemplate6 } from './tcp-emit';
import { FlowList, TCP_STATE_NAMES, TcpEvent, TcpFlow, TcpFlowState } from './tcp-flow';
import { TimerWheel } from './tcp-timers';
import type { ProtocolTranslator, TranslatorContext } from './types';

export interface TcpTranslatorOptions {
  /** Most flows at once (default 4096). */
  maxFlows?: number;
  /** Most flows whose host connect() is still in flight (default 512). */
  maxConnecting?: number;
  /** Receive budget per flow: the most we advertise / hold pending in Node (default 4 MiB). */
  rcvBuf?: number;
  /** Receive budget over all flows (default 256 MiB). */
  globalRcvBuf?: number;
  /** Send budget per flow: host bytes held until the guest ACKs them (default 4 MiB). */
  sndBuf?: number;
  /** Send budget over all flows (default 256 MiB). */
  globalSndBuf?: number;
  /** Our window scale shift when the guest offers scaling (default 7: windows up to 8 MiB). */
  windowShift?: number;
  connectTimeoutMs?: number;
  /** Established flows with no traffic either way (default 2 h). */
  idleTimeoutMs?: number;
  /** Flows with a FIN seen in either direction and no traffic (default 60 s). */
  closingTimeoutMs?: number;
  /** How long a finished flow stays to re-ACK retransmitted FINs (default 5 s). */
  lingerMs?: number;
  synAckRetries?: number;
  initialRtoMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  /** Retransmissions of the same data before both sides are reset (default 15). */
  maxRetransmits?: number;
  /** Timer wheel granularity (default 50 ms). */
  tickMs?: number;
  /** Receive slots one flow may hold through pending zero-copy writes before copying (default 32). */
  maxRetainedSlots?: number;
  /** Payloads shorter than this are copied rather than pinning a 64 KiB slot (default 2048). */
  copyBelow?: number;
  /** Pending socket writes per flow beyond which segments are dropped unACKed (default 4096). */
  maxPendingWrites?: number;
  /**
   * The TAP has several queues (one worker each). The kernel steers a flow's frames to the queue
   * that last wrote it, but forgets after 3 s without writes and falls back to a hash of the flow.
   * Outbound flows live on that hash queue anyway (their SYN came through it); an inbound flow
   * (port forward) lives on the queue that accepted it, so while idle it sends a bare ACK every
   * queuePinMs to keep the kernel's entry, else the guest's next segment could reach a worker that
   * does not know the flow and answers RST. Default false (one queue).
   */
  multiQueue?: boolean;
  /** Refresh interval for multiQueue (default 2000 ms; the kernel's entries expire after 3 s). */
  queuePinMs?: number;
  /** Clock in ms (default performance.now). */
  now?: () => number;
  /** Do not start an interval: the caller drives timers with runTimers() (tests). */
  manualTimers?: boolean;
  /** How to open host sockets (default net.connect); tests may substitute. */
  connect?: (opts: net.TcpNetConnectOpts) => net.Socket;
}

type Required2<T> = { [K in keyof T]-?: T[K] };
type Limits = Required2<Omit<TcpTranslatorOptions, 'now' | 'manualTimers' | 'connect' | 'multiQueue'>>;

export const TCP_DEFAULTS: Limits = {
  maxFlows: 4096,
  maxConnecting: 512,
  rcvBuf: 4 << 20,
  globalRcvBuf: 256 << 20,
  sndBuf: 4 << 20,
  globalSndBuf: 256 << 20,
  windowShift: 7,
  connectTimeoutMs: 20_000,
  idleTimeoutMs: 2 * 3600_000,
  closingTimeoutMs: 60_000,
  lingerMs: 5_000,
  synAckRetries: 5,
  initialRtoMs: 1_000,
  minRtoMs: 200,
  maxRtoMs: 60_000,
  maxRetransmits: 15,
  tickMs: 50,
  maxRetainedSlots: 32,
  copyBelow: 2048,
  maxPendingWrites: 4096,
  queuePinMs: 2000,
};

/** A flow as seen from outside (tests, stats). */
export interface TcpFlowInfo {
  guest: string;
  remote: string;
  state: string;
  events: number;
  reading: boolean;
  queued: number;
  inFlight: number;
  sndWnd: number;
  pendingWrite: number;
  retainedSlots: number;
  rto: number;
  retransmits: number;
  mss: number;
}

const SYN_ONLY_MASK = TcpFlags.SYN | TcpFlags.ACK | TcpFlags.RST | TcpFlags.FIN;
const MIN_MSS = 88;
const DEFAULT_MSS = 536;
const LIST_CONNECTING = 1;
const LIST_LINGER = 2;
/** Node reads a stream socket 64 KiB at a time: a read that size says more is probably waiting. */
const HOST_READ_FULL = 65536;

export class TcpTranslator implements ProtocolTranslator {
  private readonly lim: Limits;
  private readonly table: FlowTable<TcpFlow>;
  private readonly connecting = new FlowList(LIST_CONNECTING);
  private readonly lingering = new FlowList(LIST_LINGER);
  private readonly wheel: TimerWheel<TcpFlow>;
  private readonly emit: TcpEmitter;
  private readonly tcp = new TcpView();
  private readonly synOpts = newTcpSynOptions();
  private readonly counters: Counters;
  private readonly clock: () => number;
  private readonly connectFn: (opts: net.TcpNetConnectOpts) => net.Socket;
  private readonly isn = new Uint32Array(64);
  private isnLeft = 0;
  private interval: NodeJS.Timeout | null = null;
  private readonly manualTimers: boolean;
  private readonly multiQueue: boolean;
  private coarseNow: number;
  private closed = false;
  /** Bytes queued toward the guest over all flows / pending in Node toward hosts. */
  private globalQueued = 0;
  private globalPending = 0;
  /** Flows paused only because of the global send budget. */
  private readonly starved = new Set<TcpFlow>();
  private readonly ackQueue: TcpFlow[] = [];
  private ackFlushScheduled = false;
  private readonly flushAcksBound = (): void => this.flushAcks();
  /** Flows holding back a short tail until the end of this event-loop turn (see trySend). */
  private readonly heldTails: TcpFlow[] = [];
  private tailFlushScheduled = false;
  private readonly flushTailsBound = (): void => this.flushTails();
  /** Read buffers for outbound flows' host sockets (see host-read.ts). */
  private readonly hostReads = new HostReadPool();
  private readonly fireBound = (f: TcpFlow): void => this.onTimer(f);
  private readonly tickBound = (): void => this.runTimers();
  /** MSS we announce: the link MTU minus IPv4 and TCP headers. */
  private readonly ourMss: number;
  /** The same for IPv6 flows: MTU minus IPv6 (40) and TCP headers. */
  private readonly ourMss6: number;
  /** config.ipv6 parsed; null: IPv6 is off and onPacket6 drops everything. */
  private readonly v6: Ipv6Addrs | null;

  constructor(private readonly ctx: TranslatorContext, opts: TcpTranslatorOptions = {}) {
    const lim = { ...TCP_DEFAULTS };
    for (const k of Object.keys(TCP_DEFAULTS) as (keyof Limits)[]) {
      const v = opts[k];
      if (typeof v === 'number' && Number.isFinite(v) && v >= 0) lim[k] = v;
    }
    lim.windowShift = Math.min(14, Math.max(0, Math.floor(lim.windowShift)));
    lim.maxConnecting = Math.max(1, Math.min(lim.maxConnecting, lim.maxFlows));
    this.lim = lim;
    this.counters = ctx.counters;
    this.clock = opts.now ?? (() => performance.now());
    this.connectFn = opts.connect ?? ((o) => net.connect(o));
    this.manualTimers = opts.manualTimers ?? false;
    this.multiQueue = opts.multiQueue ?? false;
    this.coarseNow = this.clock();
    this.table = new FlowTable<TcpFlow>(Math.max(1, lim.maxFlows));
    this.wheel = new TimerWheel<TcpFlow>(Math.max(1, lim.tickMs), this.coarseNow);
    this.emit = new TcpEmitter(ctx.sink, ctx.counters);
    this.ourMss = Math.max(MIN_MSS, Math.min(0xffff, ctx.config.mtu - 40));
    this.ourMss6 = Math.max(MIN_MSS, Math.min(0xffff, ctx.config.mtu - 60));
    this.v6 = parseIpv6Config(ctx.config);
  }

  get flowCount(): number { return this.table.size; }

  /** Flows whose handshake is still in flight (host connect, our SYN-ACK, or our inbound SYN). */
  get connectingCount(): number { return this.connecting.size; }

  // ---------------------------------------------------------------------------------------------
  // Guest -> translator

  /**
   * An IPv6 segment from the guest. Same translator, same flow table (IPv6 entries keyed by
   * fold6(), see flow-table.ts), same per-flow code: only parsing, the opening and the frames
   * differ (tcp-emit.ts send6). The IPv4 path below is not touched by any of it.
   */
  onPacket6(frame: Frame, eth: EthernetView, ip: Ipv6View): void {
    try {
      this.handle6(frame, eth, ip);
    } catch (err) {
      count(this.counters, C.INTERNAL_ERROR);
      if (this.ctx.log.enabled('warn')) this.ctx.log.log('warn', `tcp: internal error: ${(err as Error)?.stack ?? err}`);
    }
  }

  private handle6(frame: Frame, eth: EthernetView, ip: Ipv6View): void {
    if (this.closed) return;
    if (this.v6 === null) { count(this.counters, C.IPV6_OFF_DROPPED); return; }
    // The router hands over only packets whose Next Header is TCP (no extension headers).
    if (ip.nextHeader !== 6) { count(this.counters, C.BAD_HEADER); return; }
    const tcp = this.tcp;
    if (!tcp.bind(ip.b, ip.payloadOffset, ip.payloadLength)) { count(this.counters, C.BAD_HEADER); return; }
    const srcPort = tcp.srcPort;
    const dstPort = tcp.dstPort;
    const b = ip.b;
    const so = ip.srcAddrOffset;
    const dO = ip.dstAddrOffset;
    if (srcPort === 0 || dstPort === 0 || !validAddresses6(b, so, dO)) {
      count(this.counters, C.BAD_ADDRESS);
      return;
    }
    const flags = tcp.flags;
    if ((flags & (TcpFlags.SYN | TcpFlags.FIN)) === (TcpFlags.SYN | TcpFlags.FIN) ||
      (flags & (TcpFlags.SYN | TcpFlags.RST)) === (TcpFlags.SYN | TcpFlags.RST)) {
      count(this.counters, C.BAD_FLAGS);
      return;
    }
    const flow = this.table.lookup6(b, so, srcPort, b, dO, dstPort);
    if (flow === null) {
      if ((flags & SYN_ONLY_MASK) === TcpFlags.SYN) { this.onSyn6(eth, ip, tcp); return; }
      if (flags & TcpFlags.RST) { count(this.counters, C.NO_FLOW_RST_IGNORED); return; }
      count(this.counters, C.NO_FLOW_RST);
      this.emit.rstForSegment6(eth.b.subarray(eth.srcOffset, eth.srcOffset + 6), b, so, b, dO, srcPort, dstPort,
        tcp.seqNumber, tcp.ackNumber, (flags & TcpFlags.ACK) !== 0, tcp.segmentLength);
      return;
    }
    this.onSegment(flow, frame, eth, ip, tcp);
  }

  onPacket(frame: Frame, eth: EthernetView, ip: Ipv4View): void {
    try {
      this.handle(frame, eth, ip);
    } catch (err) {
      count(this.counters, C.INTERNAL_ERROR);
      if (this.ctx.log.enabled('warn')) this.ctx.log.log('warn', `tcp: internal error: ${(err as Error)?.stack ?? err}`);
    }
  }

  private handle(frame: Frame, eth: EthernetView, ip: Ipv4View): void {
    if (this.closed) return;
    if (ip.isFragment) { count(this.counters, C.FRAGMENT_DROPPED); return; }
    const tcp = this.tcp;
    if (!tcp.bind(ip.b, ip.payloadOffset, ip.payloadLength)) { count(this.counters, C.BAD_HEADER); return; }
    const srcPort = tcp.srcPort;
    const dstPort = tcp.dstPort;
    const srcIp = ip.srcAddr;
    const dstIp = ip.dstAddr;
    if (srcPort === 0 || dstPort === 0 || !this.validAddresses(srcIp, dstIp)) {
      count(this.counters, C.BAD_ADDRESS);
      return;
    }
    const flags = tcp.flags;
    if ((flags & (TcpFlags.SYN | TcpFlags.FIN)) === (TcpFlags.SYN | TcpFlags.FIN) ||
      (flags & (TcpFlags.SYN | TcpFlags.RST)) === (TcpFlags.SYN | TcpFlags.RST)) {
      count(this.counters, C.BAD_FLAGS);
      return;
    }
    const flow = this.table.lookup(srcIp, srcPort, dstIp, dstPort);
    if (flow === null) {
      if ((flags & SYN_ONLY_MASK) === TcpFlags.SYN) { this.onSyn(eth, ip, tcp); return; }
      if (flags & TcpFlags.RST) { count(this.counters, C.NO_FLOW_RST_IGNORED); return; }
      count(this.counters, C.NO_FLOW_RST);
      this.emit.rstForSegment(eth.b.subarray(eth.srcOffset, eth.srcOffset + 6), srcIp, dstIp, srcPort, dstPort,
        tcp.seqNumber, tcp.ackNumber, (flags & TcpFlags.ACK) !== 0, tcp.segmentLength);
      return;
    }
    this.onSegment(flow, frame, eth, ip, tcp);
  }

  private validAddresses(src: number, dst: number): boolean {
    const d8 = dst >>> 24;
    const s8 = src >>> 24;
    // this-network, loopback, multicast/reserved/broadcast: never translated.
    if (d8 === 0 || d8 === 127 || d8 >= 224 || s8 === 0 || s8 === 127 || s8 >= 224) return false;
    const cfg = this.ctx.config;
    const p = cfg.prefixLength;
    if (p > 0 && p < 31) {
      const host = p === 0 ? 0xffffffff : (0xffffffff >>> p);
      if (((dst & host) >>> 0) === host && (((dst ^ cfg.network) >>> 0) & ~host) === 0) return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Opening

  private onSyn(eth: EthernetView, ip: Ipv4View, tcp: TcpView): void {
    const cfg = this.ctx.config;
    const srcIp = ip.srcAddr;
    const dstIp = ip.dstAddr;
    const dstPort = tcp.dstPort;
    const target = mapDestination(cfg, dstIp, dstPort);
    if (target.kind === 'unreachable') {
      count(this.counters, C.UNREACHABLE_ICMP);
      this.emit.icmpUnreachable(eth.b.subarray(eth.srcOffset, eth.srcOffset + 6), cfg.gateway, srcIp,
        IcmpUnreachCode.NET, ip.b.subarray(ip.o, ip.o + ip.hl + 8), ip.hl + 8);
      return;
    }
    if (!this.makeRoom()) return;

    const flow = new TcpFlow(srcIp, tcp.srcPort, dstIp, dstPort);
    flow.guestMac.set(eth.b.subarray(eth.srcOffset, eth.srcOffset + 6));
    flow.quote = ip.b.slice(ip.o, ip.o + ip.hl + 8);
    initTemplate(flow.tmpl, flow.guestMac, this.ctx.sink.gatewayMac, dstIp, srcIp, dstPort, tcp.srcPort);
    this.connectOutbound(flow, tcp, target, cfg.outboundAddr);
  }

  /**
   * An IPv6 SYN for a new tuple: the gateway means ::1, the DNS address the upstream resolver,
   * anything else itself; an unmappable one gets ICMPv6 no route (as IPv4 gets net unreachable).
   */
  private onSyn6(eth: EthernetView, ip: Ipv6View, tcp: TcpView): void {
    const v6 = this.v6!;
    const b = ip.b;
    const so = ip.srcAddrOffset;
    const dO = ip.dstAddrOffset;
    const dstPort = tcp.dstPort;
    const target = mapDestination6(this.ctx.config, v6, b, dO, dstPort);
    const guestMac = eth.b.subarray(eth.srcOffset, eth.srcOffset + 6);
    if (target.kind === 'unreachable') {
      count(this.counters, C.UNREACHABLE_ICMP);
      sendIcmp6Unreachable(this.ctx.sink, icmp6Code(IcmpUnreachCode.NET), v6.gateway, 0, b, ip.o, ip.totalLength,
        this.ctx.config.mtu, guestMac);
      return;
    }
    if (!this.makeRoom()) return;

    const g6 = b.slice(so, so + 16);
    const r6 = b.slice(dO, dO + 16);
    const flow = new TcpFlow(fold6(g6, 0), tcp.srcPort, fold6(r6, 0), dstPort, g6, r6);
    flow.guestMac.set(guestMac);
    // ICMPv6 errors quote as much as fits: keep the SYN's headers (IPv6 + TCP with options).
    flow.quote = b.slice(ip.o, ip.o + Math.min(ip.totalLength, IPV6_HDR_LEN + tcp.headerLength));
    initTemplate6(flow.tmpl, flow.guestMac, this.ctx.sink.gatewayMac, r6, 0, g6, 0, dstPort, tcp.srcPort);
    count(this.counters, C.FLOWS6_OPENED);
    // An IPv4 upstream (the DNS address) is dialled from an IPv4 address, anything else from ours.
    this.connectOutbound(flow, tcp, target, net.isIPv6(target.address) ? v6.outboundAddr : this.ctx.config.outboundAddr);
  }

  /** A guest SYN's new flow (template written): insert it and connect its host socket. */
  private connectOutbound(flow: TcpFlow, tcp: TcpView, target: HostTarget & { kind: 'host' },
    localAddress: string | undefined): void {
    const now = this.clock();
    this.coarseNow = now;
    flow.createdAt = now;
    flow.lastSeen = now;
    this.adoptGuestSyn(flow, tcp);
    flow.ourIsn = this.nextIsn();
    flow.rto = this.lim.initialRtoMs;
    flow.onWritten = (err) => this.onWriteDone(flow, err);

    this.table.insert(flow);
    this.connecting.push(flow);
    count(this.counters, C.FLOWS_OPENED);
    this.ensureInterval();

    let sock: net.Socket;
    try {
      const copts: net.TcpNetConnectOpts = { host: target.address, port: target.port, noDelay: true, allowHalfOpen: true };
      if (localAddress) copts.localAddress = localAddress;
      const reader = this.hostReads.reader((b, more) => this.onHostChunk(flow, b, more));
      flow.reader = reader;
      copts.onread = { buffer: reader.buffer, callback: reader.callback };
      sock = this.connectFn(copts);
    } catch (err) {
      flow.errorCode = (err as NodeJS.ErrnoException)?.code ?? 'EINVAL';
      count(this.counters, C.CONNECT_ERROR);
      this.failConnect(flow);
      return;
    }
    this.attachSocket(flow, sock);
    sock.on('connect', () => this.onHostConnected(flow));
    flow.rtxAt = now + this.lim.connectTimeoutMs;
    this.armTimer(flow);
    this.trace(flow, 'SYN: connecting');
  }

  /** The host socket's events drive the flow; it stays paused until the guest side is ready. */
  private attachSocket(flow: TcpFlow, sock: net.Socket): void {
    flow.socket = sock;
    sock.pause();
    sock.on('data', (b: Buffer) => this.onHostData(flow, b));
    sock.on('end', () => this.onHostEnd(flow));
    sock.on('drain', () => this.maybeWindowUpdate(flow));
    sock.on('error', (err: NodeJS.ErrnoException) => { if (!flow.errorCode) flow.errorCode = err.code ?? 'EIO'; });
    sock.on('close', (hadError: boolean) => this.onHostClose(flow, hadError));
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound flows (port forwarding): a host socket already accepted, opened toward the guest

  /**
   * Open a flow from an accepted host socket to guestIp:guestPort, appearing in the guest to come
   * from remoteIp:remotePort (the port forwarder picks them: the gateway for loopback clients, the
   * client's own address otherwise). The socket may be paused (pauseOnConnect); it is switched to
   * half-open semantics here, so a client's FIN does not end our side before the guest answers.
   * Returns false (and leaves the socket to the caller) when the tuple is in use or the table is
   * full of established flows. Afterwards the translator owns the socket: a guest RST or no answer
   * resets it, exactly like a refused or unreachable server would.
   */
  openInbound(socket: net.Socket, guestIp: number, guestPort: number, remoteIp: number, remotePort: number): boolean {
    if (this.closed || socket.destroyed) return false;
    if (guestPort <= 0 || guestPort > 0xffff || remotePort <= 0 || remotePort > 0xffff) return false;
    guestIp >>>= 0;
    remoteIp >>>= 0;
    if (this.table.lookup(guestIp, guestPort, remoteIp, remotePort) !== null) {
      count(this.counters, C.INBOUND_TUPLE_BUSY);
      return false;
    }
    if (!this.makeRoom()) return false;
    const flow = new TcpFlow(guestIp, guestPort, remoteIp, remotePort);
    const now = this.clock();
    this.coarseNow = now;
    flow.inbound = true;
    flow.macKnown = false;
    flow.state = TcpFlowState.SYN_SENT;
    flow.createdAt = now;
    flow.lastSeen = now;
    flow.ourIsn = this.nextIsn();
    flow.rto = this.lim.initialRtoMs;
    flow.rcvShift = this.lim.windowShift;
    flow.mss = Math.max(MIN_MSS, Math.min(DEFAULT_MSS, this.ourMss));
    flow.sndMaxOff = 0;
    flow.onWritten = (err) => this.onWriteDone(flow, err);
    this.table.insert(flow);
    this.connecting.push(flow);
    count(this.counters, C.INBOUND_OPENED);
    count(this.counters, C.FLOWS_OPENED);
    this.ensureInterval();
    // A server made without allowHalfOpen would end our write side when the client half-closes.
    (socket as { allowHalfOpen: boolean }).allowHalfOpen = true;
    this.attachSocket(flow, socket);
    socket.setNoDelay(true);
    this.sendInboundSyn(flow, now);
    this.armTimer(flow);
    this.trace(flow, 'inbound: SYN to guest');
    return true;
  }

  /** Send (or, while the guest's MAC is unknown, prepare) our SYN; sets the retry deadline. */
  private sendInboundSyn(flow: TcpFlow, now: number): void {
    if (!flow.macKnown) {
      const mac = this.ctx.sink.macFor(flow.guestIp);
      if (mac === null) {
        // An ARP request went out: try again shortly, without counting a retransmission.
        flow.macKnown = false;
        flow.rtxAt = now + Math.min(100, flow.rto);
        return;
      }
      flow.macKnown = true;
      flow.guestMac.set(mac.subarray(0, 6));
      initTemplate(flow.tmpl, flow.guestMac, this.ctx.sink.gatewayMac, flow.remoteIp, flow.guestIp,
        flow.remotePort, flow.guestPort);
    }
    if (this.multiQueue) {
      // The kernel steers a flow's frames to the queue that last wrote it, but it learns that only
      // after the written frame has been through the guest's stack, and the guest answers a SYN
      // inside that very call: its SYN-ACK would be spread by hash to any queue, whose worker knows
      // no such flow. A bare RST first (a listener, or a closed port, discards it silently,
      // RFC 9293 3.10.7) teaches the kernel this tuple's queue before the SYN goes.
      this.emit.rstForSegment(flow.guestMac, flow.guestIp, flow.remoteIp, flow.guestPort, flow.remotePort,
        0, (flow.ourIsn - 1) >>> 0, true, 0);
      count(this.counters, C.INBOUND_STEER_PRIMED);
    }
    const optLen = emitSynAckOptions(flow.tmpl, flow.head.length, this.ourMss, flow.rcvShift);
    flow.synHead = flow.tmpl.subarray(0, flow.head.length + optLen);
    const wnd = Math.min(this.lim.rcvBuf, 0xffff);
    this.emit.begin();
    this.emit.send(flow.synHead, flow.ipId, flow.ourIsn, 0, TcpFlags.SYN, wnd, optLen, 0, flow.mss);
    flow.ipId = (flow.ipId + 1) & 0xffff;
    flow.rtxAt = now + flow.rto;
  }

  /** A segment for an inbound flow still waiting for the guest's SYN-ACK. */
  private onSynSentSegment(flow: TcpFlow, tcp: TcpView): void {
    const flags = tcp.flags;
    const ackOk = (flags & TcpFlags.ACK) !== 0 && tcp.ackNumber === ((flow.ourIsn + 1) >>> 0);
    if (flags & TcpFlags.RST) {
      // RFC 9293 3.10.7.3: acceptable only if it acknowledges our SYN.
      if (!ackOk) { count(this.counters, C.RST_OUT_OF_WINDOW); return; }
      count(this.counters, C.INBOUND_REFUSED);
      this.forget(flow, 'guest refused', true);
      return;
    }
    if ((flags & TcpFlags.ACK) && !ackOk) {
      count(this.counters, C.BAD_HANDSHAKE_ACK);
      this.rstFlowSegment(flow, tcp);
      return;
    }
    if (!(flags & TcpFlags.SYN) || !ackOk) { count(this.counters, C.UNEXPECTED_SEGMENT); return; }
    // SYN-ACK: the guest accepted.
    this.adoptGuestSyn(flow, tcp);
    flow.rcvAdvEdge = (flow.rcvNxt + Math.min(this.lim.rcvBuf, 0xffff)) >>> 0;
    this.connecting.remove(flow);
    this.setState(flow, TcpFlowState.ESTABLISHED);
    count(this.counters, C.CONNECTED);
    flow.retransmits = 0;
    flow.rto = this.lim.initialRtoMs;
    flow.rtxAt = 0;
    this.sendFlags(flow, flow.seqOf(0), TcpFlags.ACK);
    this.armTimer(flow);
    this.updateReading(flow);
  }

  /**
   * The guest's SYN (outbound flows) or SYN-ACK (inbound flows) fixes its ISN, its MSS and window
   * scaling both ways: scaling is on only when both sides offered it (RFC 7323 §1.3), else neither
   * shifts. Its window field is never scaled.
   */
  private adoptGuestSyn(flow: TcpFlow, tcp: TcpView): void {
    tcp.parseSynOptions(this.synOpts);
    const o = this.synOpts;
    flow.guestIsn = tcp.seqNumber;
    flow.rcvNxt = (flow.guestIsn + 1) >>> 0;
    flow.mss = Math.max(MIN_MSS, Math.min(o.mss > 0 ? o.mss : DEFAULT_MSS, this.mssFor(flow)));
    flow.wsOk = o.windowScale >= 0;
    flow.guestShift = flow.wsOk ? o.windowScale : 0;
    flow.rcvShift = flow.wsOk ? this.lim.windowShift : 0;
    flow.sndWnd = tcp.windowLen;
  }

  /** Apply the table bounds before a new flow; false = drop this SYN. */
  private makeRoom(): boolean {
    if (this.connecting.size >= this.lim.maxConnecting) {
      const oldest = this.connecting.head;
      if (oldest) {
        count(this.counters, C.SYN_EVICTED);
        this.forget(oldest, 'evicted (too many connecting)', false);
      }
    }
    if (this.table.size >= this.lim.maxFlows) {
      // Finished flows go first, then the oldest connect still in flight; established flows never.
      const old = this.lingering.head ?? this.connecting.head;
      if (old) {
        count(this.counters, old.state === TcpFlowState.LINGER ? C.LINGER_EVICTED : C.SYN_EVICTED);
        this.forget(old, 'evicted (table full)', false);
      } else {
        count(this.counters, C.SYN_FLOOD_DROPPED);
        return false;
      }
    }
    return true;
  }

  private nextIsn(): number {
    if (this.isnLeft === 0) { randomFillSync(this.isn); this.isnLeft = this.isn.length; }
    return this.isn[--this.isnLeft]!;
  }

  private onHostConnected(flow: TcpFlow): void {
    if (flow.removed || flow.state !== TcpFlowState.CONNECTING) return;
    // Still embryonic (on the connecting list) until the guest ACKs our SYN-ACK: a flood of SYNs
    // that never complete the handshake must stay within maxConnecting, not fill the table.
    this.setState(flow, TcpFlowState.SYNACK_SENT);
    count(this.counters, C.CONNECTED);
    flow.retransmits = 0;
    this.sendSynAck(flow);
    flow.rtxAt = this.clock() + flow.rto;
    this.armTimer(flow);
  }

  private sendSynAck(flow: TcpFlow): void {
    const ws = flow.wsOk ? flow.rcvShift : -1;
    const hl = flow.head.length; // SYN-ACK options follow the TCP header (IPv4 or IPv6 template)
    const optLen = emitSynAckOptions(flow.tmpl, hl, this.mssFor(flow), ws);
    if (flow.synHead.length !== hl + optLen) flow.synHead = flow.tmpl.subarray(0, hl + optLen);
    const wnd = Math.min(this.lim.rcvBuf, 0xffff);
    flow.rcvAdvEdge = (flow.rcvNxt + wnd) >>> 0;
    flow.lastAdvWnd = wnd;
    this.emit.begin();
    this.emit.send(flow.synHead, flow.ipId++, flow.ourIsn, flow.rcvNxt, TcpFlags.SYN | TcpFlags.ACK, wnd, optLen, 0, flow.mss);
  }

  private failConnect(flow: TcpFlow): void {
    const code = flow.errorCode;
    switch (code) {
      case 'ECONNREFUSED':
        count(this.counters, C.CONNECT_REFUSED);
        this.sendRst(flow, 0, flow.rcvNxt, TcpFlags.RST | TcpFlags.ACK);
        break;
      case 'ENETUNREACH':
        count(this.counters, C.CONNECT_UNREACHABLE);
        this.sendIcmp(flow, IcmpUnreachCode.NET);
        break;
      case 'EHOSTUNREACH': case 'EHOSTDOWN': case 'ETIMEDOUT':
        count(this.counters, C.CONNECT_UNREACHABLE);
        this.sendIcmp(flow, IcmpUnreachCode.HOST);
        break;
      case 'EACCES': case 'EPERM':
        count(this.counters, C.CONNECT_PROHIBITED);
        this.sendIcmp(flow, IcmpUnreachCode.ADMIN_PROHIBITED);
        break;
      default:
        count(this.counters, C.CONNECT_ERROR);
        this.sendRst(flow, 0, flow.rcvNxt, TcpFlags.RST | TcpFlags.ACK);
    }
    this.forget(flow, `connect failed: ${code}`, false);
  }

  /** The MSS we announce on this flow's family's link. */
  private mssFor(flow: TcpFlow): number {
    return flow.guestIp6 === null ? this.ourMss : this.ourMss6;
  }

  /** RST for a segment that does not fit a known flow's handshake (RFC 9293 3.10.7.1). */
  private rstFlowSegment(flow: TcpFlow, tcp: TcpView): void {
    if (flow.guestIp6 !== null) {
      this.emit.rstForSegment6(flow.guestMac, flow.guestIp6, 0, flow.remoteIp6!, 0, flow.guestPort, flow.remotePort,
        tcp.seqNumber, tcp.ackNumber, true, tcp.segmentLength);
    } else {
      this.emit.rstForSegment(flow.guestMac, flow.guestIp, flow.remoteIp, flow.guestPort, flow.remotePort,
        tcp.seqNumber, tcp.ackNumber, true, tcp.segmentLength);
    }
  }

  /** ICMP unreachable `code` (IcmpUnreachCode) about the flow's SYN; ICMPv6 for IPv6 flows. */
  private sendIcmp(flow: TcpFlow, code: number): void {
    if (flow.guestIp6 !== null) {
      sendIcmp6Unreachable(this.ctx.sink, icmp6Code(code), this.v6!.gateway, 0, flow.quote, 0, flow.quote.length,
        this.ctx.config.mtu, flow.guestMac);
      return;
    }
    this.emit.icmpUnreachable(flow.guestMac, this.ctx.config.gateway, flow.guestIp, code, flow.quote, flow.quote.length);
  }

  // ---------------------------------------------------------------------------------------------
  // Segments for a known flow

  private onSegment(flow: TcpFlow, frame: Frame, eth: EthernetView, ip: Ipv4View | Ipv6View, tcp: TcpView): void {
    const flags = tcp.flags;
    flow.lastSeen = this.coarseNow;
    if (flow.state === TcpFlowState.SYN_SENT) { this.onSynSentSegment(flow, tcp); return; }
    if (flags & TcpFlags.RST) { this.onGuestRst(flow, tcp); return; }
    if (flags & TcpFlags.SYN) { this.onSynForFlow(flow, eth, ip, tcp); return; }
    switch (flow.state) {
      case TcpFlowState.CONNECTING:
        count(this.counters, C.UNEXPECTED_SEGMENT);
        return;
      case TcpFlowState.SYNACK_SENT:
        if (!(flags & TcpFlags.ACK)) { count(this.counters, C.NO_ACK); return; }
        if (tcp.ackNumber !== ((flow.ourIsn + 1) >>> 0)) {
          count(this.counters, C.BAD_HANDSHAKE_ACK);
          this.rstFlowSegment(flow, tcp);
          return;
        }
        this.established(flow, tcp);
        break;
      case TcpFlowState.LINGER:
        // Only a retransmitted FIN (or stray data) can come now: re-ACK it.
        if (tcp.segmentLength > 0) this.sendAck(flow);
        return;
      default:
        break;
    }
    if (!(flags & TcpFlags.ACK)) { count(this.counters, C.NO_ACK); return; }
    if (!this.processAck(flow, tcp)) return;
    if (flow.removed) return;
    this.processData(flow, frame, tcp);
  }

  private established(flow: TcpFlow, tcp: TcpView): void {
    this.connecting.remove(flow);
    this.setState(flow, TcpFlowState.ESTABLISHED);
    flow.sndWnd = tcp.windowLen << flow.guestShift;
    flow.retransmits = 0;
    flow.rto = this.lim.initialRtoMs;
    flow.rtxAt = 0;
    this.armTimer(flow);
    this.updateReading(flow);
  }

  private onGuestRst(flow: TcpFlow, tcp: TcpView): void {
    const seq = tcp.seqNumber;
    let ok: boolean;
    switch (flow.state) {
      case TcpFlowState.CONNECTING:
        ok = seq === flow.rcvNxt || seq === flow.guestIsn;
        break;
      case TcpFlowState.LINGER:
        ok = true;
        break;
      default:
        ok = seq === flow.rcvNxt;
        if (!ok) {
          // RFC 5961 3.2: a RST inside the window but not exact gets a challenge ACK.
          const d = seqDiff(seq, flow.rcvNxt);
          if (d > 0 && d < Math.max(flow.lastAdvWnd, 1)) {
            count(this.counters, C.CHALLENGE_ACK);
            this.sendAck(flow);
          } else {
            count(this.counters, C.RST_OUT_OF_WINDOW);
          }
          return;
        }
    }
    if (!ok) { count(this.counters, C.RST_OUT_OF_WINDOW); return; }
    count(this.counters, C.RST_FROM_GUEST);
    this.forget(flow, 'guest RST', true);
  }

  private onSynForFlow(flow: TcpFlow, eth: EthernetView, ip: Ipv4View | Ipv6View, tcp: TcpView): void {
    const flags = tcp.flags;
    if (flags & TcpFlags.ACK) { count(this.counters, C.BAD_FLAGS); return; }
    switch (flow.state) {
      case TcpFlowState.CONNECTING:
        count(this.counters, C.SYN_RETRANSMIT_IGNORED);
        return;
      case TcpFlowState.SYNACK_SENT:
        if (tcp.seqNumber === flow.guestIsn) {
          count(this.counters, C.SYN_RETRANSMIT);
          this.sendSynAck(flow);
          return;
        }
        break; // a new connection on the same tuple: replace
      case TcpFlowState.ESTABLISHED:
        if ((flow.events & (TcpEvent.GUEST_FIN | TcpEvent.HOST_EOF)) === 0) {
          // RFC 5961 4.2: SYN on a synchronized connection -> challenge ACK.
          count(this.counters, C.CHALLENGE_ACK);
          this.sendAck(flow);
          return;
        }
        break; // half-closed or closing (e.g. guest reuses the port after our FIN): replace
      default:
        break; // LINGER: replace
    }
    count(this.counters, C.FLOW_REPLACED);
    this.forget(flow, 'replaced by a new SYN', true);
    if (ip instanceof Ipv6View) this.onSyn6(eth, ip, tcp); else this.onSyn(eth, ip, tcp);
  }

  /** ACK processing; false = drop the rest of the segment. */
  private processAck(flow: TcpFlow, tcp: TcpView): boolean {
    const ack = tcp.ackNumber;
    const ackOff = flow.sndUnaOff + seqDiff(ack, flow.seqOf(flow.sndUnaOff));
    if (ackOff > flow.sndMaxOff) {
      // ACK for something never sent (RFC 9293 3.10.7.4): ACK back, drop.
      count(this.counters, C.ACK_UNSENT);
      this.sendAck(flow);
      return false;
    }
    if (ackOff < flow.sndUnaOff) return true; // old ACK: ignore, data may still be good
    const wnd = tcp.windowLen << flow.guestShift;
    if (ackOff > flow.sndUnaOff) {
      const now = this.clock();
      if (flow.rttOff >= 0 && ackOff >= flow.rttOff) {
        this.rttSample(flow, now - flow.rttStart);
        flow.rttOff = -1;
      }
      const q = flow.sndq;
      const before = q.endOff - Math.min(flow.sndUnaOff, q.endOff);
      flow.sndUnaOff = ackOff;
      if (flow.sndNxtOff < ackOff) flow.sndNxtOff = ackOff;
      const dataAcked = Math.min(ackOff, q.endOff);
      q.trim(dataAcked);
      flow.reader?.acked(dataAcked);
      const after = q.endOff - dataAcked;
      this.globalQueued -= before - after;
      if ((flow.events & TcpEvent.HOST_EOF) && ackOff === q.endOff + 1) flow.events |= TcpEvent.FIN_ACKED;
      flow.retransmits = 0;
      flow.dupAcks = 0;
      flow.recoverOff = -1;
      flow.persist = false;
      flow.rto = this.computeRto(flow);
      flow.sndWnd = wnd;
      if (flow.sndNxtOff > flow.sndUnaOff) flow.rtxAt = now + flow.rto;
      else flow.rtxAt = 0;
      this.armTimer(flow);
      if (this.starved.size > 0 && this.globalQueued < this.lim.globalSndBuf) this.feedStarved();
    } else {
      // ackOff === sndUna
      if (tcp.payloadLength === 0 && !(tcp.flags & TcpFlags.FIN) && wnd === flow.sndWnd &&
        flow.sndMaxOff > flow.sndUnaOff) {
        count(this.counters, C.DUP_ACK);
        if (++flow.dupAcks === 3) this.fastRetransmit(flow);
      }
      flow.sndWnd = wnd;
    }
    if (flow.state === TcpFlowState.ESTABLISHED) {
      this.trySend(flow);
      this.updateReading(flow);
      this.checkDone(flow);
    }
    return !flow.removed;
  }

  private processData(flow: TcpFlow, frame: Frame, tcp: TcpView): void {
    let len = tcp.payloadLength;
    let fin = (tcp.flags & TcpFlags.FIN) !== 0;
    if (len === 0 && !fin) return;
    if (flow.events & TcpEvent.GUEST_FIN) {
      // Anything after the guest's FIN is a retransmission: re-ACK.
      this.scheduleAck(flow);
      return;
    }
    let start = tcp.payloadOffset;
    const d = seqDiff(flow.rcvNxt, tcp.seqNumber);
    if (d < 0) {
      count(this.counters, C.OOO_DROPPED);
      this.sendAck(flow); // duplicate ACK, at once: lets the guest fast-retransmit
      return;
    }
    if (d > 0) {
      if (d > len || (d === len && !fin)) {
        count(this.counters, C.DUP_DATA);
        this.sendAck(flow);
        return;
      }
      start += d;
      len -= d;
    }
    const room = seqDiff(flow.rcvAdvEdge, flow.rcvNxt);
    if (len > room || this.writesFull(flow)) {
      count(this.counters, C.OUT_OF_WINDOW);
      len = this.writesFull(flow) ? 0 : Math.max(room, 0);
      fin = false;
    }
    if (len > 0) {
      if (!this.writeToHost(flow, frame, start, len)) return;
      flow.rcvNxt = (flow.rcvNxt + len) >>> 0;
      count(this.counters, C.RX_BYTES, len);
    }
    if (fin) {
      flow.rcvNxt = (flow.rcvNxt + 1) >>> 0;
      flow.events |= TcpEvent.GUEST_FIN;
      this.trace(flow, 'guest FIN: half-close');
      flow.socket?.end();
      this.armTimer(flow);
    }
    this.scheduleAck(flow);
    if (fin) this.checkDone(flow);
  }

  private writesFull(flow: TcpFlow): boolean {
    return flow.writes.size >= this.lim.maxPendingWrites;
  }

  /** Hand payload to the host socket: zero-copy (slot retained) or copied. */
  private writeToHost(flow: TcpFlow, frame: Frame, start: number, len: number): boolean {
    const sock = flow.socket;
    if (sock === null || sock.destroyed || !sock.writable) {
      count(this.counters, C.WRITE_CLOSED);
      return false;
    }
    let chunk: Uint8Array;
    // slot < 0: a frame assembled in a reused buffer (the router's gather frame), not a receive
    // slot that can be retained: always copy.
    if (frame.slot >= 0 && len >= this.lim.copyBelow && flow.retainedSlots < this.lim.maxRetainedSlots) {
      frame.owner.retain(frame.slot);
      flow.retainedSlots++;
      flow.writes.push(frame.slot, frame.owner, len);
      chunk = frame.buf.subarray(start, start + len);
    } else {
      const b = Buffer.allocUnsafe(len);
      b.set(frame.buf.subarray(start, start + len));
      flow.writes.push(-1, null, len);
      chunk = b;
      count(this.counters, C.RX_COPIED);
    }
    flow.pendingWrite += len;
    this.globalPending += len;
    // Cork for the rest of this receive batch: the ACK flush uncorks, so a batch of small
    // segments reaches the host socket as one writev instead of one syscall each.
    if (!flow.corked) { flow.corked = true; sock.cork(); }
    sock.write(chunk, flow.onWritten);
    return true;
  }

  private onWriteDone(flow: TcpFlow, _err?: Error | null): void {
    const w = flow.writes.pop();
    if (w === null) return;
    if (w.retained) flow.retainedSlots--;
    flow.pendingWrite -= w.len;
    this.globalPending -= w.len;
    if (!flow.removed) this.maybeWindowUpdate(flow);
  }

  /** Send a window update when the window has opened well beyond what the guest last saw. */
  private maybeWindowUpdate(flow: TcpFlow): void {
    if (flow.removed || flow.state !== TcpFlowState.ESTABLISHED || (flow.events & TcpEvent.GUEST_FIN)) return;
    const w = this.rcvWindowBytes(flow);
    // What the guest may still send under the window it last saw: only when that runs short, and
    // the window would at least double, is an update worth a frame (else every write completion
    // would cost one).
    const left = Math.max(0, seqDiff(flow.rcvAdvEdge, flow.rcvNxt));
    if (left < (this.lim.rcvBuf >>> 1) && w - left >= Math.max(left, Math.min(this.lim.rcvBuf >>> 2, 65536))) {
      count(this.counters, C.WINDOW_UPDATE);
      this.scheduleAck(flow);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Host -> guest

  private onHostData(flow: TcpFlow, b: Buffer): void {
    this.onHostChunk(flow, b, b.length >= HOST_READ_FULL);
  }

  /** Bytes read from the host socket; `more`: the read filled its buffer (more is probably ready). */
  private onHostChunk(flow: TcpFlow, b: Buffer, more: boolean): void {
    if (flow.removed) return;
    flow.sndq.push(b);
    this.globalQueued += b.length;
    flow.lastSeen = this.coarseNow;
    count(this.counters, C.HOST_RX_BYTES, b.length);
    flow.hostMore = more;
    this.trySend(flow);
    this.updateReading(flow);
  }

  private onHostEnd(flow: TcpFlow): void {
    if (flow.removed) return;
    flow.events |= TcpEvent.HOST_EOF;
    this.trace(flow, 'host EOF');
    this.trySend(flow);
    this.armTimer(flow);
  }

  private onHostClose(flow: TcpFlow, hadError: boolean): void {
    if (flow.removed) return;
    flow.events |= TcpEvent.SOCKET_CLOSED;
    if (flow.state === TcpFlowState.CONNECTING) {
      if (!flow.errorCode) flow.errorCode = 'ECONNRESET';
      this.failConnect(flow);
      return;
    }
    if (flow.state === TcpFlowState.SYN_SENT) {
      // The host client gave up before the guest answered.
      this.forget(flow, 'host client left during the handshake', false);
      return;
    }
    if (hadError || !(flow.events & TcpEvent.HOST_EOF)) {
      count(this.counters, C.HOST_RESET);
      this.trace(flow, `host socket failed: ${flow.errorCode || 'closed'}`);
      flow.events |= TcpEvent.HOST_RESET | TcpEvent.HOST_EOF;
      if (flow.state !== TcpFlowState.ESTABLISHED) {
        this.abort(flow, 'host reset');
        return;
      }
    }
    this.checkDone(flow);
  }

  /** Send what the guest's window allows; then our FIN if the host has finished. */
  private trySend(flow: TcpFlow): void {
    if (flow.state !== TcpFlowState.ESTABLISHED || flow.removed) return;
    const q = flow.sndq;
    const maxSeg = this.maxSegment(flow);
    for (;;) {
      const end = q.endOff;
      const inFlight = flow.sndNxtOff - flow.sndUnaOff;
      const unsent = end - flow.sndNxtOff;
      if (unsent > 0) {
        let usable = flow.sndWnd - inFlight;
        if (flow.recoverOff >= 0) usable = Math.min(usable, flow.recoverOff - flow.sndNxtOff);
        if (usable <= 0) {
          if (inFlight === 0 && flow.sndWnd === 0 && !flow.persist) {
            // Zero window with data waiting: the persist timer probes it.
            flow.persist = true;
            flow.rtxAt = this.clock() + flow.rto;
            this.armTimer(flow);
          }
          return;
        }
        let len = Math.min(unsent, usable, maxSeg);
        // Sender-side silly window avoidance: no runt while data is in flight.
        if (len < unsent && len < flow.mss && inFlight > 0) return;
        // A 64 KiB read is 64240 bytes of superframe (MSS 1460) and a 1296-byte tail: sent at
        // once, every read would cost a second frame. While the socket is still delivering, the
        // tail waits for the next read, at most until the end of this event-loop turn.
        if (len === unsent && len < maxSeg && flow.hostMore) { this.holdTail(flow); return; }
        const off = flow.sndNxtOff;
        const withFin = (flow.events & TcpEvent.HOST_EOF) !== 0 && !(flow.events & TcpEvent.HOST_RESET) &&
          off + len === end;
        this.sendData(flow, off, len, withFin);
        if (flow.rttOff < 0 && off >= flow.sndMaxOff) { flow.rttOff = off + len; flow.rttStart = this.clock(); }
        flow.sndNxtOff = off + len + (withFin ? 1 : 0);
        if (flow.sndNxtOff > flow.sndMaxOff) flow.sndMaxOff = flow.sndNxtOff;
        if (flow.persist) { flow.persist = false; flow.rto = this.computeRto(flow); flow.rtxAt = 0; }
        if (flow.rtxAt === 0) { flow.rtxAt = this.clock() + flow.rto; this.armTimer(flow); }
        if (withFin) return;
        continue;
      }
      if ((flow.events & TcpEvent.HOST_EOF) && !(flow.events & TcpEvent.HOST_RESET) &&
        flow.sndNxtOff === end && !(flow.events & TcpEvent.FIN_ACKED)) {
        if (flow.recoverOff >= 0 && flow.recoverOff < end) return;
        this.sendFlags(flow, flow.seqOf(end), TcpFlags.FIN | TcpFlags.ACK);
        flow.sndNxtOff = end + 1;
        if (flow.sndNxtOff > flow.sndMaxOff) flow.sndMaxOff = flow.sndNxtOff;
        if (flow.persist) { flow.persist = false; flow.rto = this.computeRto(flow); flow.rtxAt = 0; }
        if (flow.rtxAt === 0) { flow.rtxAt = this.clock() + flow.rto; this.armTimer(flow); }
      }
      return;
    }
  }

  private holdTail(flow: TcpFlow): void {
    if (!flow.tailHeld) { flow.tailHeld = true; this.heldTails.push(flow); }
    if (!this.tailFlushScheduled) { this.tailFlushScheduled = true; setImmediate(this.flushTailsBound); }
  }

  /** After the turn's socket reads (check phase): send every held tail. */
  private flushTails(): void {
    this.tailFlushScheduled = false;
    const q = this.heldTails;
    for (let i = 0; i < q.length; i++) {
      const f = q[i]!;
      f.tailHeld = false;
      f.hostMore = false;
      if (f.removed) continue;
      try { this.trySend(f); } catch { count(this.counters, C.INTERNAL_ERROR); }
    }
    q.length = 0;
  }

  private maxSegment(flow: TcpFlow): number {
    if (!this.emit.offloads) return flow.mss;
    const cap = flow.guestIp6 === null ? MAX_SUPERFRAME_PAYLOAD : MAX_SUPERFRAME_PAYLOAD6;
    return Math.max(flow.mss, Math.floor(cap / flow.mss) * flow.mss);
  }

  /** Emit [off, off+len) of the send queue: one superframe with offloads, MSS segments without. */
  private sendData(flow: TcpFlow, off: number, len: number, withFin: boolean): void {
    const win = this.rcvWindowField(flow);
    const ack = flow.rcvNxt;
    const emit = this.emit;
    if (emit.offloads) {
      const parts = emit.begin();
      flow.sndq.collect(parts, off, len);
      emit.send(flow.head, flow.ipId, flow.seqOf(off), ack,
        TcpFlags.ACK | TcpFlags.PSH | (withFin ? TcpFlags.FIN : 0), win, 0, len, flow.mss);
      flow.ipId = (flow.ipId + Math.ceil(len / flow.mss)) & 0xffff;
    } else {
      let o = off;
      const end = off + len;
      while (o < end) {
        const n = Math.min(flow.mss, end - o);
        const last = o + n === end;
        const parts = emit.begin();
        flow.sndq.collect(parts, o, n);
        emit.send(flow.head, flow.ipId, flow.seqOf(o), ack,
          TcpFlags.ACK | (last ? TcpFlags.PSH | (withFin ? TcpFlags.FIN : 0) : 0), win, 0, n, flow.mss);
        flow.ipId = (flow.ipId + 1) & 0xffff;
        o += n;
      }
    }
    flow.ackPending = false;
    flow.lastTx = this.coarseNow;
    count(this.counters, C.TX_BYTES, len);
  }

  private fastRetransmit(flow: TcpFlow): void {
    const q = flow.sndq;
    const len = Math.min(this.maxSegment(flow), q.endOff - flow.sndUnaOff, Math.max(flow.sndWnd, flow.mss));
    count(this.counters, C.FAST_RETRANSMITS);
    flow.rttOff = -1;
    if (len > 0) {
      const finNow = (flow.events & TcpEvent.HOST_EOF) !== 0 && flow.sndMaxOff === q.endOff + 1 &&
        flow.sndUnaOff + len === q.endOff;
      this.sendData(flow, flow.sndUnaOff, len, finNow);
    } else if (flow.sndMaxOff === q.endOff + 1) {
      this.sendFlags(flow, flow.seqOf(q.endOff), TcpFlags.FIN | TcpFlags.ACK);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Windows, ACKs, resets

  /** Window we can offer now, in bytes (unscaled, before the right-edge rule). */
  private rcvWindowBytes(flow: TcpFlow): number {
    let w = this.lim.rcvBuf - flow.pendingWrite;
    const g = this.lim.globalRcvBuf - this.globalPending;
    if (g < w) w = g;
    if (this.writesFull(flow)) w = 0;
    const max = 0xffff * (1 << flow.rcvShift);
    if (w > max) w = max;
    return w > 0 ? w : 0;
  }

  /** The window field for an outgoing segment; records the right edge advertised. */
  private rcvWindowField(flow: TcpFlow): number {
    const shift = flow.rcvShift;
    let field = Math.floor(this.rcvWindowBytes(flow) / (1 << shift));
    // Never move the right edge left (RFC 9293 3.8.6.2.2): keep offering what we promised.
    const promised = seqDiff(flow.rcvAdvEdge, flow.rcvNxt);
    if (promised > 0) {
      const pf = Math.min(0xffff, Math.ceil(promised / (1 << shift)));
      if (pf > field) field = pf;
    }
    const bytes = field * (1 << shift);
    const edge = (flow.rcvNxt + bytes) >>> 0;
    if (seqGt(edge, flow.rcvAdvEdge)) flow.rcvAdvEdge = edge;
    flow.lastAdvWnd = bytes;
    return field;
  }

  private sendAck(flow: TcpFlow): void {
    if (flow.removed || flow.state === TcpFlowState.CONNECTING || flow.state === TcpFlowState.SYN_SENT) return;
    flow.ackPending = false;
    if (flow.state === TcpFlowState.SYNACK_SENT) { this.sendSynAck(flow); return; }
    this.sendFlags(flow, flow.seqOf(flow.sndNxtOff), TcpFlags.ACK);
  }

  private sendFlags(flow: TcpFlow, seq: number, flags: number): void {
    const win = flags & TcpFlags.RST ? 0 : this.rcvWindowField(flow);
    this.emit.begin();
    this.emit.send(flow.head, flow.ipId, seq, flow.rcvNxt, flags, win, 0, 0, flow.mss);
    flow.ipId = (flow.ipId + 1) & 0xffff;
    flow.lastTx = this.coarseNow;
    if (flags & TcpFlags.ACK) flow.ackPending = false;
  }

  private sendRst(flow: TcpFlow, seq: number, ack: number, flags: number): void {
    this.emit.begin();
    this.emit.send(flow.head, flow.ipId, seq, ack, flags, 0, 0, 0, flow.mss);
    flow.ipId = (flow.ipId + 1) & 0xffff;
    count(this.counters, C.RST_TO_GUEST);
  }

  private scheduleAck(flow: TcpFlow): void {
    if (!flow.ackPending) {
      flow.ackPending = true;
      this.ackQueue.push(flow);
    }
    if (!this.ackFlushScheduled) {
      this.ackFlushScheduled = true;
      queueMicrotask(this.flushAcksBound);
    }
  }

  private flushAcks(): void {
    this.ackFlushScheduled = false;
    const q = this.ackQueue;
    for (let i = 0; i < q.length; i++) {
      const f = q[i]!;
      if (f.corked) {
        f.corked = false;
        const sock = f.socket;
        if (sock && !sock.destroyed) sock.uncork();
      }
      if (f.ackPending && !f.removed) {
        try { this.sendAck(f); } catch { count(this.counters, C.INTERNAL_ERROR); }
      }
      f.ackPending = false;
    }
    q.length = 0;
  }

  /** Reset both sides and forget the flow. */
  private abort(flow: TcpFlow, why: string): void {
    if (flow.state !== TcpFlowState.CONNECTING && flow.state !== TcpFlowState.LINGER &&
      flow.state !== TcpFlowState.SYN_SENT) {
      this.sendRst(flow, flow.seqOf(flow.sndNxtOff), flow.rcvNxt, TcpFlags.RST | TcpFlags.ACK);
    }
    this.forget(flow, why, true);
  }

  /** Finished both ways (or host reset and everything delivered)? */
  private checkDone(flow: TcpFlow): void {
    if (flow.removed || flow.state !== TcpFlowState.ESTABLISHED) return;
    const ev = flow.events;
    if (ev & TcpEvent.HOST_RESET) {
      // Deliver what the host sent before failing, then reset the guest.
      if (flow.sndUnaOff >= flow.sndq.endOff) this.abort(flow, 'host reset');
      return;
    }
    if ((ev & TcpEvent.GUEST_FIN) && (ev & TcpEvent.FIN_ACKED)) {
      this.setState(flow, TcpFlowState.LINGER);
      count(this.counters, C.FLOWS_FINISHED);
      this.lingering.push(flow);
      flow.rtxAt = this.clock() + this.lim.lingerMs;
      this.armTimer(flow);
    }
  }

  /** Remove a flow: host socket closed (reset when `reset`), slots and budgets returned. */
  private forget(flow: TcpFlow, why: string, reset: boolean): void {
    if (flow.removed) return;
    flow.removed = true;
    this.trace(flow, `forget: ${why}`);
    this.table.remove(flow);
    this.connecting.remove(flow);
    this.lingering.remove(flow);
    this.wheel.cancel(flow);
    this.starved.delete(flow);
    flow.reader?.release();
    const q = flow.sndq;
    this.globalQueued -= q.endOff - Math.min(flow.sndUnaOff, q.endOff);
    q.clear();
    flow.sndUnaOff = flow.sndNxtOff = flow.sndMaxOff = q.endOff;
    const sock = flow.socket;
    if (sock && !sock.destroyed) {
      // A finished flow whose socket is still flushing keeps flushing: Node closes it itself.
      const finished = (flow.events & TcpEvent.GUEST_FIN) !== 0 && (flow.events & TcpEvent.FIN_ACKED) !== 0 &&
        !reset && flow.pendingWrite > 0;
      if (finished) {
        // Outside the table now: bound its life anyway, in case the host never reads.
        sock.setTimeout(this.lim.closingTimeoutMs, () => sock.destroy());
      } else {
        // resetAndDestroy() sends RST, but libuv refuses it (EINVAL) once a shutdown is under way
        // (we called end() for the guest's FIN), and Node then drops the handle without closing
        // it: a leaked fd. Plain destroy() then.
        if (reset && !sock.connecting && !sock.writableEnded) sock.resetAndDestroy();
        else sock.destroy();
      }
    }
    count(this.counters, C.FLOWS_CLOSED);
  }

  private setState(flow: TcpFlow, s: TcpFlowState): void {
    if (this.ctx.log.enabled('trace')) {
      this.trace(flow, `${TCP_STATE_NAMES[flow.state]} -> ${TCP_STATE_NAMES[s]}`);
    }
    flow.state = s;
  }

  private trace(flow: TcpFlow, msg: string): void {
    if (!this.ctx.log.enabled('trace')) return;
    this.ctx.log.log('trace', `tcp ${endpoint(flow, true)} -> ${endpoint(flow, false)}: ${msg}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Host socket reading (backpressure)

  private updateReading(flow: TcpFlow): void {
    const sock = flow.socket;
    if (sock === null || flow.removed || flow.state !== TcpFlowState.ESTABLISHED ||
      (flow.events & TcpEvent.HOST_EOF)) return;
    const queued = flow.sndq.endOff - flow.sndUnaOff;
    const limit = Math.min(this.lim.sndBuf, Math.max(flow.sndWnd, 65536));
    const globalOk = this.globalQueued < this.lim.globalSndBuf;
    const want = queued < limit && globalOk;
    if (want) {
      if (!flow.reading) { flow.reading = true; sock.resume(); }
    } else {
      if (flow.reading) { flow.reading = false; sock.pause(); count(this.counters, C.HOST_PAUSED); }
      if (!globalOk && queued < limit) this.starved.add(flow);
    }
  }

  private feedStarved(): void {
    for (const f of this.starved) {
      if (this.globalQueued >= this.lim.globalSndBuf) return;
      this.starved.delete(f);
      this.updateReading(f);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  private rttSample(flow: TcpFlow, r: number): void {
    if (r < 0) r = 0;
    if (flow.srtt === 0 && flow.rttvar === 0) {
      flow.srtt = r;
      flow.rttvar = r / 2;
    } else {
      flow.rttvar = 0.75 * flow.rttvar + 0.25 * Math.abs(flow.srtt - r);
      flow.srtt = 0.875 * flow.srtt + 0.125 * r;
    }
  }

  private computeRto(flow: TcpFlow): number {
    if (flow.srtt === 0 && flow.rttvar === 0) return Math.max(this.lim.minRtoMs, Math.min(flow.rto, this.lim.initialRtoMs));
    const rto = flow.srtt + Math.max(this.lim.tickMs, 4 * flow.rttvar);
    return Math.min(this.lim.maxRtoMs, Math.max(this.lim.minRtoMs, rto));
  }

  /** Put the flow's one timer at its earliest deadline: protocol timer or idle check. */
  private armTimer(flow: TcpFlow): void {
    if (flow.removed) return;
    let at = flow.lastSeen + this.idleLimit(flow);
    if (flow.rtxAt > 0 && flow.rtxAt < at) at = flow.rtxAt;
    if (this.multiQueue && flow.inbound && flow.state === TcpFlowState.ESTABLISHED) {
      const pinAt = flow.lastTx + this.lim.queuePinMs;
      if (pinAt < at) at = pinAt;
    }
    this.wheel.schedule(flow, at);
  }

  private idleLimit(flow: TcpFlow): number {
    if (flow.events & (TcpEvent.GUEST_FIN | TcpEvent.HOST_EOF)) return this.lim.closingTimeoutMs;
    return this.lim.idleTimeoutMs;
  }

  /** Drive timers (called by the interval, or by tests with manualTimers). */
  runTimers(now: number = this.clock()): void {
    if (this.closed) return;
    this.coarseNow = now;
    try {
      this.wheel.advance(now, this.fireBound);
    } catch (err) {
      count(this.counters, C.INTERNAL_ERROR);
      if (this.ctx.log.enabled('warn')) this.ctx.log.log('warn', `tcp: timer error: ${(err as Error)?.stack ?? err}`);
    }
    if (this.table.size === 0 && this.interval) { clearInterval(this.interval); this.interval = null; }
  }

  private onTimer(flow: TcpFlow): void {
    if (flow.removed) return;
    const now = this.coarseNow;
    if (flow.rtxAt > 0 && now >= flow.rtxAt) {
      flow.rtxAt = 0;
      this.onProtocolTimer(flow, now);
      if (flow.removed) return;
    }
    if (this.multiQueue && flow.inbound && flow.state === TcpFlowState.ESTABLISHED &&
      now - flow.lastTx >= this.lim.queuePinMs) {
      count(this.counters, C.QUEUE_PIN_ACK);
      this.sendFlags(flow, flow.seqOf(flow.sndNxtOff), TcpFlags.ACK);
    }
    if (now - flow.lastSeen >= this.idleLimit(flow) && flow.state !== TcpFlowState.CONNECTING) {
      count(this.counters, C.IDLE_TIMEOUT);
      if (flow.state === TcpFlowState.LINGER) this.forget(flow, 'linger idle', false);
      else this.abort(flow, 'idle timeout');
      return;
    }
    this.armTimer(flow);
  }

  private onProtocolTimer(flow: TcpFlow, now: number): void {
    switch (flow.state) {
      case TcpFlowState.CONNECTING:
        count(this.counters, C.CONNECT_TIMEOUT);
        flow.errorCode = 'ETIMEDOUT';
        this.failConnect(flow);
        return;
      case TcpFlowState.SYNACK_SENT:
        if (++flow.retransmits > this.lim.synAckRetries) {
          count(this.counters, C.GIVE_UP);
          this.abort(flow, 'SYN-ACK not acknowledged');
          return;
        }
        flow.rto = Math.min(flow.rto * 2, this.lim.maxRtoMs);
        count(this.counters, C.RETRANSMITS);
        this.sendSynAck(flow);
        flow.rtxAt = now + flow.rto;
        return;
      case TcpFlowState.SYN_SENT:
        if (!flow.macKnown) {
          if (now - flow.createdAt >= this.lim.connectTimeoutMs) {
            count(this.counters, C.INBOUND_NO_MAC);
            this.forget(flow, 'guest MAC never resolved', true);
            return;
          }
          this.sendInboundSyn(flow, now);
          return;
        }
        if (++flow.retransmits > this.lim.synAckRetries) {
          count(this.counters, C.GIVE_UP);
          this.forget(flow, 'guest never answered our SYN', true);
          return;
        }
        flow.rto = Math.min(flow.rto * 2, this.lim.maxRtoMs);
        count(this.counters, C.RETRANSMITS);
        this.sendInboundSyn(flow, now);
        return;
      case TcpFlowState.LINGER: {
        const sock = flow.socket;
        if (sock && !sock.destroyed && flow.pendingWrite > 0 && now - flow.lastSeen < this.lim.closingTimeoutMs) {
          flow.rtxAt = now + this.lim.lingerMs; // still flushing to the host
          return;
        }
        this.forget(flow, 'linger over', false);
        return;
      }
      default:
        break;
    }
    const q = flow.sndq;
    const outstanding = flow.sndMaxOff > flow.sndUnaOff;
    if (outstanding && !flow.persist) {
      if (++flow.retransmits > this.lim.maxRetransmits) {
        count(this.counters, C.GIVE_UP);
        this.abort(flow, 'too many retransmissions');
        return;
      }
      count(this.counters, C.RTO_TIMEOUTS);
      count(this.counters, C.RETRANSMITS);
      flow.rto = Math.min(flow.rto * 2, this.lim.maxRtoMs);
      flow.rttOff = -1;
      flow.dupAcks = 0;
      flow.sndNxtOff = flow.sndUnaOff;
      flow.recoverOff = flow.sndUnaOff + this.maxSegment(flow);
      flow.rtxAt = now + flow.rto;
      const wnd = flow.sndWnd;
      // Retransmit even into a window that has shrunk to less than one segment.
      if (wnd < flow.mss) flow.sndWnd = Math.min(flow.mss, q.endOff - flow.sndUnaOff);
      this.trySend(flow);
      flow.sndWnd = wnd;
      return;
    }
    if (flow.sndWnd === 0 && q.endOff > flow.sndNxtOff) {
      // Zero-window probe: an ACK one byte below sndUna makes the guest answer with its window.
      count(this.counters, C.ZERO_WINDOW_PROBE);
      flow.persist = true;
      this.sendFlags(flow, (flow.seqOf(flow.sndUnaOff) - 1) >>> 0, TcpFlags.ACK);
      flow.rto = Math.min(flow.rto * 2, this.lim.maxRtoMs);
      flow.rtxAt = now + flow.rto;
      return;
    }
    flow.persist = false;
  }

  private ensureInterval(): void {
    if (this.interval || this.manualTimers || this.closed) return;
    this.interval = setInterval(this.tickBound, this.lim.tickMs);
    this.interval.unref();
  }

  // ---------------------------------------------------------------------------------------------
  // Control path

  /** Snapshot of every flow (allocates: control path only). */
  flows(): TcpFlowInfo[] {
    return this.table.toArray().map((f) => ({
      guest: endpoint(f, true),
      remote: endpoint(f, false),
      state: TCP_STATE_NAMES[f.state],
      events: f.events,
      reading: f.reading,
      queued: f.sndq.endOff - Math.min(f.sndUnaOff, f.sndq.endOff),
      inFlight: f.sndNxtOff - f.sndUnaOff,
      sndWnd: f.sndWnd,
      pendingWrite: f.pendingWrite,
      retainedSlots: f.retainedSlots,
      rto: f.rto,
      retransmits: f.retransmits,
      mss: f.mss,
    }));
  }

  close(): void {
    if (this.closed) return;
    for (let f = this.table.first(); f !== null;) {
      const next = this.table.next(f);
      try {
        if (f.state === TcpFlowState.ESTABLISHED || f.state === TcpFlowState.SYNACK_SENT) {
          this.sendRst(f, f.seqOf(f.sndNxtOff), f.rcvNxt, TcpFlags.RST | TcpFlags.ACK);
        }
      } catch { /* the sink may be gone already */ }
      this.forget(f, 'translator closed', true);
      f = next;
    }
    this.closed = true;
    if (this.interval) { clearInterval(this.interval); this.interval = null; }
    this.ackQueue.length = 0;
    this.heldTails.length = 0;
    this.starved.clear();
  }
}

/** "10.0.2.100:40000" or "[fd00::100]:40000" (logs and the control path; allocates). */
function endpoint(f: TcpFlow, guest: boolean): string {
  const port = guest ? f.guestPort : f.remotePort;
  if (f.guestIp6 === null) return `${ipv4ToString(guest ? f.guestIp : f.remoteIp)}:${port}`;
  return `[${ipv6ToString(guest ? f.guestIp6 : f.remoteIp6!, 0)}]:${port}`;
}

/**
 * Addresses an IPv6 segment may carry to be translated: neither side multicast or in ::/80
 * (unspecified, loopback, IPv4-mapped: ::ffff:127.0.0.1 would reach the host's loopback past the
 * gateway rule); the destination not link-local (a host socket could not say which link).
 */
function validAddresses6(b: Uint8Array, so: number, dO: number): boolean {
  return !isMulticast6(b, so) && !ipv6IsLowZero80(b, so) && !isMulticast6(b, dO) &&
    !ipv6IsLowZero80(b, dO) && !isLinkLocal6(b, dO);
}
