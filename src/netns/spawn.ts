// Start CMD in new user+net+mount namespaces, held at a gate until its network is ready.
//
// Theory of operation. We spawn
//
//   unshare --user --net --mount --propagation private -- /bin/sh -c GATE sh RESOLV CMD ARGS...
//
// with two extra fds: 3 (the gate, we write) and 4 (progress, the shell writes). unshare creates the
// namespaces and execs sh, so the PID we hold is the namespace's first process and, after the final
// `exec`, CMD itself: signals reach CMD directly and its exit status is ours to report. The shell
//   1. writes `u` on fd 4: the namespaces exist, so /proc/PID/ns/{user,net} are the container's;
//   2. waits for a line on fd 3; meanwhile we write the uid/gid maps and open + configure the TAP;
//   3. bind-mounts our private resolv.conf over /etc/resolv.conf (private mount namespace; the host
//      file is untouched), writes `x` on fd 4 and closes both fds, then execs CMD.
// If we die, fd 3 hits EOF and the shell exits 125 without running CMD. If the shell exits before
// writing `x`, set-up failed and CMD never ran, which we can tell apart from CMD's own exit status.
// The shell runs before the id maps exist (as the overflow uid), which is fine: it only uses its fds
// until the gate opens, and everything it execs afterwards runs as the mapped root.
import * as fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { TapswitchError } from '../control/errors';

const GATE_SCRIPT = [
  'printf u >&4',
  'read -r _ <&3 || exit 125',
  'exec 3<&-',
  'r=$1; shift',
  'if [ -n "$r" ]; then mount --bind "$r" /etc/resolv.conf || exit 125; fi',
  'printf x >&4',
  'exec 4>&-',
  'exec "$@"',
].join('\n');

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** CMD and its arguments. */
  command: string[];
  /** File to bind-mount over /etc/resolv.conf inside; undefined leaves resolv.conf alone. */
  resolvConf?: string;
  /** Environment for CMD (default: ours). */
  env?: NodeJS.ProcessEnv;
}

export interface GatedContainer {
  pid: number;
  usernsPath: string;
  netnsPath: string;
  /** Identity of the container's netns, to find processes left in it later. */
  netns: { dev: number; ino: number };
  /** Open the gate; resolves once the shell is about to exec CMD, rejects if set-up failed. */
  release(): Promise<void>;
  /** Resolves when the PID (shell, then CMD) exits. */
  exited: Promise<ExitInfo>;
  /** Whether CMD itself was exec'd (after release). */
  started(): boolean;
  kill(signal: NodeJS.Signals): void;
}

/** Fail early, with the right advice, where the kernel forbids user namespaces. */
export function checkUserNamespaces(euid: number, read: (f: string) => string | null = readSysctl): void {
  const hint = 'enable unprivileged user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1` '
    + 'and `sudo sysctl -w user.max_user_namespaces=28633` (and on Ubuntu `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`)';
  if (read('/proc/sys/user/max_user_namespaces') === '0') {
    throw new TapswitchError('ERR_NO_USERNS', 'user namespaces are disabled (user.max_user_namespaces = 0)', hint);
  }
  if (euid !== 0 && read('/proc/sys/kernel/unprivileged_userns_clone') === '0') {
    throw new TapswitchError('ERR_NO_USERNS',
      'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)', hint);
  }
}

function readSysctl(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Spawn CMD held at the gate. Resolves once the namespaces exist. */
export function spawnGated(opts: SpawnOptions): Promise<GatedContainer> {
  const args = ['--user', '--net', '--mount', '--propagation', 'private', '--',
    '/bin/sh', '-c', GATE_SCRIPT, 'sh', opts.resolvConf ?? '', ...opts.command];
  const child: ChildProcess = spawn('unshare', args, {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  const gate = child.stdio[3] as Writable;
  const progress = child.stdio[4] as Readable;
  // Nobody reads these errors: EPIPE on the gate when the shell is gone shows up as an exit instead.
  gate.on('error', () => {});
  progress.on('error', () => {});

  // Progress marks arrive on fd 4; its EOF (the shell closed it, or died) ends the waiting. Data and
  // EOF arrive in order, whereas the child's 'exit' event may overtake them.
  let seen = '';
  let progressEnded = false;
  let spawnError: NodeJS.ErrnoException | undefined;
  const waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  progress.on('data', (chunk: Buffer) => {
    seen += chunk.toString('latin1');
    wake();
  });
  progress.once('close', () => {
    progressEnded = true;
    wake();
  });
  child.once('error', (e: NodeJS.ErrnoException) => {
    spawnError = e;
    wake();
  });

  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });

  /** Wait until `mark` was written on fd 4 (true), or fd 4 closed / spawning failed without it (false). */
  const waitFor = (mark: string): Promise<boolean> => new Promise((resolve) => {
    const check = () => {
      if (seen.includes(mark)) resolve(true);
      else if (progressEnded || spawnError) resolve(false);
      else waiters.push(check);
    };
    check();
  });
  const status = async () => {
    const e = await exited;
    return e.code ?? e.signal;
  };

  return waitFor('u').then(async (ok) => {
    if (!ok) {
      if (spawnError?.code === 'ENOENT') {
        throw new TapswitchError('ERR_NO_UNSHARE', 'unshare not found',
          'install util-linux (e.g. `sudo apt-get install util-linux`)');
      }
      if (spawnError) {
        throw new TapswitchError('ERR_SETUP', `cannot start unshare: ${spawnError.message}`,
          'check that util-linux is installed and runnable');
      }
      throw new TapswitchError('ERR_NO_USERNS',
        `could not create user+net+mount namespaces (unshare exited with ${await status()})`,
        'see unshare\'s message above; unprivileged user namespaces may be disabled '
        + '(kernel.unprivileged_userns_clone, user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns)');
    }
    const pid = child.pid as number;
    const netnsPath = `/proc/${pid}/ns/net`;
    const st = fs.statSync(netnsPath);
    let released = false;
    const container: GatedContainer = {
      pid,
      usernsPath: `/proc/${pid}/ns/user`,
      netnsPath,
      netns: { dev: st.dev, ino: st.ino },
      exited,
      started: () => seen.includes('x'),
      kill: (signal) => {
        if (!exitInfo) {
          try {
            process.kill(pid, signal);
          } catch {
            // already gone
          }
        }
      },
      release: async () => {
        if (!released) {
          released = true;
          gate.end('go\n');
        }
        if (!(await waitFor('x'))) {
          throw new TapswitchError('ERR_SETUP',
            `container set-up failed before CMD started (exit ${await status()})`,
            'see the message above (mounting resolv.conf inside the container failed?)');
        }
        progress.destroy();
      },
    };
    return container;
  });
}

/**
 * Kill every process still living in the given network namespace (CMD's background children, for
 * instance), so that `run` leaves nothing behind once CMD exits. Without a PID namespace this means
 * scanning /proc; processes we may not signal or inspect are skipped. Returns how many were killed.
 */
export function killNamespaceLeftovers(netns: { dev: number; ino: number }, exceptPid = process.pid): number {
  let killed = 0;
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === exceptPid) continue;
    try {
      const st = fs.statSync(`/proc/${name}/ns/net`);
      if (st.ino === netns.ino && st.dev === netns.dev) {
        process.kill(Number(name), 'SIGKILL');
        killed++;
      }
    } catch {
      // gone, or not ours to look at
    }
  }
  return killed;
}
