// The host side of a UDP port forward: one bound socket, and per host client (address, port) a flow.
//
// Theory of operation
// -------------------
// UDP has no connections, so "who may the guest answer" is decided here the way a NAT decides it:
// a client becomes a flow when it sends a datagram to the forwarded port; the guest's replies go back
// through sendToClient(), which only reaches clients with a live flow (the guest cannot use the
// forward to send to arbitrary host addresses). Every datagram either way refreshes the flow;
// a flow that has been silent for idleTimeoutMs is closed (onFlowClosed lets the data path free its
// guest-side state). The table is bounded: at maxFlows the least recently active flow is evicted.
//
// Nothing here touches frames: datagrams are handed to deliverToGuest(flow, payload) and the data
// path builds the guest-side packets (and maps a loopback client to the gateway address). Replies
// leave from the forwarded port, so the client sees them come from the address it sent to.
//
// Addresses: an IPv4 host_addr binds udp4; an IPv6 one binds udp6 (for `::`, dual stack). IPv4
// clients of a dual-stack socket arrive as ::ffff:a.b.c.d; flows report them as plain IPv4 and
// replies are sent to the form the socket saw.
//
// The flow map is a Map in least-recently-active order (touching a flow re-inserts it), so the
// eviction victim is the first key and the idle sweep can stop at the first flow that is not idle.
import * as dgram from 'node:dgram';
import * as net from 'node:net';

export interface UdpClientFlow {
  /** The client's address as the guest should see it (IPv4-mapped IPv6 unwrapped). */
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly family: 4 | 6;
  /** When the flow last carried a datagram either way (ms, monotonic clock). */
  readonly lastActive: number;
}

export type UdpFlowCloseReason = 'idle' | 'evicted' | 'closed';

export interface UdpForwardOptions {
  /** Host address to bind: IPv4 or IPv6 (`0.0.0.0`, `::`, `127.0.0.1`, ...). */
  hostAddr: string;
  /** Host port; 0 lets the OS choose (see `hostPort` after open). */
  hostPort: number;
  /** A client datagram for the guest. Must not throw (a throw is counted and dropped). */
  deliverToGuest: (flow: UdpClientFlow, payload: Buffer) => void;
  /** A flow ended; the guest side can forget it. */
  onFlowClosed?: (flow: UdpClientFlow, reason: UdpFlowCloseReason) => void;
  /** Silence after which a flow is closed (default 60 s). */
  idleTimeoutMs?: number;
  /** Flows kept at once (default 4096). */
  maxFlows?: number;
  /** Clock, for tests (default performance.now). */
  now?: () => number;
}

export interface UdpForwardStats {
  datagramsIn: number;
  datagramsOut: number;
  /** Replies for clients with no live flow, send errors, deliverToGuest throws. */
  dropped: number;
  flowsCreated: number;
  flowsClosed: number;
}

interface Flow extends UdpClientFlow {
  lastActive: number;
  /** The address as the socket reports it (what send() needs). */
  readonly wireAddr: string;
}

const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

function flowKey(addr: string, port: number): string {
  return `${addr}|${port}`;
}

export class UdpForwarder {
  readonly hostAddr: string;
  /** The bound port. */
  readonly hostPort: number;
  readonly stats: UdpForwardStats = { datagramsIn: 0, datagramsOut: 0, dropped: 0, flowsCreated: 0, flowsClosed: 0 };

