// One TAP queue's data plane, composed on the worker's own event loop:
//
//   TAP queue --frames--> TapPort --> Switch --> Router (gateway port: ARP, ICMP echo, DHCP;
//                                                  |     with config.ipv6 also NDP, RAs, ICMPv6 echo)
//                                                  | every other IPv4 packet (onForward), IPv6
//                                                  | TCP/UDP and echo requests (onForward6)
//                                                  v
//                                   TCP / UDP / ICMP translators <--> host sockets
//   replies built by the router or a translator go back through the switch to the TAP port.
//
//   host listeners of port forwards (queue 0's worker only, created on the first add) --> TCP
//   translator openInbound / UDP translator emitToGuest (portfwd/guest-fwd.ts)
//
// Nothing the guest sends may throw out of here: each frame is switched inside a try, and an
// exception is counted (and logged at debug) rather than ending the batch or the worker.
import type { Device } from '../link/device';
import { Switch, TapPort } from '../switch/switch';
import { Router } from '../gateway/router';
import { TcpTranslator } from '../translate/tcp';
import { UdpTranslator } from '../translate/udp';
import { IcmpTranslator } from '../translate/icmp';
import type { Logger, ProtocolTranslator, TranslatorContext } from '../translate/types';
import { IpProtocol } from '../wire/ipv4';
import { count, type Counters, type Frame } from '../wire/frame';
import type { EthernetView } from '../wire/ethernet';
import type { Ipv4View } from '../wire/ipv4';
import { Ipv6NextHeader, type Ipv6View } from '../wire/ipv6';
import type { DataPlaneConfig } from './protocol';
import { createSocketHostFwdBackend, type HostFwdTable } from '../portfwd/hostfwd-table';
import { GuestForwarding } from '../portfwd/guest-fwd';

export interface DataPlaneOptions {
  /** How many TAP queues (workers) serve this TAP. */
  queueCount?: number;
  /** Honour test-only requests (TAPSWITCH_TEST_HOOKS=1): see isCrashRequest(). */
  testHooks?: boolean;
}

const CRASH_MAGIC = Buffer.from('tapswitch-test-crash');
/** How often the router's timers (unsolicited RAs) are looked at. */
const ROUTER_TICK_MS = 1000;

