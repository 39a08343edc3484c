// Facts about the host namespace the driver runs in: capabilities, routes, sysctls and other
// programs' firewall policy. Reads only, except for the sysctl writes.
import * as fs from 'node:fs';
import { KernelError } from './errors';
import { run } from './exec';
import { checkIfname } from './validate';

export const CAP_NET_ADMIN = 12;

/** Whether bit `cap` is set in CapEff of /proc/self/status (`status` injectable for tests). */
export function hasCapability(cap: number, status?: string): boolean {
  let text = status;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/status', 'utf8');
    } catch {
      return false;
    }
  }
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(text);
  if (!m) return false;
  return ((BigInt(`0x${m[1]}`) >> BigInt(cap)) & 1n) === 1n;
}

/**
 * Whether CAP_NET_ADMIN (bit 12 of CapEff) actually works over this process's network namespace,
 * i.e. its owning user namespace is ours (or one we have it in). CapEff alone is not enough: after
 * `unshare --user --map-root-user` without `--net`, CapEff is full but the network namespace still
 * belongs to the parent user namespace, where we hold nothing. rtnetlink checks the capability
 * against the namespace's owner before anything else, so a request that can only fail tells us
 * which: `ip link add name lo type bridge` fails with "File exists" when we may administer the
 * namespace and with "Operation not permitted" when not. It creates nothing, loads no module
 * (bridge is looked up only on the create path, after the name clash) and touches no state.
 */
export function probeNetnsAdmin(): { admin: boolean; failure?: KernelError } {
  try {
    run(['ip', 'link', 'add', 'name', 'lo', 'type', 'bridge'], { what: 'probe CAP_NET_ADMIN', timeoutMs: 5000 });
    return { admin: false }; // cannot happen (lo always exists); refuse to guess
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    const stderr = e.command?.stderr ?? '';
    if (/File exists/.test(stderr)) return { admin: true };
    if (/Operation not permitted/.test(stderr)) return { admin: false };
    return { admin: false, failure: e };
  }
}

/** What the "are we root here?" decision looks at; see control/kernel-select.ts for the rule. */
export interface PrivilegeFacts {
  /** Effective uid in our own user namespace. */
  euid: number;
  /** CAP_NET_ADMIN in CapEff (relative to our own user namespace). */
  capNetAdmin: boolean;
  /** The capability works over our network namespace (probeNetnsAdmin); false without capNetAdmin. */
  netnsAdmin: boolean;
  /** Why the probe could not tell (e.g. `ip` is not installed); absent when it could. */
  probeFailure?: KernelError;
}

let cachedFacts: PrivilegeFacts | undefined;

/** This process's facts (cached: they do not change while it runs). The probe runs only with CapEff set. */
export function privilegeFacts(): PrivilegeFacts {
  if (cachedFacts) return cachedFacts;
  const capNetAdmin = hasCapability(CAP_NET_ADMIN);
  const probe = capNetAdmin ? probeNetnsAdmin() : { admin: false };
  cachedFacts = {
    euid: process.geteuid?.() ?? -1, capNetAdmin, netnsAdmin: probe.admin,
    ...(probe.failure ? { probeFailure: probe.failure } : {}),
  };
  return cachedFacts;
}

/** CAP_NET_ADMIN over this network namespace: what the kernel path needs (uid 0 is not required). */
export function canAdminNetns(f: PrivilegeFacts = privilegeFacts()): boolean {
  return f.capNetAdmin && f.netnsAdmin;
}

export function requireNetAdmin(what: string, hint = 'run as root (or with CAP_NET_ADMIN); the rootless userspace driver is not available yet',
  facts?: PrivilegeFacts): void {
  const f = facts ?? privilegeFacts();
  if (!canAdminNetns(f)) {
    if (f.probeFailure) throw f.probeFailure;
    const why = f.capNetAdmin ? ' (this process has it, but the network namespace belongs to another user namespace)' : '';
    throw new KernelError('ERR_NO_CAP_NET_ADMIN', `${what} needs CAP_NET_ADMIN over this network namespace${why}`, hint);
  }
}

/** `ip -json route` (main table, IPv4), raw text. */
export function readRoutesJson(): string {
  return run(['ip', '-json', '-4', 'route', 'show', 'table', 'main'], { what: 'read routes' }).stdout;
}

function writeSysctl(file: string, value: string, optional = false): void {
  try {
    fs.writeFileSync(file, value);
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new KernelError('ERR_KERNEL_CMD', `cannot write ${file}: ${(e as Error).message}`,
      'this sysctl is needed for container traffic to be forwarded', { cause: e });
  }
}

