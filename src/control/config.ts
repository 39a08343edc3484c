// Turns user-facing option values into the DataPlaneConfig the workers get.
//
// Validation mirrors slirp4netns where it has an opinion (CIDR texts and limits, see
// shared/docs/slirp4netns-compat.md) so that scripts written for it read the same errors. The address
// plan is slirp4netns's too: gateway network+2, DNS network+3, DHCP leases from network+15 (16 of
// them), the container network+100.
import { Address4 } from 'ip-address';
import type { DataPlaneConfig, DataPlaneIpv6Config, LogLevel } from '../worker/protocol';
import { TapswitchError } from './errors';

export const DEFAULT_CIDR = '10.0.2.0/24';
export const DEFAULT_MTU = 1500;
export const MIN_MTU = 68;
export const MAX_MTU = 65520;
export const MAX_QUEUES = 16;

export interface Cidr {
  /** Network address, u32 host order. */
  network: number;
  prefixLength: number;
}

export function u32ToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Strict dotted-quad IPv4 to u32; null when it is not one. */
export function ipToU32(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255) return null;
    n = n * 256 + b;
  }
  return n >>> 0;
}

const CIDR_HINT = 'pass --cidr a network address with a prefix of 1-25, e.g. --cidr 10.0.2.0/24';

export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  // ip-address accepts a bare address as /32; slirp4netns wants an explicit prefix, so do we.
  if (slash < 0 || !Address4.isValid(text) || ipToU32(text.slice(0, slash)) === null
      || !/^\d{1,2}$/.test(text.slice(slash + 1))) {
    throw new TapswitchError('ERR_BAD_CIDR', `invalid CIDR: ${text}`, CIDR_HINT);
  }
  const addr = new Address4(text);
  const prefixLength = addr.subnetMask;
  if (prefixLength < 1 || prefixLength > 25) {
    throw new TapswitchError('ERR_BAD_CIDR', 'prefix length needs to be 1-25', CIDR_HINT);
  }
  const given = ipToU32(text.slice(0, slash)) as number;
  const network = Number(addr.startAddress().bigInt()) >>> 0;
  if (given !== network) {
    throw new TapswitchError('ERR_BAD_CIDR',
      'CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24',
      `use --cidr ${u32ToIp(network)}/${prefixLength}`);
  }
  return { network, prefixLength };
}

function parseIntStrict(text: string): number | null {
  return /^\d+$/.test(text) ? Number(text) : null;
}

export function parseMtu(text: string): number {
  const n = parseIntStrict(text);
  if (n === null || n < MIN_MTU || n > MAX_MTU) {
    throw new TapswitchError('ERR_BAD_MTU', `invalid MTU: ${text}`,
      `pass --mtu a number from ${MIN_MTU} to ${MAX_MTU}`);
  }
  return n;
}

export function parseQueues(text: string): number {
  const n = parseIntStrict(text);
  if (n === null || n < 1 || n > MAX_QUEUES) {
    throw new TapswitchError('ERR_BAD_VALUE', `invalid queue count: ${text}`,
      `pass --queues a number from 1 to ${MAX_QUEUES}`);
  }
  return n;
}

/** `--dns-forward ADDR`: an IPv4 address with an optional port ("ip" or "ip:port"). */
export function parseDnsForward(text: string): string {
  const m = /^([^:]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] === undefined ? 53 : Number(m[2]);
  if (!m || ipToU32(m[1] ?? '') === null || port < 1 || port > 65535) {
    throw new TapswitchError('ERR_BAD_VALUE', `invalid DNS forward address: ${text}`,
      'pass --dns-forward an IPv4 address, optionally with a port, e.g. 127.0.0.53 or 192.0.2.1:5353');
  }
  return text;
}

/** A fixed, locally administered MAC for the gateway: 52:55 followed by the gateway's four bytes. */
export function gatewayMacFor(gateway: number): number[] {
  return [0x52, 0x55, gateway >>> 24, (gateway >>> 16) & 255, (gateway >>> 8) & 255, gateway & 255];
}

export interface NetworkPlan extends Cidr {
  gateway: number;
  dns: number;
  guest: number;
  dhcpStart: number;
  dhcpCount: number;
}

export function planNetwork(cidr: Cidr): NetworkPlan {
  const at = (offset: number) => (cidr.network + offset) >>> 0;
  return { ...cidr, gateway: at(2), dns: at(3), guest: at(100), dhcpStart: at(15), dhcpCount: 16 };
}

/**
 * slirp4netns -6's fixed IPv6 plan (slirp4netns-compat.md): the prefix fd00::/64, the gateway
 * fd00::2 (the host's ::1 unless host loopback is disabled), the DNS forwarder fd00::3, and the
 * link-local fe80::2 that router advertisements come from. The guest picks its own address (SLAAC).
 */
export const SLIRP4NETNS_IPV6 = {
  prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2',
} as const;

export interface Ipv6Options {
  /** Bind outbound IPv6 host sockets to this address (--outbound-addr6). */
  outboundAddr?: string;
}

/** The IPv6 part of the data-plane config; dns null when the DNS forwarder is disabled. */
export function buildIpv6Config(o: Ipv6Options & { dnsEnabled: boolean }): DataPlaneIpv6Config {
  const p = SLIRP4NETNS_IPV6;
  const c: DataPlaneIpv6Config = {
    prefix: p.prefix, prefixLength: p.prefixLength, gateway: p.gateway, dns: o.dnsEnabled ? p.dns : null, linkLocal: p.linkLocal,
  };
  if (o.outboundAddr !== undefined) c.outboundAddr = o.outboundAddr;
  return c;
}

export interface DataPlaneOptions {
  cidr: Cidr;
  mtu: number;
  hostLoopback: boolean;
  dnsUpstreams: string[];
  /** false: no DNS forwarder at network+3 (dns = 0 in the config). */
  dnsEnabled?: boolean;
  outboundAddr?: string;
  /** IPv6 as slirp4netns -6 offers it; absent or null: none (IPv6 frames dropped and counted). */
  ipv6?: Ipv6Options | null;
  logLevel: LogLevel;
}

export function buildDataPlaneConfig(o: DataPlaneOptions): DataPlaneConfig {
  const plan = planNetwork(o.cidr);
  const config: DataPlaneConfig = {
    mtu: o.mtu,
    network: plan.network,
    prefixLength: plan.prefixLength,
    gateway: plan.gateway,
    dns: o.dnsEnabled === false ? 0 : plan.dns,
    guest: plan.guest,
    dhcpStart: plan.dhcpStart,
    dhcpCount: plan.dhcpCount,
    gatewayMac: gatewayMacFor(plan.gateway),
    hostLoopback: o.hostLoopback,
    dnsUpstreams: [...o.dnsUpstreams],
    logLevel: o.logLevel,
  };
  if (o.outboundAddr !== undefined) config.outboundAddr = o.outboundAddr;
  if (o.ipv6) config.ipv6 = buildIpv6Config({ ...o.ipv6, dnsEnabled: o.dnsEnabled !== false });
  return config;
}
