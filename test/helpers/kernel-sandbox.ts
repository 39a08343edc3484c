// Sandbox for the kernel driver's integration tests.
//
// A test file calls `enterKernelSandbox(__filename)` first. Outside a sandbox it re-runs the same
// file under `unshare --user --map-root-user --net --mount --propagation private` and exits with
// its status; node:test's runner still sees the results (stdout and NODE_TEST_CONTEXT are
// inherited). Inside, we hold CAP_NET_ADMIN over a private network namespace that plays the host,
// /run is a private tmpfs (so `ip netns` and the state directory never touch the machine's), and
// TAPSWITCH_STATE_DIR points into it. Nothing here can reach the machine's real network.
//
// Topology: an "outside" namespace (held by an `unshare --net` child, entered with nsenter) joined
// to the host by a veth: host 198.51.100.1/24, outside 198.51.100.2/24. Outside routes the Docker
// pools back to the host, so "no direct access to container addresses" is proven by the firewall,
// not by a missing route. Servers answer `<name>: you are <remote address>` so tests prove NAT.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { test } from 'node:test';

export const HOST_IP = '198.51.100.1';
export const OUTSIDE_IP = '198.51.100.2';
/** The `tapswitch` command (main.js): `network ...` and `run ...` both go through it. */
export const KERNEL_CLI = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');
const SANDBOX_FLAGS = ['--user', '--map-root-user', '--net', '--mount', '--propagation', 'private'];

export function enterKernelSandbox(filename: string): boolean {
  if (process.env.TSW_KERNEL_SANDBOX === '1') {
    inside();
    return true;
  }
  const probe = spawnSync('unshare', [...SANDBOX_FLAGS, '--', 'true'], { encoding: 'utf8' });
  const why = probe.error ? `unshare missing (${probe.error.message}): install util-linux`
    : probe.status !== 0 ? `no user+net+mount namespace here: ${probe.stderr.trim()}`
      : missingTools();
  if (why) {
    test(`kernel sandbox for ${path.basename(filename)}`, { skip: why }, () => {});
    return false;
  }
  const r = spawnSync('unshare', [...SANDBOX_FLAGS, '--', process.execPath, ...process.execArgv, filename, ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, TSW_KERNEL_SANDBOX: '1' } });
  process.exit(r.status ?? 1);
}

function missingTools(): string | null {
  for (const [tool, pkg] of [['ip', 'iproute2'], ['nft', 'nftables'], ['nsenter', 'util-linux']] as const) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
    if (r.error) return `${tool} not installed (Debian package ${pkg})`;
  }
  return null;
}

function inside(): void {
  process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
  sh('mount', ['-t', 'tmpfs', 'tmpfs', '/run']);
  process.env.TAPSWITCH_STATE_DIR = '/run/tapswitch';
  sh('ip', ['link', 'set', 'dev', 'lo', 'up']);
  process.on('exit', killAll);
}

export function sh(cmd: string, args: readonly string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(c: T): T {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

export function killAll(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch { /* gone */ }
  }
  children.clear();
}

/** A network namespace to run things in: [] for the sandbox host, nsenter for the others. */
export interface Where {
  name: string;
  prefix: string[];
}

export const HOST: Where = { name: 'host', prefix: [] };

export function netnsWhere(name: string, netns: string): Where {
  return { name, prefix: ['nsenter', `--net=/run/netns/${netns}`, '--'] };
}

export function lines(c: ChildProcess, onLine: (l: string) => void): void {
  let buf = '';
  c.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

export function waitLine(c: ChildProcess, re: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = '';
    c.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    lines(c, (l) => {
      if (re.test(l)) {
        clearTimeout(t);
        resolve(l);
      }
    });
    c.once('exit', (code, sig) => {
      clearTimeout(t);
      reject(new Error(`exited (${code ?? sig}) before printing ${re}; stderr: ${err}`));
    });
  });
}

export interface Outside extends Where {
  pid: number;
}

