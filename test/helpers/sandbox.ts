// The integration harness: every integration test FILE runs inside its own throwaway
// user+net+mount namespace that plays "the host", so the machine's real network is never touched
// and the suite runs the same as root (CI) and as a normal user.
//
// How: a test file calls `ensureSandbox(__filename)` before defining tests. Outside a sandbox that
// re-executes the same file (same node flags) under `unshare --user --map-root-user --net --mount
// --propagation private` with stdio inherited and exits with its status. node:test's runner talks to
// the file's process through stdout and the NODE_TEST_CONTEXT environment variable, both inherited,
// so the re-executed file reports its tests to the runner exactly as if it had not moved (verified
// with Node 20: counts, failures and skips come through). Inside, we are root of the sandbox with
// a single mapped id; `lo` is brought up.
//
// Topology helpers (all inside the sandbox):
// - makeOutside(): an "outside" network namespace joined by a veth: host side 198.51.100.1/24,
//   outside 198.51.100.2/24 plus 198.51.100.3-9 for "other servers". No default route anywhere, so
//   every other destination is unroutable.
// - startServer(): run one of test/helpers/servers/*.js on the host or outside, wait for its ready line.
// - Everything started is killed by cleanup(), which also runs at process exit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { after, test } from 'node:test';

export const HOST_ADDR = '198.51.100.1';
export const OUTSIDE_ADDR = '198.51.100.2';
/** Extra addresses on the outside veth, for "other servers". */
export const OUTSIDE_EXTRA = ['198.51.100.3', '198.51.100.4', '198.51.100.5', '198.51.100.6', '198.51.100.7', '198.51.100.8', '198.51.100.9'];

export const ROOT = path.join(__dirname, '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const SERVERS = path.join(__dirname, 'servers');
/** The CLI wired to the stand-in data plane (see standin-cli.ts). */
export const STANDIN_CLI = path.join(__dirname, 'standin-cli.js');

const UNSHARE_SANDBOX = ['--user', '--map-root-user', '--net', '--mount', '--propagation', 'private'];

function sandboxUnavailable(): string | null {
  const r = spawnSync('unshare', [...UNSHARE_SANDBOX, '--', 'true'], { encoding: 'utf8' });
  if (r.error) return `unshare not runnable (${r.error.message}); install util-linux`;
  if (r.status !== 0) return `cannot create a user+net+mount namespace (${r.stderr.trim()}); enable unprivileged user namespaces`;
  return null;
}

/**
 * Re-exec `filename` inside a fresh sandbox unless already inside one. Outside, this never returns
 * (the process exits with the sandboxed run's status), except when no sandbox can be made: then it
 * registers one skipped test saying why and returns false.
 */
export function ensureSandbox(filename: string): boolean {
  if (process.env.TSW_IN_SANDBOX === '1') {
    setupInside();
    return true;
  }
  const why = sandboxUnavailable();
  if (why) {
    test(`integration sandbox for ${path.basename(filename)}`, { skip: why }, () => {});
    return false;
  }
  const r = spawnSync('unshare', [...UNSHARE_SANDBOX, '--', process.execPath, ...process.execArgv, filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TSW_IN_SANDBOX: '1' },
  });
  process.exit(r.status ?? 1);
}

function setupInside(): void {
  sh('ip', ['link', 'set', 'lo', 'up']);
  // Let ping sockets (ICMPv6 ones too) work for our group in this namespace (Debian's default is
  // "nobody"). Only a gid mapped in the sandbox may be named: a wider range is refused (EINVAL).
  const gid = process.getgid?.() ?? 0;
  fs.writeFileSync('/proc/sys/net/ipv4/ping_group_range', `${gid} ${gid}`);
  // If the outer process dies (the test runner killed it on a timeout or cancellation), it cannot
  // take us along: notice being orphaned and exit, killing what we started, instead of running on.
  const outer = process.ppid;
  setInterval(() => {
    if (process.ppid !== outer) process.exit(1);
  }, 500).unref();
  // Servers and namespace holders would keep the event loop (and so the test file) alive: kill them
  // once the file's tests are done, and in any case at exit.
  after(cleanup);
  process.on('exit', cleanup);
}

