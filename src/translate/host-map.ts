// Where a guest's packet really goes on the host. The gateway address stands for the host's own
// loopback (slirp4netns semantics) unless disabled; the DNS address:53 stands for the upstream
// resolver. Everything else goes to the address it names.
import { ipv4ToString } from '../wire/addr';
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
