// Where a guest's packet really goes on the host. The gateway address stands for the host's own
// loopback (slirp4netns semantics) unless disabled; the DNS address:53 stands for the upstream
// resolver. Everything else goes to the address it names.
import { ipv4ToString } from '../wire/addr';
import { ipv6Equal, parseIpv6Address } from '../wire/ipv6-addr';
import { ipv6ToString } from '../wire/ipv6';
import type { DataPlaneConfig } from '../worker/protocol';

export type HostTarget =
  | { kind: 'host'; address: string; port: number }
  /** Fail as a real network would: ICMP net unreachable (so connect() reports ENETUNREACH). */
  | { kind: 'unreachable' };

const LOOPBACK = '127.0.0.1';

/** Map a guest destination (IPv4 u32 + port) to a host socket address. */
export function mapDestination(cfg: DataPlaneConfig, dst: number, port: number): HostTarget {
  if (dst === cfg.gateway) {
    return cfg.hostLoopback ? { kind: 'host', address: LOOPBACK, port } : { kind: 'unreachable' };
  }
  if (cfg.dns !== 0 && dst === cfg.dns) {
    if (port !== 53) return { kind: 'unreachable' };
    const up = parseUpstream(cfg.dnsUpstreams[0]);
    return up ? { kind: 'host', address: up.address, port: up.port } : { kind: 'unreachable' };
  }
  return { kind: 'host', address: ipv4ToString(dst), port };
}

export function parseUpstream(s: string | undefined): { address: string; port: number } | null {
  if (!s) return null;
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(s);
  if (!m) return null;
  return { address: m[1]!, port: m[2] ? Number(m[2]) : 53 };
}

// ---------------------------------------------------------------------------------------------
// IPv6 (slirp4netns -6): the gateway (fd00::2) stands for the host's ::1 unless host loopback is
// disabled; the DNS address (fd00::3) port 53 for the same upstream resolvers as IPv4 (IPv4
// addresses today: a caller with an AF_INET6 socket sends to them v4-mapped); everything else for
// itself, through an AF_INET6 host socket.

/** DataPlaneIpv6Config parsed once (by each translator's constructor). */
export interface Ipv6Addrs {
  prefix: Uint8Array;
  prefixLength: number;
  gateway: Uint8Array;
  /** null: DNS disabled. */
  dns: Uint8Array | null;
  /** Bind AF_INET6 host sockets to this (slirp4netns --outbound-addr6); undefined: any. */
  outboundAddr: string | undefined;
}

/** Parse cfg.ipv6; null when IPv6 is off or its addresses do not parse (then IPv6 is dropped). */
export function parseIpv6Config(cfg: DataPlaneConfig): Ipv6Addrs | null {
  const c = cfg.ipv6;
  if (!c) return null;
  const prefix = parseIpv6Address(c.prefix);
  const gateway = parseIpv6Address(c.gateway);
  const dns = c.dns ? parseIpv6Address(c.dns) : null;
  if (prefix === null || gateway === null || (c.dns && dns === null)) return null;
  return { prefix, prefixLength: c.prefixLength, gateway, dns, outboundAddr: c.outboundAddr };
}

const LOOPBACK6 = '::1';

/** Map a guest IPv6 destination (16 bytes at b[o]) and port to a host socket address. */
export function mapDestination6(cfg: DataPlaneConfig, v6: Ipv6Addrs, b: Uint8Array, o: number, port: number): HostTarget {
  if (ipv6Equal(b, o, v6.gateway, 0)) {
    return cfg.hostLoopback ? { kind: 'host', address: LOOPBACK6, port } : { kind: 'unreachable' };
  }
  if (v6.dns !== null && ipv6Equal(b, o, v6.dns, 0)) {
    if (port !== 53) return { kind: 'unreachable' };
    const up = parseUpstream(cfg.dnsUpstreams[0]);
    return up ? { kind: 'host', address: up.address, port: up.port } : { kind: 'unreachable' };
  }
  return { kind: 'host', address: ipv6ToString(b, o), port };
}

/** An address for an AF_INET6 socket: IPv4 text becomes its v4-mapped form. */
export function asInet6(address: string): string {
  return address.includes(':') ? address : `::ffff:${address}`;
}
