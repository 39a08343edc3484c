// Port forwards into the guest: what a data-plane worker does with the traffic its host listeners
// receive (the listeners themselves are hostfwd-table.ts's createSocketHostFwdBackend).
//
// Theory of operation
// -------------------
// TCP: an accepted host socket becomes an inbound flow of the TCP translator (openInbound: SYN to
// the guest, ARP first when its MAC is unknown, retransmits, a guest RST resets the client). From
// then on the translator owns the socket exactly like one it connected itself.
//
// UDP: a client datagram goes to the guest through UdpTranslator.emitToGuest(), and the flow's
// way back is registered with UdpTranslator.addInbound(): the guest's answers from
// guestAddr:guestPort to the client's guest-visible (address, port) are handed to the forwarder's
// reply(), which sends them from the forwarded host port. The forwarder ages the flow out (60 s
// idle) and we forget it then. When the guest's MAC is not known yet (nothing has talked to it),
// emitToGuest() has sent an ARP request and dropped the datagram: such datagrams wait here (a
// bounded queue, up to RETRY_FOR_MS) and are sent once the answer is in.
//
// Source addresses, slirp4netns's semantics: a client on the host's loopback (127.0.0.0/8, ::1) is
// seen in the guest as the gateway address; any other IPv4 client keeps its own address, so a
// server in the guest logs real peers. Addresses that could not be told apart from the guest's own
// network (inside its subnet, 0/8, multicast) and IPv6 clients (the guest side is IPv4) appear as
// the gateway too.
import type * as net from 'node:net';
import { ipv4InSubnet, parseIpv4 } from '../wire/addr';
import { count, type Counters } from '../wire/frame';
import type { TcpTranslator } from '../translate/tcp';
import type { UdpTranslator } from '../translate/udp';
import type { GuestSink, Logger } from '../translate/types';
import type { DataPlaneConfig } from '../worker/protocol';
import type { HostFwdEntry, SocketHostFwdHooks } from './hostfwd-table';
import type { UdpClientFlow } from './udp-forward';

const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;
/** How long a datagram for a guest whose MAC is unknown may wait for the ARP answer. */
const RETRY_FOR_MS = 1000;
const RETRY_EVERY_MS = 20;
const MAX_WAITING = 256;

/** The guest-visible IPv4 source (u32) of a host client at `address`. */
export function guestSourceFor(cfg: Pick<DataPlaneConfig, 'gateway' | 'network' | 'prefixLength'>, address: string | undefined): number {
  if (address === undefined) return cfg.gateway >>> 0;
  const mapped = MAPPED_V4.exec(address);
  const a = parseIpv4(mapped ? (mapped[1] as string) : address);
  if (a === null) return cfg.gateway >>> 0; // IPv6 (::1 or any other): the guest side is IPv4
  const first = a >>> 24;
  if (first === 127 || first === 0 || first >= 224) return cfg.gateway >>> 0;
  if (ipv4InSubnet(a, cfg.network, cfg.prefixLength)) return cfg.gateway >>> 0;
  return a >>> 0;
}

interface Waiting {
  guestIp: number;
  guestPort: number;
  srcIp: number;
  srcPort: number;
  payload: Buffer;
  until: number;
}

export interface GuestFwdDeps {
  config: DataPlaneConfig;
  tcp: Pick<TcpTranslator, 'openInbound'>;
  udp: Pick<UdpTranslator, 'emitToGuest' | 'addInbound' | 'removeInbound'>;
  sink: Pick<GuestSink, 'macFor'>;
  counters: Counters;
  log: Logger;
  /** Clock (tests). */
  now?: () => number;
}

/** The hooks a worker passes to createSocketHostFwdBackend. */
export class GuestForwarding implements SocketHostFwdHooks {
  private readonly waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(private readonly d: GuestFwdDeps) {
    this.now = d.now ?? Date.now;
  }

  private guestOf(entry: HostFwdEntry): number | null {
    return parseIpv4(entry.guestAddr);
  }

  onTcpConnection = (entry: HostFwdEntry, socket: net.Socket): void => {
    const guest = this.guestOf(entry);
    const src = guestSourceFor(this.d.config, socket.remoteAddress);
    const sport = socket.remotePort ?? 0;
    if (guest === null || !this.d.tcp.openInbound(socket, guest, entry.guestPort, src, sport)) {
      count(this.d.counters, 'portfwd_tcp_refused');
      socket.destroy();
      return;
    }
    count(this.d.counters, 'portfwd_tcp_accepted');
  };

  onUdpDatagram = (entry: HostFwdEntry, flow: UdpClientFlow, payload: Buffer,
    reply: (payload: Uint8Array) => boolean): void => {
    const guest = this.guestOf(entry);
    if (guest === null) return;
    const src = guestSourceFor(this.d.config, flow.clientAddr);
    this.d.udp.addInbound(guest, entry.guestPort, src, flow.clientPort, (p) => {
      if (!reply(p)) count(this.d.counters, 'portfwd_udp_reply_dropped');
    });
    count(this.d.counters, 'portfwd_udp_datagrams');
    this.send({ guestIp: guest, guestPort: entry.guestPort, srcIp: src, srcPort: flow.clientPort, payload, until: this.now() + RETRY_FOR_MS });
  };

  onUdpFlowClosed = (entry: HostFwdEntry, flow: UdpClientFlow): void => {
    const guest = this.guestOf(entry);
    if (guest === null) return;
    this.d.udp.removeInbound(guest, entry.guestPort, guestSourceFor(this.d.config, flow.clientAddr), flow.clientPort);
    count(this.d.counters, 'portfwd_udp_flows_closed');
  };

  private send(w: Waiting): void {
    // Datagrams already waiting for this guest go first, to keep the client's order.
    if (this.waiting.length === 0 && this.d.sink.macFor(w.guestIp) !== null) {
      this.d.udp.emitToGuest(w.guestIp, w.guestPort, w.srcIp, w.srcPort, w.payload);
      return;
    }
    if (this.waiting.length >= MAX_WAITING) {
      count(this.d.counters, 'portfwd_udp_dropped_no_mac');
      return;
    }
    this.waiting.push(w);
    if (this.timer === null) {
      this.timer = setInterval(() => this.retry(), RETRY_EVERY_MS);
      this.timer.unref();
    }
  }

  private retry(): void {
    const now = this.now();
    let kept = 0;
    for (const w of this.waiting) {
      if (this.d.sink.macFor(w.guestIp) !== null) {
        this.d.udp.emitToGuest(w.guestIp, w.guestPort, w.srcIp, w.srcPort, w.payload);
      } else if (now < w.until) {
        this.waiting[kept++] = w;
      } else {
        count(this.d.counters, 'portfwd_udp_dropped_no_mac');
      }
    }
    this.waiting.length = kept;
    if (kept === 0) this.stop();
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  close(): void {
    this.stop();
    this.waiting.length = 0;
  }
}
