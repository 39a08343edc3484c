// `tapswitch run --publish/-p [HOSTIP:]HOSTPORT:PORT[/tcp|udp]`: Docker's syntax, turned into the
// port-forward rules the data plane opens before CMD starts (the same forwards the slirp4netns API's
// add_hostfwd opens).
//
//   8080:80              every host address (0.0.0.0), TCP
//   127.0.0.1:8080:80    the host's loopback only: unreachable from other hosts
//   [::1]:8080:80        an IPv6 host address (the guest side stays IPv4)
//   5353:53/udp          UDP
//   8000-8010:9000-9010  ranges of equal length, port by port
//   8000-8002:80         a host range onto one container port is refused (Docker picks one free
//                        host port from the range; tapswitch asks you to say which)
import * as net from 'node:net';
import type { HostFwdRule } from '../portfwd/hostfwd-table';
import { u32ToIp } from './config';
import { TapswitchError } from './errors';

function bad(spec: string, why: string): TapswitchError {
  return new TapswitchError('ERR_BAD_VALUE', `invalid publish spec ${JSON.stringify(spec)}: ${why}`,
    'use [HOSTIP:]HOSTPORT:PORT[/tcp|udp], e.g. -p 8080:80, -p 127.0.0.1:5353:53/udp or -p 8000-8010:8000-8010');
}

function parseRange(spec: string, text: string, what: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) throw bad(spec, `${what} ${JSON.stringify(text)} is not a port or a range`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > 65535) throw bad(spec, `${what} must be 1-65535`);
  if (hi < lo) throw bad(spec, `${what} range ${text} is reversed`);
  return [lo, hi];
}

/** One `-p` value to its rules (one per port), guest side at `guestAddr` (u32). */
export function parsePublish(spec: string, guestAddr: number): HostFwdRule[] {
  let body = spec;
  let proto: 'tcp' | 'udp' = 'tcp';
  const slash = spec.lastIndexOf('/');
  if (slash >= 0) {
    const p = spec.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw bad(spec, `protocol ${JSON.stringify(p)} is not tcp or udp`);
    proto = p;
    body = spec.slice(0, slash);
  }
  let hostAddr = '0.0.0.0';
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(body);
  if (v6) {
    if (!net.isIPv6(v6[1] as string)) throw bad(spec, `${v6[1]} is not an IPv6 address`);
    hostAddr = v6[1] as string;
    body = v6[2] as string;
  }
  const parts = body.split(':');
  if (v6 ? parts.length !== 2 : parts.length !== 2 && parts.length !== 3) {
    throw bad(spec, 'expected HOSTPORT:PORT with an optional HOSTIP: in front');
  }
  if (parts.length === 3) {
    const ip = parts[0] as string;
    if (ip !== '') {
      if (!net.isIPv4(ip)) throw bad(spec, `${JSON.stringify(ip)} is not an IPv4 address (write IPv6 as [ADDR])`);
      hostAddr = ip;
    }
  }
  const [hLo, hHi] = parseRange(spec, parts[parts.length - 2] as string, 'host port');
  const [cLo, cHi] = parseRange(spec, parts[parts.length - 1] as string, 'container port');
  if (hHi - hLo !== cHi - cLo) {
    throw bad(spec, hHi - hLo > 0 && cHi === cLo ? 'a host port range needs a container range of the same length'
      : 'the host and container ranges differ in length');
  }
  const rules: HostFwdRule[] = [];
  for (let i = 0; i <= hHi - hLo; i++) {
    rules.push({ proto, hostAddr, hostPort: hLo + i, guestAddr: u32ToIp(guestAddr), guestPort: cLo + i });
  }
  return rules;
}

/** Human form of a rule for messages: `127.0.0.1:8080 -> 10.0.2.100:80/tcp`. */
export function describeRule(r: HostFwdRule): string {
  const host = r.hostAddr.includes(':') ? `[${r.hostAddr}]` : r.hostAddr;
  return `${host}:${r.hostPort} -> ${r.guestAddr}:${r.guestPort}/${r.proto}`;
}
