// Address management for kernel networks: pure functions over numbers, no I/O.
//
// Subnets come from Docker's default pools, in Docker's order: 172.17.0.0/16 .. 172.31.0.0/16, then
// 192.168.0.0/16 cut into /20s. A candidate is skipped when it overlaps any route of the host (read
// from `ip -json route` by the caller; our own bridges' routes are in there too) or any subnet
// another tapswitch network already holds. The gateway is the subnet's .1; container addresses
// are handed out lowest-free-first and given back when the endpoint goes. Container MACs follow
// Docker up to v27: 02:42 followed by the four IPv4 octets, so an address always maps to one MAC.
import { ipv4ToString, parseIpv4, prefixMask, type Ipv4 } from '../wire/addr';
import { KernelError } from './errors';
import { broadcastOf, cidrToString, cidrsOverlap, type Cidr } from './validate';

export function defaultPools(): Cidr[] {
  const out: Cidr[] = [];
  for (let b = 17; b <= 31; b++) out.push({ network: ((172 << 24) | (b << 16)) >>> 0, prefix: 16 });
  for (let c = 0; c < 256; c += 16) out.push({ network: ((192 << 24) | (168 << 16) | (c << 8)) >>> 0, prefix: 20 });
  return out;
}

/** Destinations of `ip -json route` output as CIDRs ("default" and non-IPv4 entries skipped). */
export function routesFromIpJson(json: string): Cidr[] {
  let rows: unknown;
  try {
    rows = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(rows)) return [];
  const out: Cidr[] = [];
  for (const r of rows) {
    const dst = (r as { dst?: unknown }).dst;
    if (typeof dst !== 'string' || dst === 'default') continue;
    const [addr, len] = dst.split('/');
    const a = parseIpv4(addr ?? '');
    const prefix = len === undefined ? 32 : Number(len);
    if (a === null || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) continue;
    out.push({ network: (a & prefixMask(prefix)) >>> 0, prefix });
  }
  return out;
}

export interface Occupied {
  cidr: Cidr;
  /** What holds it, for the error message ("route 10.0.0.0/8", "network foo"). */
  owner: string;
}

/** The first overlapping holder of `c`, if any. */
export function findOverlap(c: Cidr, occupied: readonly Occupied[]): Occupied | undefined {
  return occupied.find((o) => cidrsOverlap(o.cidr, c));
}

/** The first pool subnet that overlaps nothing in `occupied`. */
export function chooseSubnet(occupied: readonly Occupied[], pools: readonly Cidr[] = defaultPools()): Cidr {
  for (const p of pools) if (!findOverlap(p, occupied)) return p;
  throw new KernelError('ERR_POOL_EXHAUSTED', 'every default address pool overlaps a route or another network',
    'remove unused networks, or pass --subnet CIDR explicitly');
}

export function defaultGateway(c: Cidr): Ipv4 {
  return (c.network + 1) >>> 0;
}

/** The lowest host address of `c` that is not the gateway nor in `used`. */
export function allocateAddress(c: Cidr, gateway: Ipv4, used: ReadonlySet<Ipv4>): Ipv4 {
  const last = broadcastOf(c);
  for (let a = (c.network + 1) >>> 0; a < last; a = (a + 1) >>> 0) {
    if (a !== gateway && !used.has(a)) return a;
  }
  throw new KernelError('ERR_POOL_EXHAUSTED', `no free address left in ${cidrToString(c)}`,
    'stop a container on this network or create a network with a larger subnet');
}

/** Docker's (<= v27) MAC for a container address: 02:42 + the IPv4 octets. */
export function macForAddress(a: Ipv4): string {
  const o = ipv4ToString(a).split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
  return `02:42:${o.join(':')}`;
}
