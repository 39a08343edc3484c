// The whole of tapswitch's nftables state, rendered from our records: pure, no I/O.
//
// Theory of operation. tapswitch owns exactly one table, `inet tapswitch`, and every change
// replaces it as a whole in one `nft -f -` transaction:
//
//     add table inet tapswitch      (so that the delete below cannot fail)
//     delete table inet tapswitch
//     table inet tapswitch { ... }  (the table as the records describe it now)
//
// nft applies the three as one atomic transaction, so there is never a moment without rules, and
// the table is always a function of the state file: reconciling is re-rendering. Established flows
// survive a replace because NAT bindings live in conntrack, not in rules.
//
// Layout (per network N with bridge B and subnet S):
//   forward    filter/forward: `oifname vmap @fwd_in` then `iifname vmap @fwd_out`.
//   in_B       traffic *into* bridge B: accept established/related, same-bridge traffic and
//              `ct status dnat` (published ports, from anywhere); drop the rest. This is the
//              isolation between networks and the "no direct access to container addresses" rule.
//   out_B      traffic *from* B to a non-bridge interface: accept (or drop for --internal).
//   hostports  jumped to from nat/output and nat/prerouting for `fib daddr type local`: DNAT through
//              two exact-match maps per protocol, `addr . port` (publish bound to one host address)
//              first, then `port` (publish on every host address). No interval maps: deleting one
//              element of an interval concatenation can remove its neighbour (nft 1.0.6).
//              Prerouting never translates a 127.0.0.0/8 destination: only the host's own output
//              may reach a publish through loopback, so a neighbour forging a loopback destination
//              (which route_localnet on our bridges would otherwise let through) gets nothing.
//   input      drops what arrives from our bridges for 127.0.0.0/8. route_localnet=1 on the bridges
//              (needed for publishing on 127.0.0.1) would otherwise deliver a container's forged
//              loopback destination to host services bound to 127.0.0.1 (UDP gets through one-way;
//              the CVE-2020-8558 class). A container's own 127.0.0.1 is its own lo. Replies of
//              the host's own connections to a publish via 127.0.0.1 do arrive that way (once
//              conntrack has undone the masquerade), and are DNATed connections: those pass.
//   postrouting MASQUERADE for (1) hairpin and cross-network access to published ports (saddr in
//              one of our subnets, DNATed, leaving by one of our bridges), (2) the host itself and
//              its loopback reaching a published port (`fib saddr type local`, DNATed), (3) outbound
//              traffic of non-internal subnets leaving by anything but our bridges.
// `priority dstnat` is refused on the output hook by nft 1.0.6, hence the literal -100.
import type { Proto } from './validate';

export const TABLE_FAMILY = 'inet';
export const TABLE_NAME = 'tapswitch';

export interface RuleNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

export interface RulePort {
  hostIp?: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
  proto: Proto;
}

export interface RuleInput {
  networks: RuleNetwork[];
  ports: RulePort[];
}

const q = (s: string): string => `"${s}"`;

function elements(items: readonly string[]): string {
  return items.length ? ` elements = { ${items.join(', ')} }` : '';
}

/** The script that makes the table exactly `input` (or removes it when there are no networks). */
export function renderRuleset(input: RuleInput): string {
  const lines: string[] = [`add table ${TABLE_FAMILY} ${TABLE_NAME}`, `delete table ${TABLE_FAMILY} ${TABLE_NAME}`];
  if (input.networks.length === 0) return `${lines.join('\n')}\n`;

  const nets = [...input.networks].sort((a, b) => a.bridge.localeCompare(b.bridge));
  const bridges = nets.map((n) => q(n.bridge));
  const fwdIn = nets.map((n) => `${q(n.bridge)} : jump in_${n.bridge}`);
  const fwdOut = nets.map((n) => `${q(n.bridge)} : jump out_${n.bridge}`);
  const subnets = nets.map((n) => n.subnet);
  const masq = nets.filter((n) => !n.internal).map((n) => n.subnet);

  const portMaps: string[] = [];
  const hostportRules: string[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const mine = input.ports.filter((p) => p.proto === proto)
      .sort((a, b) => a.hostPort - b.hostPort || (a.hostIp ?? '').localeCompare(b.hostIp ?? ''));
    const any = mine.filter((p) => p.hostIp === undefined).map((p) => `${p.hostPort} : ${p.containerIp} . ${p.containerPort}`);
    const bound = mine.filter((p) => p.hostIp !== undefined)
      .map((p) => `${p.hostIp} . ${p.hostPort} : ${p.containerIp} . ${p.containerPort}`);
    portMaps.push(
      `  map hp_${proto} { type inet_service : ipv4_addr . inet_service;${elements(any)} }`,
      `  map hpa_${proto} { type ipv4_addr . inet_service : ipv4_addr . inet_service;${elements(bound)} }`,
    );
    hostportRules.push(
      `    dnat ip to ip daddr . ${proto} dport map @hpa_${proto}`,
      `    dnat ip to ${proto} dport map @hp_${proto}`,
    );
  }

  lines.push(`table ${TABLE_FAMILY} ${TABLE_NAME} {`);
  lines.push(`  set bridges { type ifname;${elements(bridges)} }`);
  lines.push(`  set subnets { type ipv4_addr; flags interval;${elements(subnets)} }`);
  lines.push(`  set masq_subnets { type ipv4_addr; flags interval;${elements(masq)} }`);
  lines.push(...portMaps);
  for (const n of nets) {
    const b = n.bridge;
    lines.push(`  chain in_${b} {`, '    ct state established,related accept', `    iifname ${q(b)} accept`);
    if (!n.internal) lines.push('    ct status dnat accept');
    lines.push('    drop', '  }');
    lines.push(`  chain out_${b} {`, n.internal ? '    drop' : '    accept', '  }');
  }
  lines.push(`  map fwd_in { type ifname : verdict;${elements(fwdIn)} }`);
  lines.push(`  map fwd_out { type ifname : verdict;${elements(fwdOut)} }`);
  lines.push(
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    oifname vmap @fwd_in',
    '    iifname vmap @fwd_out',
    '  }',
    '  chain hostports {',
    ...hostportRules,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    '    iifname @bridges ip daddr 127.0.0.0/8 ct status dnat accept',
    '    iifname @bridges ip daddr 127.0.0.0/8 drop',
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    fib daddr type local ip daddr != 127.0.0.0/8 jump hostports',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    fib daddr type local jump hostports',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    ct status dnat oifname @bridges ip saddr @subnets masquerade',
    '    ct status dnat fib saddr type local oifname @bridges masquerade',
    '    ip saddr @masq_subnets oifname != @bridges masquerade',
    '  }',
    '}',
  );
  return `${lines.join('\n')}\n`;
}

/** Whether two publishes would claim the same host port (a wildcard claims every address). */
export function portsClash(a: { hostIp?: string; hostPort: number; proto: Proto },
  b: { hostIp?: string; hostPort: number; proto: Proto }): boolean {
  if (a.proto !== b.proto || a.hostPort !== b.hostPort) return false;
  return a.hostIp === undefined || b.hostIp === undefined || a.hostIp === b.hostIp;
}