/** Run a command to completion; throws with its stderr on failure. */
export function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(opts.input !== undefined ? { input: opts.input } : {}) });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

const tracked = new Set<ChildProcess>();

/** Spawn and remember a process so cleanup() can kill it. */
export function track(child: ChildProcess): ChildProcess {
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

export function cleanup(): void {
  for (const c of tracked) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  tracked.clear();
}

/** Where a command runs: the sandbox host, or inside another namespace's network. */
export interface Place {
  /** Prefix for commands run there (e.g. nsenter --net=...). Empty for the host. */
  prefix: string[];
  name: string;
}

export const HOST: Place = { prefix: [], name: 'host' };

export function inPlace(place: Place, cmd: string, args: string[]): [string, string[]] {
  const full = [...place.prefix, cmd, ...args];
  return [full[0] as string, full.slice(1)];
}

export function shIn(place: Place, cmd: string, args: string[]): string {
  const [c, a] = inPlace(place, cmd, args);
  return sh(c, a);
}

export function spawnIn(place: Place, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const [c, a] = inPlace(place, cmd, args);
  return track(spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }));
}

/** Wait for the first line of stdout matching `pred`; rejects if the process exits first or on timeout. */
export function waitForLine(child: ChildProcess, pred: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for output; stderr: ${err}`)), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    const onData = (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (pred(line)) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          resolve(line);
          return;
        }
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code ?? signal}) before it was ready; stderr: ${err}`));
    });
  });
}

export interface Server {
  proc: ChildProcess;
  port: number;
  /** Lines the server printed after its ready line (e.g. the DNS server's query log). */
  lines: string[];
  stop(): void;
}

/** Start test/helpers/servers/<script>.js at `place` and wait until it listens. */
export async function startServer(place: Place, script: string, args: string[] = []): Promise<Server> {
  const file = path.join(SERVERS, script.endsWith('.js') ? script : `${script}.js`);
  const proc = spawnIn(place, process.execPath, [file, ...args]);
  const line = await waitForLine(proc, (l) => l.startsWith('{"ready":true'));
  const lines: string[] = [];
  let buf = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  return { proc, port: (JSON.parse(line) as { port: number }).port, lines, stop: () => proc.kill('SIGKILL') };
}

export interface Outside extends Place {
  pid: number;
  netnsPath: string;
  /** The veth between the sandbox host (hostIf) and the outside (outsideIf). */
  hostIf: string;
  outsideIf: string;
}

let outsideCount = 0;

