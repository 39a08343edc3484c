// The messages between the control plane (main thread) and a data-plane worker. Plain data only:
// everything here crosses a MessagePort by structured clone.
import type { MessagePort } from 'node:worker_threads';
import type { HostFwdAddResult, HostFwdEntry, HostFwdRemoveResult, HostFwdRule } from '../portfwd/hostfwd-table';

export const LogLevels = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LogLevels)[number];

/** What one data-plane worker needs to serve one TAP queue. IPv4 addresses are u32, host order. */
export interface DataPlaneConfig {
  mtu: number;
  /** Network address and prefix of the container's subnet (10.0.2.0/24 by default). */
  network: number;
  prefixLength: number;
  /** network+2: the gateway; its connections map to the host's loopback unless disabled. */
  gateway: number;
  /** network+3: the DNS forwarder; 0 when DNS is disabled. */
  dns: number;
  /** network+100: the address the container is configured with. */
  guest: number;
  /** First DHCP lease (network+15) and how many leases (16). */
  dhcpStart: number;
  dhcpCount: number;
  /** MAC the gateway/DNS addresses answer ARP with. */
  gatewayMac: number[];
  /** Connections to the gateway reach the host's 127.0.0.1 (true) or fail as unreachable (false). */
  hostLoopback: boolean;
  /** Upstream resolvers, "ip" or "ip:port" (IPv4), in order of preference. */
  dnsUpstreams: string[];
  /** Bind outbound host sockets to this IPv4 address (slirp4netns --outbound-addr); undefined: any. */
  outboundAddr?: string;
  /** IPv6 on the guest link (slirp4netns -6); null or absent: IPv6 frames are dropped and counted. */
  ipv6?: DataPlaneIpv6Config | null;
  logLevel: LogLevel;
}

/**
 * IPv6 as slirp4netns -6 offers it: one /64 (fd00::/64), the gateway (fd00::2, standing for the
 * host's ::1 unless hostLoopback is off), the DNS forwarder (fd00::3), router advertisements from
 * the link-local fe80::2 carrying the prefix (SLAAC) and RDNSS. Addresses are RFC 5952 text here
 * (plain data for structured clone); workers parse them once at start.
 */
export interface DataPlaneIpv6Config {
  /** The /64 prefix, e.g. "fd00::". */
  prefix: string;
  prefixLength: 64;
  /** e.g. "fd00::2" */
  gateway: string;
  /** e.g. "fd00::3"; null when DNS is disabled. */
  dns: string | null;
  /** The gateway's link-local address, source of RAs and NAs for it: "fe80::2". */
  linkLocal: string;
  /** Bind outbound IPv6 host sockets to this address (slirp4netns --outbound-addr6); undefined: any. */
  outboundAddr?: string;
}

/** The one long-lived piscina task per queue: it resolves only when told to stop. */
export interface QueueTask {
  queueIndex: number;
  queueCount: number;
  fd: number;
  /** Whether frames on fd carry the 10-byte virtio-net header. */
  vnetHdr: boolean;
  config: DataPlaneConfig;
  /** Control channel (transferred). */
  port: MessagePort;
}

export interface QueueExit {
  queueIndex: number;
  counters: Record<string, number>;
}

/**
 * main -> worker. The hostfwd-* requests go to the worker that owns the port-forward listeners
 * (queue 0): a listener's sockets must live on the thread whose translators serve their flows.
 * `id` on hostfwd-add re-opens a forward under the id it had (after a worker restart).
 */
export type ControlMessage =
  | { type: 'stop' }
  | { type: 'stats'; requestId: number }
  | { type: 'hostfwd-add'; requestId: number; rule: HostFwdRule; id?: number }
  | { type: 'hostfwd-remove'; requestId: number; id: number }
  | { type: 'hostfwd-list'; requestId: number };

/** worker -> main */
export type WorkerMessage =
  | { type: 'ready'; queueIndex: number }
  | { type: 'log'; level: LogLevel; msg: string }
  | { type: 'stats'; requestId: number; counters: Record<string, number> }
  | { type: 'hostfwd-added'; requestId: number; result: HostFwdAddResult }
  | { type: 'hostfwd-removed'; requestId: number; result: HostFwdRemoveResult }
  | { type: 'hostfwd-listed'; requestId: number; entries: HostFwdEntry[] };