export function enableForwarding(): void {
  if (fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') {
    writeSysctl('/proc/sys/net/ipv4/ip_forward', '1');
  }
}

/** route_localnet=1 (publishing on 127.0.0.1) and accept_ra=0 on our bridge. */
export function tuneBridgeSysctls(bridge: string): void {
  const b = checkIfname(bridge);
  writeSysctl(`/proc/sys/net/ipv4/conf/${b}/route_localnet`, '1');
  writeSysctl(`/proc/sys/net/ipv6/conf/${b}/accept_ra`, '0', true);
}

export interface ForwardDrop {
  /** e.g. "ip filter FORWARD" or "iptables-legacy FORWARD". */
  where: string;
  fix: string;
}

/**
 * Other firewalls whose forward hook drops by default (iptables FORWARD policy DROP left by Docker
 * <= 28 or ufw): they would drop our containers' traffic too, even inside one bridge, whatever our
 * own table says. A chain counts as handled when it already accepts our bridges (the fix we print).
 */
export function findForwardDrop(): ForwardDrop | null {
  let chains: unknown[] = [];
  try {
    const out = run(['nft', '-j', 'list', 'chains'], { what: 'list nftables chains' }).stdout;
    chains = (JSON.parse(out) as { nftables?: unknown[] }).nftables ?? [];
  } catch (e) {
    if (e instanceof KernelError && e.code === 'ERR_TOOL_MISSING') throw e;
    chains = [];
  }
  for (const item of chains) {
    const c = (item as { chain?: Record<string, unknown> }).chain;
    if (!c || c.hook !== 'forward' || c.policy !== 'drop') continue;
    if (c.family === 'inet' && c.table === 'tapswitch') continue;
    if (c.family !== 'ip' && c.family !== 'inet') continue;
    const fam = String(c.family), table = String(c.table), name = String(c.name);
    if (!/^[A-Za-z0-9_.-]+$/.test(table + name)) continue;
    const rules = run(['nft', '-j', 'list', 'chain', fam, table, name], { what: 'list a forward chain' }).stdout;
    if (acceptsOurBridges(rules)) continue;
    return {
      where: `${fam} ${table} ${name}`,
      fix: `nft insert rule ${fam} ${table} ${name} oifname "tsw-br-*" accept; ` +
        `nft insert rule ${fam} ${table} ${name} iifname "tsw-br-*" accept`,
    };
  }
  for (const dir of ['/usr/sbin', '/sbin']) {
    if (!fs.existsSync(`${dir}/iptables-legacy`)) continue;
    let out = '';
    try {
      out = run([`${dir}/iptables-legacy`, '-w', '5', '-S', 'FORWARD']).stdout;
    } catch {
      break;
    }
    if (/^-P FORWARD DROP$/m.test(out) &&
        !(/-i tsw-br-\+ .*-j ACCEPT/.test(out) && /-o tsw-br-\+ .*-j ACCEPT/.test(out))) {
      return {
        where: 'iptables-legacy FORWARD',
        fix: 'iptables-legacy -I FORWARD -o tsw-br-+ -j ACCEPT; iptables-legacy -I FORWARD -i tsw-br-+ -j ACCEPT',
      };
    }
    break;
  }
  return null;
}

/** Whether an `nft -j list chain` output has accept rules matching tsw-br-* both ways. */
export function acceptsOurBridges(json: string): boolean {
  let iif = false, oif = false;
  let items: unknown[] = [];
  try {
    items = (JSON.parse(json) as { nftables?: unknown[] }).nftables ?? [];
  } catch {
    return false;
  }
  for (const item of items) {
    const r = (item as { rule?: { expr?: unknown[] } }).rule;
    if (!r || !Array.isArray(r.expr)) continue;
    const text = JSON.stringify(r.expr);
    if (!text.includes('"accept"') || !text.includes('tsw-br-')) continue;
    if (text.includes('"iifname"')) iif = true;
    if (text.includes('"oifname"')) oif = true;
  }
  return iif && oif;
}

export function requireForwardingAllowed(): void {
  const d = findForwardDrop();
  if (d) {
    throw new KernelError('ERR_FORWARD_POLICY_DROP',
      `the forward chain ${d.where} drops by default, which would drop tapswitch's container traffic too`,
      `let tapswitch's bridges through (its own table still isolates networks): ${d.fix}`);
  }
}
