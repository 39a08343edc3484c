// Validation of everything a user (or a state file) hands the kernel driver, before any of it can
// reach `ip` or `nft`. nft resolves a malformed address literal through DNS and `ip` abbreviates
// keywords, so nothing is passed through unchecked: addresses are parsed strictly and re-printed
// from numbers, names are matched against a closed alphabet, ports are integers in range.
import { ipv4ToString, parseIpv4, prefixMask, type Ipv4 } from '../wire/addr';
import { KernelError } from './errors';

export interface Cidr {
  /** Network address (host bits zero). */
  network: Ipv4;
  prefix: number;
}

export type Proto = 'tcp' | 'udp';

/** One published port: `[HOSTIP:]HOSTPORT:PORT[/proto]`. hostIp undefined = every host address. */
export interface PortSpec {
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  proto: Proto;
}

function bad(what: string, value: string, hint: string): KernelError {
  return new KernelError('ERR_BAD_VALUE', `invalid ${what} ${JSON.stringify(value)}`, hint);
}

export function parseAddress(s: string, what = 'IPv4 address'): Ipv4 {
  const a = parseIpv4(s);
  if (a === null) throw bad(what, s, 'expected a dotted-quad IPv4 address such as 172.18.0.5');
  return a;
}

/** Strict `a.b.c.d/len`; host bits must be zero (8 <= len <= 30: room for gateway + one container). */
export function parseCidr(s: string): Cidr {
  const m = /^([0-9.]{7,15})\/(\d{1,2})$/.exec(s);
  const a = m ? parseIpv4(m[1]!) : null;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || a === null || !(prefix >= 8 && prefix <= 30) || String(prefix) !== m[2]) {
    throw bad('subnet', s, 'expected an IPv4 CIDR such as 172.20.0.0/16 (prefix length 8 to 30)');
  }
  const network = (a & prefixMask(prefix)) >>> 0;
  if (network !== a) {
    throw bad('subnet', s, `host bits are set; did you mean ${ipv4ToString(network)}/${prefix}?`);
  }
  return { network, prefix };
}

export function cidrToString(c: Cidr): string {
  return `${ipv4ToString(c.network)}/${c.prefix}`;
}

export function broadcastOf(c: Cidr): Ipv4 {
  return (c.network | (~prefixMask(c.prefix) >>> 0)) >>> 0;
}

export function cidrContains(c: Cidr, a: Ipv4): boolean {
  return ((a & prefixMask(c.prefix)) >>> 0) === c.network;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = prefixMask(p);
  return ((a.network & m) >>> 0) === ((b.network & m) >>> 0);
}

/** A usable host address of `c` (not the network or broadcast address). */
export function checkHostAddress(c: Cidr, a: Ipv4, what: string): void {
  if (!cidrContains(c, a) || a === c.network || a === broadcastOf(c)) {
    throw new KernelError('ERR_BAD_VALUE', `${what} ${ipv4ToString(a)} is not a usable address of ${cidrToString(c)}`,
      'pick an address inside the subnet, other than its network and broadcast addresses');
  }
}

/** Network and container names: Docker's alphabet, at most 64 characters. */
export function checkName(s: string, what: 'network' | 'container'): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(s)) {
    throw bad(`${what} name`, s, 'use 1-64 characters from [a-zA-Z0-9_.-], starting with a letter or digit');
  }
  return s;
}

/** Locally administered unicast MAC, lower-case, colon-separated. */
export function parseMacAddress(s: string): string {
  const m = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s);
  if (!m) throw bad('MAC address', s, 'expected six colon-separated hex bytes such as 02:42:ac:11:00:02');
  const first = parseInt(s.slice(0, 2), 16);
  if (first & 1) throw bad('MAC address', s, 'a multicast MAC cannot be a container address (the lowest bit of the first byte is set)');
  if (/^(00:){5}00$/.test(s)) throw bad('MAC address', s, 'the all-zero MAC is not usable');
  return s.toLowerCase();
}

export function parsePort(s: string, what: string): number {
  if (!/^\d{1,5}$/.test(s)) throw bad(what, s, 'expected a port number 1-65535');
  const n = Number(s);
  if (n < 1 || n > 65535) throw bad(what, s, 'expected a port number 1-65535');
  return n;
}

/** `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]` as Docker's `-p` (ranges are not supported). */
export function parsePortSpec(s: string): PortSpec {
  let body = s;
  let proto: Proto = 'tcp';
  const slash = s.lastIndexOf('/');
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw bad('publish protocol', p, 'expected tcp or udp');
    proto = p;
    body = s.slice(0, slash);
  }
  const parts = body.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw bad('publish spec', s, 'expected [HOSTIP:]HOSTPORT:PORT[/tcp|udp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp');
  }
  const spec: PortSpec = {
    hostPort: parsePort(parts[parts.length - 2]!, 'host port'),
    containerPort: parsePort(parts[parts.length - 1]!, 'container port'),
    proto,
  };
  if (parts.length === 3) {
    const ip = parseAddress(parts[0]!, 'host IP');
    if (ip !== 0) spec.hostIp = ipv4ToString(ip); // 0.0.0.0 means every address, like Docker
  }
  return spec;
}

export function portSpecToString(p: PortSpec): string {
  return `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}:${p.containerPort}/${p.proto}`;
}

/** Interface names we generate or read from state: our prefix, short, plain alphabet. */
export function checkIfname(s: string): string {
  if (!/^(tsw-[a-z0-9-]{1,11}|eth0|lo)$/.test(s) || s.length > 15) {
    throw new KernelError('ERR_STATE_CORRUPT', `refusing interface name ${JSON.stringify(s)}`,
      'the state file holds a name tapswitch did not generate');
  }
  return s;
}

/** Netns names we generate or read from state. */
export function checkNetnsName(s: string): string {
  if (!/^tsw-[a-f0-9]{12}$/.test(s)) {
    throw new KernelError('ERR_STATE_CORRUPT', `refusing netns name ${JSON.stringify(s)}`,
      'the state file holds a name tapswitch did not generate');
  }
  return s;
}

/** Link MTUs the driver sets: 68 (IPv4's minimum) to 65535 (veth and bridge maximum). */
export const KERNEL_MIN_MTU = 68;
export const KERNEL_MAX_MTU = 65535;

export function checkMtu(n: number): number {
  if (!Number.isInteger(n) || n < KERNEL_MIN_MTU || n > KERNEL_MAX_MTU) {
    throw new KernelError('ERR_BAD_VALUE', `invalid MTU ${JSON.stringify(n)}`,
      `expected an integer from ${KERNEL_MIN_MTU} to ${KERNEL_MAX_MTU}`);
  }
  return n;
}
