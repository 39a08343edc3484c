// Repair after crashes; runs at the start of every command, under the lock.
//
// Two kinds of leftovers exist, and both are known from the state file alone:
//   1. intents: an operation died between saving its intent and clearing it (the lock is held for
//      the whole operation, so a surviving intent has no live owner). Its objects are destroyed:
//      a half-created bridge, veth or netns is deleted; a half-removed one is finished off. The
//      records never describe unfinished work, so nothing else needs undoing.
//   2. containers whose owner (`tapswitch run` process: pid + start time) is gone: killed with -9
//      or crashed; or whose netns file (named in the record) was deleted behind our back. Their
//      endpoint is torn down (host veth, netns) and their address released.
// After either, the nft table is re-rendered from the records (`syncRules`), which also removes
// every published port and address of what was torn down. The table is also re-rendered when the
// records say it exists and it does not (someone ran `nft flush ruleset`).
import * as fs from 'node:fs';
import { KernelError } from './errors';
import { flushAddress } from './conntrack';
import { deleteLink, deleteNetns, netnsPath } from './links';
import { renderRuleset, TABLE_FAMILY, TABLE_NAME, type RuleInput, type RulePort } from './nft-rules';
import { nftApply, run } from './exec';
import { isAlive, type ContainerRecord, type Intent, type KernelState } from './state';

export function destroyIntent(i: Intent): void {
  // Veths before netns (deleting the netns would also take the peer, but the host end is what we
  // named); bridges last, once nothing is attached.
  for (const v of i.veths) deleteLink(v);
  for (const n of i.netns) deleteNetns(n);
  for (const b of i.bridges) deleteLink(b);
  for (const a of i.addresses ?? []) flushAddress(a);
}

export function intentForContainer(c: ContainerRecord, op: Intent['op'], owner: Intent['owner']): Intent {
  return {
    op, owner, bridges: [], veths: c.endpoint ? [c.endpoint.hostVeth] : [], netns: [c.netns],
    addresses: c.endpoint ? [c.endpoint.ip] : [],
  };
}

export function ruleInput(s: KernelState): RuleInput {
  const ports: RulePort[] = [];
  for (const c of s.containers) {
    const ep = c.endpoint;
    if (!ep) continue;
    for (const p of ep.ports) {
      ports.push({ ...(p.hostIp ? { hostIp: p.hostIp } : {}), hostPort: p.hostPort, containerIp: ep.ip,
        containerPort: p.containerPort, proto: p.proto });
    }
  }
  return {
    networks: s.networks.map((n) => ({ bridge: n.bridge, subnet: n.subnet, internal: n.internal })),
    ports,
  };
}

/** Make the nft table match the records (one transaction); no-op when neither has anything. */
export function syncRules(s: KernelState): void {
  if (s.networks.length === 0 && !s.table) return;
  nftApply(renderRuleset(ruleInput(s)));
  s.table = s.networks.length > 0;
}

function tableExists(): boolean {
  const r = run(['nft', 'list', 'table', TABLE_FAMILY, TABLE_NAME], { okStatuses: [1] });
  return r.status === 0;
}

export interface ReconcileReport {
  intentsRecovered: number;
  containersReaped: string[];
}

/**
 * Recover intents and reap containers with dead owners; returns what was done (state mutated,
 * caller saves). Errors while destroying leftovers are collected and rethrown after the rest.
 */
export function reconcile(s: KernelState): ReconcileReport {
  const report: ReconcileReport = { intentsRecovered: 0, containersReaped: [] };
  const errors: unknown[] = [];
  const keep: Intent[] = [];
  for (const i of s.intents) {
    try {
      destroyIntent(i);
      report.intentsRecovered++;
    } catch (e) {
      errors.push(e);
      keep.push(i);
    }
  }
  s.intents = keep;
  const live: ContainerRecord[] = [];
  for (const c of s.containers) {
    if (isAlive(c.owner) && fs.existsSync(netnsPath(c.netns))) {
      live.push(c);
      continue;
    }
    try {
      destroyIntent(intentForContainer(c, 'container-rm', c.owner));
      report.containersReaped.push(c.name ?? c.id.slice(0, 12));
    } catch (e) {
      errors.push(e);
      live.push(c);
    }
  }
  s.containers = live;
  const changed = report.intentsRecovered > 0 || report.containersReaped.length > 0;
  if (changed || (s.table && !tableExists())) syncRules(s);
  if (errors.length) {
    const first = errors[0];
    if (first instanceof KernelError) throw first;
    throw new KernelError('ERR_INTERNAL', `reconcile failed: ${String(first)}`);
  }
  return report;
}