  private readonly socket: dgram.Socket;
  private readonly opts: UdpForwardOptions;
  private readonly table = new Map<string, Flow>();
  private readonly idleTimeoutMs: number;
  private readonly maxFlows: number;
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(socket: dgram.Socket, hostPort: number, opts: UdpForwardOptions) {
    this.socket = socket;
    this.hostAddr = opts.hostAddr;
    this.hostPort = hostPort;
    this.opts = opts;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.maxFlows = Math.max(1, opts.maxFlows ?? 4096);
    this.now = opts.now ?? (() => performance.now());
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    // Unconnected UDP sockets rarely error; whatever comes is counted, never thrown.
    socket.on('error', () => { this.stats.dropped++; });
    const every = Math.max(10, Math.min(this.idleTimeoutMs / 4, 5_000));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  /** Bind hostAddr:hostPort. Rejects with the bind error (EADDRINUSE, EACCES, EADDRNOTAVAIL). */
  static open(opts: UdpForwardOptions): Promise<UdpForwarder> {
    const family = net.isIPv6(opts.hostAddr) ? 6 : net.isIPv4(opts.hostAddr) ? 4 : 0;
    if (family === 0) return Promise.reject(new Error(`not an IP address: ${opts.hostAddr}`));
    if (!Number.isInteger(opts.hostPort) || opts.hostPort < 0 || opts.hostPort > 65535) {
      return Promise.reject(new Error(`not a port: ${opts.hostPort}`));
    }
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => {
        socket.close();
        reject(e);
      };
      socket.once('error', onError);
      socket.bind({ address: opts.hostAddr, port: opts.hostPort, exclusive: true }, () => {
        socket.off('error', onError);
        resolve(new UdpForwarder(socket, socket.address().port, opts));
      });
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    this.stats.datagramsIn++;
    const key = flowKey(rinfo.address, rinfo.port);
    let flow = this.table.get(key);
    if (flow) {
      this.table.delete(key);
    } else {
      if (this.table.size >= this.maxFlows) this.evictOldest();
      const mapped = MAPPED_V4.exec(rinfo.address);
      flow = {
        clientAddr: mapped ? (mapped[1] as string) : rinfo.address,
        clientPort: rinfo.port,
        family: mapped || rinfo.family === 'IPv4' ? 4 : 6,
        lastActive: 0,
        wireAddr: rinfo.address,
      };
      this.stats.flowsCreated++;
    }
    flow.lastActive = this.now();
    this.table.set(key, flow);
    try {
      this.opts.deliverToGuest(flow, msg);
    } catch {
      this.stats.dropped++;
    }
  }

  private find(clientAddr: string, clientPort: number): Flow | undefined {
    const direct = this.table.get(flowKey(clientAddr, clientPort));
    if (direct || !net.isIPv4(clientAddr)) return direct;
    return this.table.get(flowKey(`::ffff:${clientAddr}`, clientPort));
  }

  /**
   * A datagram from the guest back to a client. Returns false (and drops it) when that client has
   * no live flow or the forwarder is closed.
   */
  sendToClient(clientAddr: string, clientPort: number, payload: Uint8Array): boolean {
    if (this.closed) return false;
    const flow = this.find(clientAddr, clientPort);
    if (!flow) {
      this.stats.dropped++;
      return false;
    }
    const key = flowKey(flow.wireAddr, flow.clientPort);
    this.table.delete(key);
    flow.lastActive = this.now();
    this.table.set(key, flow);
    this.socket.send(payload, flow.clientPort, flow.wireAddr, (err) => {
      if (err) this.stats.dropped++;
      else this.stats.datagramsOut++;
    });
    return true;
  }

  /** Live flows, least recently active first. */
  flows(): UdpClientFlow[] {
    return [...this.table.values()].map((f) => ({
      clientAddr: f.clientAddr, clientPort: f.clientPort, family: f.family, lastActive: f.lastActive,
    }));
  }

  private drop(key: string, flow: Flow, reason: UdpFlowCloseReason): void {
    this.table.delete(key);
    this.stats.flowsClosed++;
    try {
      this.opts.onFlowClosed?.(flow, reason);
    } catch { /* the data path's problem; the flow is gone either way */ }
  }

  private evictOldest(): void {
    const first = this.table.entries().next();
    if (!first.done) this.drop(first.value[0], first.value[1], 'evicted');
  }

  /** Close flows idle for idleTimeoutMs. Runs on a timer; public for tests with a fake clock. */
  sweep(): void {
    const limit = this.now() - this.idleTimeoutMs;
    for (const [key, flow] of this.table) {
      if (flow.lastActive > limit) break; // the rest are more recent
      this.drop(key, flow, 'idle');
    }
  }

  /** Unbind and close every flow. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const [key, flow] of [...this.table]) this.drop(key, flow, 'closed');
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
