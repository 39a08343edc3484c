// The kernel driver's state: one JSON file under the state directory, changed only under a lock.
//
// Theory of operation. Every command takes the lock, loads the state, reconciles (see
// reconcile.ts), does its work and saves. Anything that touches the kernel is preceded by an
// *intent*: the list of kernel objects (bridges, veths, netns names) the operation is about to
// create or destroy, saved to disk first. The lock is held until the operation has finished and
// cleared its intent, so an intent found by the next lock holder can only belong to a process that
// died in the middle (kill -9, power loss): its objects are destroyed and the nft table is rewritten
// from the records, which only ever describe finished work. Teardown always works from these
// records and intents, never from scanning live interfaces.
//
// The file is written atomically: a temporary file in the same directory, fsync, rename, fsync of
// the directory. The lock is a file created with O_EXCL holding "pid starttime"; a lock whose
// holder no longer exists (pid gone, or reused by a process with another start time) is stale and
// broken. Containers are owned by the `tapswitch run` process that started them, identified the
// same way, so a dead owner means a dead endpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KernelError } from './errors';
import type { PortSpec } from './validate';

export const STATE_VERSION = 1;

export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'kernel';
  subnet: string;
  gateway: string;
  bridge: string;
  bridgeMac: string;
  internal: boolean;
  /** Bridge MTU and the default of its endpoints (`network create -o mtu=N`); absent: 1500. */
  mtu?: number;
  created: string;
}

export interface EndpointRecord {
  /** Network id. */
  network: string;
  ip: string;
  mac: string;
  hostVeth: string;
  ports: PortSpec[];
  /** MTU of the veth pair when not the kernel's default. */
  mtu?: number;
}

/** A process identity that survives pid reuse: pid + start time (clock ticks since boot). */
export interface ProcessId {
  pid: number;
  start: string;
}

export interface ContainerRecord {
  id: string;
  name?: string;
  /** Name of the persistent netns (`ip netns` name under /run/netns). */
  netns: string;
  owner: ProcessId;
  /** Absent for `--network none`. */
  endpoint?: EndpointRecord;
  created: string;
}

/** Kernel objects an interrupted operation may have left behind: destroyed on recovery. */
export interface Intent {
  op: 'network-create' | 'network-rm' | 'container-create' | 'container-rm';
  owner: ProcessId;
  bridges: string[];
  veths: string[];
  netns: string[];
  /** Container addresses whose conntrack entries go with the objects (optional: older records). */
  addresses?: string[];
}

export interface KernelState {
  version: number;
  networks: NetworkRecord[];
  containers: ContainerRecord[];
  intents: Intent[];
  /** Whether our nft table exists (we created it and have not deleted it). */
  table: boolean;
}

export function emptyState(): KernelState {
  return { version: STATE_VERSION, networks: [], containers: [], intents: [], table: false };
}

/** $TAPSWITCH_STATE_DIR, else /run/tapswitch as root, else $XDG_RUNTIME_DIR/tapswitch. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.TAPSWITCH_STATE_DIR;
  if (explicit) return path.resolve(explicit);
  if (process.getuid?.() === 0) return '/run/tapswitch';
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg) return path.join(xdg, 'tapswitch');
  return path.join('/tmp', `tapswitch-${process.getuid?.() ?? 'user'}`);
}

/** Start time of a process (field 22 of /proc/PID/stat), or null if it does not exist. */
export function processStart(pid: number): string | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null; // field 22 overall = index 19 after pid and comm
}

export function selfId(): ProcessId {
  return { pid: process.pid, start: processStart(process.pid) ?? '0' };
}

export function isAlive(p: ProcessId): boolean {
  return processStart(p.pid) === p.start;
}

export class StateStore {
  readonly dir: string;
  readonly file: string;
  readonly lockFile: string;
  private locked = false;

  constructor(dir: string = stateDir()) {
    this.dir = dir;
    this.file = path.join(dir, 'kernel.json');
    this.lockFile = path.join(dir, 'kernel.lock');
  }

  load(): KernelState {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw e;
    }
    let s: KernelState;
    try {
      s = JSON.parse(text) as KernelState;
    } catch (e) {
      throw new KernelError('ERR_STATE_CORRUPT', `state file ${this.file} is not valid JSON`,
        'it is only ever replaced atomically, so something else wrote it; move it away to start afresh', { cause: e });
    }
    if (s.version !== STATE_VERSION || !Array.isArray(s.networks) || !Array.isArray(s.containers) || !Array.isArray(s.intents)) {
      throw new KernelError('ERR_STATE_CORRUPT', `state file ${this.file} has an unknown layout`,
        'move it away to start afresh');
    }
    return s;
  }

  save(s: KernelState): void {
    if (!this.locked) throw new KernelError('ERR_INTERNAL', 'state saved without holding the lock');
    const tmp = `${this.file}.tmp.${process.pid}`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(s, null, 2)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    const dfd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }

  /** Run `fn` holding the lock (waiting up to `timeoutMs` for another holder). */
  withLock<T>(fn: () => T, timeoutMs = 30_000): T {
    this.acquire(timeoutMs);
    try {
      return fn();
    } finally {
      this.release();
    }
  }

  private acquire(timeoutMs: number): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const me = selfId();
    const deadline = Date.now() + timeoutMs;
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      try {
        const fd = fs.openSync(this.lockFile, 'wx', 0o600);
        fs.writeSync(fd, `${me.pid} ${me.start}\n`);
        fs.closeSync(fd);
        this.locked = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      this.breakIfStale();
      if (Date.now() > deadline) {
        throw new KernelError('ERR_LOCK_TIMEOUT', `another tapswitch command holds ${this.lockFile}`,
          'wait for it to finish; if no tapswitch command is running, remove the lock file');
      }
      // Nothing to wake us but time: the holder releases by unlinking. Poll every 20 ms.
      Atomics.wait(sleeper, 0, 0, 20);
    }
  }

  /**
   * Remove the lock if its holder is gone. Two breakers can race: each renames the lock to a
   * private name first (only one rename of a given file succeeds) and checks that what it took is
   * still the stale content it judged; if not (a live holder's fresh lock was taken), it puts it back.
   */
  private breakIfStale(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.lockFile, 'utf8');
    } catch {
      return;
    }
    const [pidText, start] = text.trim().split(' ');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0 || start === undefined) {
      // Written half-way (the holder died between open and write) or still being written: only
      // break it once it is old enough that no live writer can be in between.
      try {
        if (Date.now() - fs.statSync(this.lockFile).mtimeMs < 2000) return;
      } catch {
        return;
      }
    } else if (isAlive({ pid, start })) {
      return;
    }
    const taken = `${this.lockFile}.stale.${process.pid}`;
    try {
      fs.renameSync(this.lockFile, taken);
    } catch {
      return;
    }
    const got = fs.readFileSync(taken, 'utf8');
    if (got !== text) {
      try {
        fs.linkSync(taken, this.lockFile);
      } catch { /* someone else holds a newer lock; theirs wins */ }
    }
    fs.unlinkSync(taken);
  }

  private release(): void {
    if (!this.locked) return;
    this.locked = false;
    try {
      fs.unlinkSync(this.lockFile);
    } catch { /* already broken by someone who thought we were dead */ }
  }
}
