// Who is who inside the container's user namespace.
//
// Policy:
// - Running with euid 0 in our own user namespace (real root, or root inside a test sandbox): map
//   every id we have, identically (`inner inner count` for each line of /proc/self/uid_map). Written
//   directly to /proc/PID/{uid,gid}_map; we hold CAP_SETUID/CAP_SETGID over our own namespace.
// - Otherwise: root in the container is the caller, and ids 1.. are the caller's subordinate ranges
//   from /etc/subuid and /etc/subgid, written by the setuid helpers newuidmap/newgidmap (uidmap package).
// - `--map-user-only`, or no subordinate ids and the user asked for it: map only the caller as root
//   (written directly after denying setgroups, which the kernel requires for an unprivileged gid_map).
import * as fs from 'node:fs';
import * as os from 'node:os';
import { execFileSync } from 'node:child_process';
import { TapswitchError } from '../control/errors';

export interface IdRange {
  inner: number;
  outer: number;
  count: number;
}

export interface SubIdRange {
  start: number;
  count: number;
}

export type IdMapPlan =
  | { kind: 'identity'; uid: IdRange[]; gid: IdRange[] }
  | { kind: 'subids'; uid: IdRange[]; gid: IdRange[] }
  | { kind: 'user-only'; uid: IdRange[]; gid: IdRange[] };

/** /proc/PID/uid_map format: `inner outer count` per line. */
export function parseIdMap(text: string): IdRange[] {
  const out: IdRange[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const [inner, outer, count] = f.map(Number) as [number, number, number];
    if ([inner, outer, count].every(Number.isInteger) && count > 0) out.push({ inner, outer, count });
  }
  return out;
}

/** /etc/subuid format: `name-or-uid:start:count`; lines for either the name or the numeric id count. */
export function parseSubIds(text: string, user: string, id: number): SubIdRange[] {
  const out: SubIdRange[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(':');
    if (f.length !== 3) continue;
    if (f[0] !== user && f[0] !== String(id)) continue;
    const start = Number(f[1]);
    const count = Number(f[2]);
    if (Number.isInteger(start) && Number.isInteger(count) && count > 0) out.push({ start, count });
  }
  return out;
}

export interface IdMapInputs {
  euid: number;
  egid: number;
  user: string;
  /** Our own /proc/self/{uid,gid}_map. */
  uidMap: string;
  gidMap: string;
  /** Contents of /etc/subuid, /etc/subgid ('' when absent). */
  subuid: string;
  subgid: string;
  mapUserOnly: boolean;
}

function subRanges(caller: number, subs: SubIdRange[]): IdRange[] {
  const out: IdRange[] = [{ inner: 0, outer: caller, count: 1 }];
  let next = 1;
  for (const s of subs) {
    out.push({ inner: next, outer: s.start, count: s.count });
    next += s.count;
  }
  return out;
}

export function planIdMap(i: IdMapInputs): IdMapPlan {
  if (i.euid === 0) {
    const ident = (r: IdRange): IdRange => ({ inner: r.inner, outer: r.inner, count: r.count });
    return { kind: 'identity', uid: parseIdMap(i.uidMap).map(ident), gid: parseIdMap(i.gidMap).map(ident) };
  }
  const userOnly: IdMapPlan = {
    kind: 'user-only',
    uid: [{ inner: 0, outer: i.euid, count: 1 }],
    gid: [{ inner: 0, outer: i.egid, count: 1 }],
  };
  if (i.mapUserOnly) return userOnly;
  const subU = parseSubIds(i.subuid, i.user, i.euid);
  const subG = parseSubIds(i.subgid, i.user, i.euid);
  if (subU.length === 0 || subG.length === 0) {
    throw new TapswitchError('ERR_NO_SUBIDS', `no subordinate ${subU.length === 0 ? 'uids' : 'gids'} for user ${i.user} in /etc/sub${subU.length === 0 ? 'uid' : 'gid'}`,
      `add them with \`sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${i.user}\`, or pass --map-user-only to map only yourself as root`);
  }
  return { kind: 'subids', uid: subRanges(i.euid, subU), gid: subRanges(i.egid, subG) };
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

export function currentIdMapInputs(mapUserOnly: boolean): IdMapInputs {
  const euid = process.geteuid?.() ?? 0;
  let user = String(euid);
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (e.g. an arbitrary uid in a container): numeric lines in /etc/subuid still match
  }
  return {
    euid,
    egid: process.getegid?.() ?? 0,
    user,
    uidMap: readOr('/proc/self/uid_map', '0 0 4294967295'),
    gidMap: readOr('/proc/self/gid_map', '0 0 4294967295'),
    subuid: readOr('/etc/subuid', ''),
    subgid: readOr('/etc/subgid', ''),
    mapUserOnly,
  };
}

export function formatIdMap(ranges: IdRange[]): string {
  return ranges.map((r) => `${r.inner} ${r.outer} ${r.count}`).join('\n') + '\n';
}

/** Write the plan into the user namespace of `pid` (which must have unshared it already). */
export function applyIdMap(pid: number, plan: IdMapPlan): void {
  if (plan.kind === 'subids') {
    const args = (ranges: IdRange[]) => [String(pid), ...ranges.flatMap((r) => [r.inner, r.outer, r.count].map(String))];
    for (const [tool, ranges] of [['newuidmap', plan.uid], ['newgidmap', plan.gid]] as const) {
      try {
        execFileSync(tool, args(ranges), { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
        if (err.code === 'ENOENT') {
          throw new TapswitchError('ERR_NO_UIDMAP_TOOLS', `${tool} not found`,
            'install the uidmap package (e.g. `sudo apt-get install uidmap`), or pass --map-user-only');
        }
        const detail = err.stderr?.toString().trim().split('\n').pop() ?? err.message;
        throw new TapswitchError('ERR_NO_SUBIDS', `${tool} failed: ${detail}`,
          'check your ranges in /etc/subuid and /etc/subgid, or pass --map-user-only');
      }
    }
    return;
  }
  if (plan.kind === 'user-only') {
    // An unprivileged gid_map write is only allowed once setgroups is denied (user_namespaces(7)).
    fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
  }
  fs.writeFileSync(`/proc/${pid}/uid_map`, formatIdMap(plan.uid));
  fs.writeFileSync(`/proc/${pid}/gid_map`, formatIdMap(plan.gid));
}
