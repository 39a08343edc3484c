// Flushing connection-tracking entries that would outlive our rules.
//
// NAT decisions live in conntrack, not in the rules: once a flow has been DNATed to a container,
// its entry keeps translating packets after the publish or the container is gone. For UDP, where a
// client that keeps sending keeps its entry alive forever, that means a removed publish still
// forwards, or a new container that reuses the address receives a dead one's traffic. So, as
// Docker does, entries are deleted when an endpoint goes (by its address, both directions) and
// when a UDP publish goes (by its host port).
//
// This needs the `conntrack` tool (Debian package conntrack). Without it the flush is skipped:
// entries then expire on their own (30 s unreplied, 120 s for an assured UDP flow).
import * as fs from 'node:fs';
import { ipv4ToString } from '../wire/addr';
import { run } from './exec';
import { parseAddress, type Proto } from './validate';

let tool: string | null | undefined;

export function conntrackTool(): string | null {
  if (tool === undefined) {
    tool = ['/usr/sbin/conntrack', '/sbin/conntrack', '/usr/bin/conntrack'].find((p) => fs.existsSync(p)) ?? null;
  }
  return tool;
}

function flush(filter: string[]): void {
  const t = conntrackTool();
  if (!t) return;
  // Status 1 means "0 flow entries have been deleted".
  run([t, '-D', ...filter], { okStatuses: [1], what: 'flush conntrack entries' });
}

/** Every entry to or from a container address. */
export function flushAddress(address: string): void {
  const a = ipv4ToString(parseAddress(address));
  flush(['--orig-src', a]);
  flush(['--reply-src', a]);
}

/** Entries of a removed publish (UDP only: TCP flows end by themselves and are left alone). */
export function flushPublish(p: { hostIp?: string; hostPort: number; proto: Proto }): void {
  if (p.proto !== 'udp') return;
  const filter = ['-p', 'udp', '--orig-port-dst', String(Math.trunc(p.hostPort))];
  if (p.hostIp !== undefined) filter.push('--orig-dst', ipv4ToString(parseAddress(p.hostIp)));
  flush(filter);
}