/** The outside namespace and its veth (host `tswt-h0` 198.51.100.1, outside `eth0` 198.51.100.2). */
export async function makeOutside(): Promise<Outside> {
  const holder = track(spawn('unshare', ['--net', '--', 'sleep', '100000'], { stdio: 'ignore' }));
  const pid = holder.pid!;
  // wait until the holder has its own netns
  const mine = fs.readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 200; i++) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/ns/net`) !== mine) break;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  const o: Outside = { name: 'outside', pid, prefix: ['nsenter', `--net=/proc/${pid}/ns/net`, '--'] };
  sh('ip', ['link', 'add', 'name', 'tswt-h0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(pid)]);
  sh('ip', ['addr', 'add', `${HOST_IP}/24`, 'dev', 'tswt-h0']);
  sh('ip', ['link', 'set', 'dev', 'tswt-h0', 'up']);
  const inO = (args: string[]): string => sh(o.prefix[0]!, [...o.prefix.slice(1), 'ip', ...args]);
  inO(['link', 'set', 'dev', 'lo', 'up']);
  inO(['addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0']);
  inO(['link', 'set', 'dev', 'eth0', 'up']);
  for (const pool of ['172.16.0.0/12', '192.168.0.0/16', '10.0.0.0/8']) inO(['route', 'add', pool, 'via', HOST_IP]);
  return o;
}

/** `<name>: you are <addr>` on TCP PORT (and UDP PORT when udp=1) on every address; prints "ready". */
export const SERVER_JS = `
const [name, port, udp] = process.argv.slice(1);
const net = require('node:net');
let pending = udp === '1' ? 2 : 1;
const ready = () => { if (--pending === 0) console.log('ready'); };
net.createServer((s) => { s.on('error', () => {}); s.end(name + ': you are ' + s.remoteAddress.replace(/^::ffff:/, '') + '\\n'); })
  .listen(Number(port), '0.0.0.0', ready);
if (udp === '1') {
  const u = require('node:dgram').createSocket('udp4');
  u.on('message', (m, r) => u.send(name + ': you are ' + r.address + '\\n', r.port, r.address));
  u.bind(Number(port), '0.0.0.0', ready);
}
`;

/** One request; prints the reply line or `ERR <code>`. */
export const CLIENT_JS = `
const [host, port, proto, ms, localPort] = process.argv.slice(1);
const limit = Number(ms || 1500);
const fail = (c) => { console.log('ERR ' + c); process.exit(0); };
setTimeout(() => fail('TIMEOUT'), limit).unref();
if (proto === 'udp') {
  const u = require('node:dgram').createSocket('udp4');
  u.on('message', (m) => { process.stdout.write(String(m)); process.exit(0); });
  u.on('error', (e) => fail(e.code));
  const go = () => u.send('hi', Number(port), host);
  if (localPort) u.bind(Number(localPort), go); else go();
} else {
  let got = '';
  const s = require('node:net').connect(Number(port), host);
  s.on('data', (d) => { got += d; });
  s.on('end', () => { process.stdout.write(got); process.exit(0); });
  s.on('error', (e) => fail(e.code));
}
`;

/** Ask a server at host:port from `where`; the reply line (trimmed) or `ERR <code>`. */
export function ask(where: Where, host: string, port: number, proto: 'tcp' | 'udp' = 'tcp', ms = 1500, localPort?: number): string {
  const argv = [...where.prefix, process.execPath, '-e', CLIENT_JS, host, String(port), proto, String(ms),
    ...(localPort !== undefined ? [String(localPort)] : [])];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: ms + 5000 });
  if (r.error) throw r.error;
  return r.stdout.trim();
}

/** Start a reporting server at `where`; resolves once it listens. */
export async function startServer(where: Where, name: string, port: number, udp = false): Promise<ChildProcess> {
  const argv = [...where.prefix, process.execPath, '-e', SERVER_JS, name, String(port), udp ? '1' : '0'];
  const c = track(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitLine(c, /^ready$/);
  return c;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the tapswitch CLI to completion. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []): CliResult {
  const argv = [...prefix, process.execPath, KERNEL_CLI, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Start `run ...` in the background (a container); resolves once CMD printed a line matching `ready`. */
export async function startRun(args: string[], ready: RegExp = /^ready$/, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const c = track(spawn(process.execPath, [KERNEL_CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
  await waitLine(c, ready, 20_000);
  return c;
}

export function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((r) => c.once('exit', (code) => r(code)));
}

/** What must look the same before and after: links and nft tables of the sandbox host, netns files. */
export function snapshot(): { links: string; tables: string; netns: string[] } {
  const links = sh('ip', ['-br', 'link']).split('\n').map((l) => l.split(/\s+/)[0]).filter(Boolean).sort().join('\n');
  const tables = sh('nft', ['list', 'tables']).trim();
  let netns: string[] = [];
  try {
    netns = fs.readdirSync('/run/netns').sort();
  } catch { /* none yet */ }
  return { links, tables, netns };
}