export class DataPlane {
  readonly counters: Counters = {};
  private readonly sw: Switch;
  private readonly port: TapPort;
  private readonly router: Router;
  private readonly tcp: TcpTranslator;
  private readonly udp: UdpTranslator;
  private readonly icmp: ProtocolTranslator;
  private readonly config: DataPlaneConfig;
  private fwd: { table: HostFwdTable; hooks: GuestForwarding } | null = null;
  private closed = false;
  private tickTimer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly device: Device, config: DataPlaneConfig, private readonly log: Logger, offloads: boolean,
    private readonly opts: DataPlaneOptions = {}) {
    this.config = config;
    this.sw = new Switch({ counters: this.counters });
    this.router = new Router(config, {
      switch: this.sw,
      counters: this.counters,
      offloads,
      id: 0,
      onForward: (frame, eth, ip) => this.forward(frame, eth, ip),
      onForward6: (frame, eth, ip) => this.forward6(frame, eth, ip),
    });
    const ctx: TranslatorContext = { config, sink: this.router, counters: this.counters, log };
    // With several queues, idle inbound flows must keep writing now and then or the kernel's
    // flow->queue entry expires and their frames may land on another worker.
    this.tcp = new TcpTranslator(ctx, { multiQueue: (opts.queueCount ?? 1) > 1 });
    this.udp = new UdpTranslator(ctx);
    this.icmp = new IcmpTranslator(ctx);
    // Nothing the guest sends may throw out of the receive loop: a frame that made a layer throw is
    // counted (a bug to find: the fuzz test asserts this stays 0) and dropped.
    this.port = new TapPort(1, device, (e) => {
      count(this.counters, 'packet_loop_exceptions');
      if (log.enabled('debug')) log.log('debug', `dropped a frame after an exception: ${(e as Error).stack ?? String(e)}`);
    });
    this.sw.addPort(this.port);
  }

  start(): void {
    this.port.start(this.sw);
    if (this.config.ipv6) {
      // The first RA goes out now (the guest may already be up), the rest when due.
      this.tickRouter();
      this.tickTimer = setInterval(() => this.tickRouter(), ROUTER_TICK_MS);
      this.tickTimer.unref();
    }
  }

  private tickRouter(): void {
    try {
      this.router.tick();
    } catch (e) {
      count(this.counters, 'router_tick_exceptions');
      if (this.log.enabled('debug')) this.log.log('debug', `router tick: ${(e as Error).stack ?? String(e)}`);
    }
  }

  /** IPv6 from the guest, already checked by the router: no extension headers, unicast destination. */
  private forward6(frame: Frame, eth: EthernetView, ip: Ipv6View): void {
    switch (ip.nextHeader) {
      case Ipv6NextHeader.TCP: this.tcp.onPacket6(frame, eth, ip); return;
      case Ipv6NextHeader.UDP: this.udp.onPacket6(frame, eth, ip); return;
      case Ipv6NextHeader.ICMPV6: this.icmp.onPacket6(frame, eth, ip); return;
      default: count(this.counters, 'ipv6_protocol_unsupported');
    }
  }

  private forward(frame: Frame, eth: EthernetView, ip: Ipv4View): void {
    if (this.opts.testHooks && ip.protocol === IpProtocol.UDP && this.isCrashRequest(frame, ip)) {
      this.log.log('warn', 'test hook: crashing this worker on request');
      setImmediate(() => { throw new Error('tapswitch test hook: worker crash requested by the container'); });
      return;
    }
    switch (ip.protocol) {
      case IpProtocol.TCP: this.tcp.onPacket(frame, eth, ip); return;
      case IpProtocol.UDP: this.udp.onPacket(frame, eth, ip); return;
      case IpProtocol.ICMP: this.icmp.onPacket(frame, eth, ip); return;
      default: count(this.counters, 'ipv4_protocol_unsupported');
    }
  }

  /**
   * TAPSWITCH_TEST_HOOKS=1 only: a UDP datagram to gateway:9 saying `tapswitch-test-crash` kills
   * this worker, so tests can prove crash -> log -> restart -> flows reset with the real worker.
   */
  private isCrashRequest(frame: Frame, ip: Ipv4View): boolean {
    const b = frame.buf;
    const udp = ip.payloadOffset;
    if (ip.dstAddr !== this.config.gateway || ip.payloadLength < 8 + CRASH_MAGIC.length) return false;
    if (((b[udp + 2]! << 8) | b[udp + 3]!) !== 9) return false;
    for (let i = 0; i < CRASH_MAGIC.length; i++) if (b[udp + 8 + i] !== CRASH_MAGIC[i]) return false;
    return true;
  }

  /** The port-forward table (listeners on this worker's loop), created on first use. */
  hostFwd(): HostFwdTable {
    if (this.fwd === null) {
      const hooks = new GuestForwarding({
        config: this.config, tcp: this.tcp, udp: this.udp, sink: this.router, counters: this.counters, log: this.log,
      });
      this.fwd = { table: createSocketHostFwdBackend(hooks), hooks };
    }
    return this.fwd.table;
  }

  snapshot(): Counters {
    const d = this.device.counters;
    return {
      ...this.counters,
      rx_frames: d.rxFrames, rx_bytes: d.rxBytes, tx_frames: d.txFrames, tx_bytes: d.txBytes,
      tx_errors: d.txErrors, rx_stalls: d.rxStalls,
      tcp_flows: this.tcp.flowCount, udp_flows: this.udp.flowCount, icmp_flows: this.icmp.flowCount,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    if (this.fwd !== null) {
      void this.fwd.table.closeAll();
      this.fwd.hooks.close();
    }
    this.device.close();
    this.tcp.close();
    this.udp.close();
    this.icmp.close();
  }
}
