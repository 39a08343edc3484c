// The benchmark's "host": a throwaway user+net+mount namespace, so nothing a peer does can reach the
// machine's real network and the run looks the same as root (CI) and as a normal user.
//
// Outside the sandbox (before re-exec) we only check and install the peers (Debian packages, when
// root and missing). Inside:
// - `lo` is up; the iperf3 / request-response servers of "the host" listen there (0.0.0.0).
// - A veth to a dead-end namespace gives the sandbox host 192.0.2.1/24 and a default route via
//   192.0.2.254 (nothing answers there; the dead end has no route anywhere). pasta needs a host
//   interface with an address and a default route to start; it copies both into the container.
// - Every child we start is tracked and killed at exit.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

export const SANDBOX_ENV = 'TSW_BENCH_SANDBOX';
const UNSHARE_SANDBOX = ['--user', '--map-root-user', '--net', '--mount', '--propagation', 'private'];

export const DEADEND_HOST_ADDR = '192.0.2.1';
export const DEADEND_GW = '192.0.2.254';

export function inSandbox(): boolean {
  return process.env[SANDBOX_ENV] === '1';
}

/** Is `cmd` on PATH (runs `cmd --version`-free: a `command -v` lookup). */
export function haveCommand(cmd: string): boolean {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '';
}

/** Debian package that provides each peer command. */
export const PACKAGES: Record<string, string> = { iperf3: 'iperf3', slirp4netns: 'slirp4netns', pasta: 'passt' };

/**
 * Install missing peer packages with apt-get when running as real root; returns a skip reason per
 * command still missing afterwards (empty when everything is there).
 */
export function ensurePeers(log: (s: string) => void): Map<string, string> {
  const missing = Object.keys(PACKAGES).filter((c) => !haveCommand(c));
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (missing.length > 0 && isRoot && haveCommand('apt-get')) {
    const pkgs = missing.map((c) => PACKAGES[c] as string);
    log(`installing ${pkgs.join(' ')} (apt-get install -y)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: ['ignore', 'ignore', 'pipe'], env, encoding: 'utf8' });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'ignore', env });
      r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { stdio: ['ignore', 'ignore', 'pipe'], env, encoding: 'utf8' });
    }
    if (r.status !== 0) log(`apt-get install failed: ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' ')}`);
  }
  const reasons = new Map<string, string>();
  for (const c of Object.keys(PACKAGES)) {
    if (!haveCommand(c)) {
      reasons.set(c, `${c} not installed (Debian package ${PACKAGES[c]}${isRoot ? ': apt-get install failed' : ': run as root to let the benchmark install it, or apt-get install it'})`);
    }
  }
  return reasons;
}

/** Why a sandbox cannot be made, or null. */
export function sandboxUnavailable(): string | null {
  const r = spawnSync('unshare', [...UNSHARE_SANDBOX, '--', 'true'], { encoding: 'utf8' });
  if (r.error) return `unshare not runnable (${r.error.message}); install util-linux`;
  if (r.status !== 0) return `cannot create a user+net+mount namespace (${r.stderr.trim()}); enable unprivileged user namespaces`;
  return null;
}

/** Re-run this script inside a fresh sandbox with the same arguments; returns its exit status. */
export function reexecInSandbox(script: string, args: string[], extraEnv: Record<string, string>): number {
  const r = spawnSync('unshare', [...UNSHARE_SANDBOX, '--', process.execPath, ...process.execArgv, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, ...extraEnv, [SANDBOX_ENV]: '1' },
  });
  return r.status ?? 1;
}

/** Run a command to completion; throws with its stderr on failure. */
export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Like sh() but never throws. */
export function trySh(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

const tracked = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }));
}

export function killAll(): void {
  for (const c of tracked) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  tracked.clear();
}

/** Stop a child: SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
export function stop(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Collect a child's stdout/stderr and wait for it to exit (SIGKILL after timeoutMs). */
export function runToEnd(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const t = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => { stderr += String(e); });
    child.once('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Wait for the first stdout line matching `pred`; rejects if the child exits first or on timeout. */
export function waitForLine(child: ChildProcess, pred: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const onErr = (d: Buffer) => { err += d.toString(); };
    const done = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for output; stderr: ${err.trim()}`));
    }, timeoutMs);
    const onExit = (code: number | null, sig: string | null) => {
      done();
      reject(new Error(`exited (${code ?? sig}) before being ready; stderr: ${err.trim()}`));
    };
    const onData = (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (pred(line)) {
          done();
          resolve(line);
          return;
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

/** A process holding a fresh network namespace (owned by the sandbox's user namespace). */
export async function netnsHolder(): Promise<{ pid: number; netns: string; exec: string[]; child: ChildProcess }> {
  const child = spawnTracked('unshare', ['--net', '--', '/bin/sh', '-c', 'ip link set lo up; echo ready; exec sleep 1000000']);
  await waitForLine(child, (l) => l === 'ready');
  const pid = child.pid as number;
  const netns = `/proc/${pid}/ns/net`;
  return { pid, netns, exec: ['nsenter', `--net=${netns}`, '--'], child };
}

/**
 * A network namespace bound to a file (`unshare --net=FILE`), for peers that open the namespace by
 * path after dropping capabilities (pasta cannot open a /proc/PID/ns file of a process that kept
 * more capabilities than it has). The bind mount lives only in the sandbox's mount namespace.
 */
export function fileNetns(): { netns: string; exec: string[]; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tswbench-'));
  const file = path.join(dir, 'net');
  fs.writeFileSync(file, '');
  sh('unshare', [`--net=${file}`, '--', 'ip', 'link', 'set', 'lo', 'up']);
  return {
    netns: file,
    exec: ['nsenter', `--net=${file}`, '--'],
    remove() {
      trySh('umount', [file]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let deadEnd: ChildProcess | null = null;

/** Inside the sandbox: lo up, ping sockets allowed, the dead-end default route. */
export async function setupInside(): Promise<void> {
  sh('ip', ['link', 'set', 'lo', 'up']);
  try {
    fs.writeFileSync('/proc/sys/net/ipv4/ping_group_range', '0 2147483647');
  } catch {
    // older kernels
  }
  try {
    fs.writeFileSync('/proc/sys/net/ipv4/ip_local_port_range', '10000 65000');
  } catch {
    // keep the default range
  }
  const h = await netnsHolder();
  deadEnd = h.child;
  sh('ip', ['link', 'add', 'bhost0', 'type', 'veth', 'peer', 'name', 'bdead0', 'netns', String(h.pid)]);
  sh('ip', ['addr', 'add', `${DEADEND_HOST_ADDR}/24`, 'dev', 'bhost0']);
  sh('ip', ['link', 'set', 'bhost0', 'up']);
  sh('nsenter', [`--net=${h.netns}`, '--', 'ip', 'link', 'set', 'bdead0', 'up']);
  sh('ip', ['route', 'add', 'default', 'via', DEADEND_GW, 'dev', 'bhost0']);
  process.on('exit', killAll);
}

export function teardownInside(): void {
  if (deadEnd) deadEnd.kill('SIGKILL');
  killAll();
}