/** Create the "outside" namespace and its veth link to the host (see the header comment). */
export async function makeOutside(): Promise<Outside> {
  const holder = track(spawn('unshare', ['--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000000'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await waitForLine(holder, (l) => l === 'ready');
  const pid = holder.pid as number;
  const n = outsideCount++;
  const hostIf = `tsw-h${n}`;
  const outIf = `tsw-o${n}`;
  const netnsPath = `/proc/${pid}/ns/net`;
  const place: Outside = { pid, netnsPath, prefix: ['nsenter', `--net=${netnsPath}`], name: 'outside', hostIf, outsideIf: outIf };
  sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', outIf, 'netns', String(pid)]);
  sh('ip', ['addr', 'add', `${HOST_ADDR}/24`, 'dev', hostIf]);
  sh('ip', ['link', 'set', hostIf, 'up']);
  shIn(place, 'ip', ['link', 'set', 'lo', 'up']);
  shIn(place, 'ip', ['addr', 'add', `${OUTSIDE_ADDR}/24`, 'dev', outIf]);
  for (const a of OUTSIDE_EXTRA) shIn(place, 'ip', ['addr', 'add', `${a}/24`, 'dev', outIf]);
  shIn(place, 'ip', ['link', 'set', outIf, 'up']);
  return place;
}

/** IPv6 addresses of an outside made by makeOutside() after addOutsideIpv6(): there, and the sandbox host's side. */
export const OUTSIDE_ADDR6 = '2001:db8::1';
export const HOST_ADDR6 = '2001:db8::2';

/**
 * Give an outside (and the sandbox host's end of its veth) IPv6 addresses on 2001:db8::/64, without
 * duplicate address detection so they are usable at once. Idempotent (`ip addr replace`).
 */
export function addOutsideIpv6(o: Outside): Outside {
  sh('ip', ['-6', 'addr', 'replace', `${HOST_ADDR6}/64`, 'dev', o.hostIf, 'nodad']);
  shIn(o, 'ip', ['-6', 'addr', 'replace', `${OUTSIDE_ADDR6}/64`, 'dev', o.outsideIf, 'nodad']);
  return o;
}

/** Replace /etc/resolv.conf in this sandbox's private mount namespace. */
export function useResolvConf(content: string): void {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'tsw-test-'));
  const file = path.join(dir, 'resolv.conf');
  fs.writeFileSync(file, content);
  let target = '/etc/resolv.conf';
  try {
    target = fs.realpathSync('/etc/resolv.conf');
  } catch {
    // dangling or absent: mount over the path itself
  }
  sh('mount', ['--bind', file, target]);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
}

/**
 * Run test/helpers/servers/probe.js at `place` (or with a command prefix, e.g. the container's
 * `tapswitch run --`) and return its JSON result. Asynchronous, so servers' output keeps flowing.
 */
export function probe(place: Place, args: string[], timeoutMs = 30_000): Promise<Record<string, unknown>> {
  const child = spawnIn(place, process.execPath, [path.join(SERVERS, 'probe.js'), ...args]);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`probe ${args.join(' ')} timed out; stderr: ${err}`));
    }, timeoutMs);
    child.once('close', () => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, unknown>);
      } catch {
        reject(new Error(`probe ${args.join(' ')} printed no result; stdout: ${out} stderr: ${err}`));
      }
    });
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the tapswitch CLI at `place`, collecting its output. */
export function runCli(args: string[], opts: { place?: Place; timeoutMs?: number; env?: NodeJS.ProcessEnv; entry?: string; onSpawn?: (c: ChildProcess) => void } = {}): Promise<CliResult> {
  const child = spawnIn(opts.place ?? HOST, process.execPath, [opts.entry ?? CLI, ...args], { env: opts.env ?? process.env });
  opts.onSpawn?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tapswitch ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Why tests that need a TAP cannot run here, or null when they can. */
export function tapMissing(): string | null {
  if (!fs.existsSync(path.join(ROOT, 'build', 'Release', 'tapswitch_native.node'))) return 'native addon not built (npm ci)';
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return '/dev/net/tun not accessible to this user (sudo chmod 0666 /dev/net/tun)';
  }
  return null;
}

/** Why tests that need the real data plane cannot run here, or null when they can. */
export function dataPlaneMissing(): string | null {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'worker', 'task.js'))) return 'data-plane worker dist/src/worker/task.js not built yet';
  return tapMissing();
}

/**
 * Which CLI entry lifecycle tests (exit codes, signals, link set-up) use: the real one, or the
 * stand-in data plane when TSW_TEST_STANDIN=1 or the real worker does not exist yet. `note` says
 * which, for the test's diagnostics.
 */
export function lifecycleCli(): { entry: string; note: string } {
  if (process.env.TSW_TEST_STANDIN === '1') return { entry: STANDIN_CLI, note: 'stand-in data plane (TSW_TEST_STANDIN=1)' };
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'worker', 'task.js'))) {
    return { entry: STANDIN_CLI, note: 'stand-in data plane: dist/src/worker/task.js not built yet' };
  }
  return { entry: CLI, note: 'real data plane' };
}
