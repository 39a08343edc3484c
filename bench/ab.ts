// A/B comparisons on a busy machine: several builds of tapswitch (and optionally peers) measured
// interleaved, round by round, in one sandbox, so that load from other work hits every variant alike.
//
//   node dist/bench/ab.js --variant base=/tmp/tsw-base --variant new=. [--variant new-x=.,ENV=1]
//                         [--peer slirp4netns] [--peer veth] [--tests tcp_h2c_1,udp_c2h,rr]
//                         [--mtu 1500] [--queues 1] [--duration 5] [--repeat 5]
//
// A variant is NAME=DIR[,ENV=VALUE...]: DIR holds dist/src/cli/main.js and build/Release (a copy of
// an older build, or the source tree), ENV entries are set for that variant's tapswitch process;
// the pseudo-entry @queues=N overrides --queues for that variant (q1 vs q2 of one build).
// Each round sets every system up afresh, runs every test once, tears it down; the order of the
// systems rotates from round to round. The report gives per system the median, min and max, and
// per variant the median of the per-round ratios to the first variant (paired in time, the most
// robust figure when the load swings), and the load average at each round's start.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { inSandbox, reexecInSandbox, sandboxUnavailable, setupInside, spawnTracked, stop, teardownInside, waitForLine } from './sandbox';
import { median } from './measure/stats';
import { peakRssMiB } from './measure/proc';
import { HOST_RR_PORT, runTask, startRrServer, TASK_METRICS, type Options, type Sample, type TaskKind } from './run';
import type { Container, Peer, SystemName } from './peers/types';
import { slirp4netns } from './peers/slirp4netns';
import { pasta } from './peers/pasta';
import { veth } from './peers/veth';

interface Variant { name: string; dir: string; env: Record<string, string> }
interface AbOptions {
  variants: Variant[];
  peers: SystemName[];
  tests: TaskKind[];
  mtu: number;
  queues: number;
  duration: number;
  repeat: number;
  /** Print kernel drop counters around each test (host UDP, the container's tap0/eth0). */
  diag: boolean;
}

const PEERS: Partial<Record<SystemName, Peer>> = { slirp4netns, pasta, veth };
const TASKS: readonly TaskKind[] = ['tcp_c2h_1', 'tcp_h2c_1', 'tcp_c2h_4', 'tcp_h2c_4', 'udp_c2h', 'rr', 'crr', 'pf_tcp', 'pf_rr32'];

export function parseAbArgs(argv: string[]): AbOptions {
  const o: AbOptions = { variants: [], peers: [], tests: ['tcp_h2c_1'], mtu: 1500, queues: 1, duration: 5, repeat: 5, diag: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--variant') {
      const [head, ...envs] = v().split(',');
      const eq = (head ?? '').indexOf('=');
      if (eq <= 0) throw new Error('--variant NAME=DIR[,ENV=VALUE...]');
      const env: Record<string, string> = {};
      for (const e of envs) {
        const k = e.indexOf('=');
        if (k <= 0) throw new Error(`--variant: bad environment entry ${e}`);
        env[e.slice(0, k)] = e.slice(k + 1);
      }
      o.variants.push({ name: head!.slice(0, eq), dir: path.resolve(head!.slice(eq + 1)), env });
    } else if (a === '--peer') {
      const p = v() as SystemName;
      if (PEERS[p] === undefined) throw new Error(`--peer: one of ${Object.keys(PEERS).join(', ')}`);
      o.peers.push(p);
    } else if (a === '--tests') {
      const t = v().split(',').filter((s) => s !== '') as TaskKind[];
      for (const k of t) if (!TASKS.includes(k)) throw new Error(`--tests: unknown ${k} (known: ${TASKS.join(', ')})`);
      o.tests = t;
    } else if (a === '--mtu') o.mtu = Number(v());
    else if (a === '--queues') o.queues = Number(v());
    else if (a === '--duration') o.duration = Number(v());
    else if (a === '--repeat') o.repeat = Number(v());
    else if (a === '--diag') o.diag = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (o.variants.length === 0) throw new Error('at least one --variant NAME=DIR');
  return o;
}

const helpCache = new Map<string, boolean>();
/** Builds that also have the rootful kernel path need `--network userspace` when run as root. */
function supportsUserspaceFlag(cli: string): boolean {
  let v = helpCache.get(cli);
  if (v === undefined) {
    const r = spawnSync(process.execPath, [cli, 'run', '--help'], { encoding: 'utf8' });
    v = /--network userspace/.test(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    helpCache.set(cli, v);
  }
  return v;
}

/** Kernel counters that say where datagrams were lost: host UDP and the container's first link. */
function dropCounters(c: Container): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const snmp = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = snmp[0]!.split(/\s+/).slice(1);
    const vals = snmp[1]!.split(/\s+/).slice(1).map(Number);
    names.forEach((n, i) => { if (['InDatagrams', 'RcvbufErrors', 'InErrors', 'SndbufErrors'].includes(n)) out[`host.${n}`] = vals[i]!; });
  } catch { /* no snmp */ }
  const r = spawnSync(c.exec[0]!, [...c.exec.slice(1), 'cat', '/proc/net/dev'], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^\s*(\w+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    out[`${m[1]}.rxPackets`] = f[1]!; out[`${m[1]}.rxDrop`] = f[3]!; out[`${m[1]}.txPackets`] = f[9]!; out[`${m[1]}.txDrop`] = f[11]!;
    break;
  }
  return out;
}

async function setupVariant(v: Variant, mtu: number, queues: number, ports: number[]): Promise<Container> {
  const cli = path.join(v.dir, 'dist', 'src', 'cli', 'main.js');
  const args = [cli, 'run', ...(supportsUserspaceFlag(cli) ? ['--network', 'userspace'] : []), '--mtu', String(mtu), '--queues', String(queues)];
  for (const p of ports) args.push('--publish', `${p}:${p}`);
  args.push('--', '/bin/sh', '-c', 'echo $$; exec sleep 1000000');
  const env: Record<string, string | undefined> = { ...process.env, ...v.env };
  delete env['@queues'];
  const child = spawnTracked(process.execPath, args, { env });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const line = await waitForLine(child, (l) => /^\d+$/.test(l.trim()), 20_000);
  const netns = `/proc/${Number(line.trim())}/ns/net`;
  return {
    exec: ['nsenter', `--net=${netns}`, '--'],
    hostAddr: '10.0.2.2',
    forward: (p) => ({ host: '127.0.0.1', port: p }),
    dataPlanePid: child.pid ?? null,
    async teardown() {
      await stop(child, 5000);
      if (stderr.trim() !== '') process.stderr.write(`  ${v.name} stderr: ${stderr.trim().split('\n').slice(-5).join('\n  ')}\n`);
    },
  };
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
}

async function inside(o: AbOptions): Promise<void> {
  await setupInside();
  const hostRr = await startRrServer([], HOST_RR_PORT);
  const systems = [...o.variants.map((v) => v.name), ...o.peers.map((p) => `${p}@${o.mtu}`)];
  const opts: Options = { duration: o.duration, repeat: 1, only: [], quick: false, out: '', render: null };
  /** samples[system][metric][round] (NaN when it failed). */
  const samples = new Map<string, Map<string, number[]>>();
  for (const s of systems) samples.set(s, new Map());
  const loads: number[] = [];
  for (let round = 0; round < o.repeat; round++) {
    loads.push(os.loadavg()[0] ?? 0);
    const order = systems.map((_, i) => systems[(i + round) % systems.length]!);
    for (const name of order) {
      const variant = o.variants.find((v) => v.name === name);
      let c: Container;
      try {
        c = variant ? await setupVariant(variant, o.mtu, Number(variant.env['@queues'] ?? o.queues), [5301, 5302])
          : await PEERS[o.peers.find((p) => `${p}@${o.mtu}` === name)!]!.setup({
            system: o.peers.find((p) => `${p}@${o.mtu}` === name)!, mtu: o.mtu, forwardPorts: [5301, 5302] });
      } catch (e) {
        process.stderr.write(`[${round + 1}] ${name}: set-up failed: ${(e as Error).message}\n`);
        continue;
      }
      try {
        for (const t of o.tests) {
          let s: Sample = {};
          let cpu = NaN;
          const before = o.diag ? dropCounters(c) : {};
          try {
            const out = await runTask(t, c, opts);
            s = out.sample ?? {};
            const e = out.extra?.cpuSecPerGB;
            if (typeof e === 'number') cpu = e;
          } catch (e) {
            process.stderr.write(`[${round + 1}] ${name} ${t}: ${(e as Error).message}\n`);
          }
          const m = samples.get(name)!;
          for (const metric of TASK_METRICS[t].filter((x) => !x.startsWith('cpu_'))) {
            if (!m.has(metric)) m.set(metric, []);
            m.get(metric)![round] = s[metric] ?? NaN;
          }
          if (c.dataPlanePid !== null) {
            const k = `${t}.cpuSecPerGB`;
            if (!m.has(k)) m.set(k, []);
            m.get(k)![round] = cpu;
          }
          if (o.diag) {
            const after = dropCounters(c);
            process.stderr.write(`  counters: ${Object.keys(after).map((k) => `${k}+${after[k]! - (before[k] ?? 0)}`).join(' ')}\n`);
          }
          process.stderr.write(`[${round + 1}/${o.repeat}] load ${fmt(loads[round]!)} ${name.padEnd(16)} ${t.padEnd(10)} ` +
            `${Object.entries(s).map(([k, x]) => `${k}=${fmt(x)}`).join(' ')}${Number.isFinite(cpu) ? ` cpu=${fmt(cpu)}s/GB` : ''}\n`);
        }
      } finally {
        if (c.dataPlanePid !== null) {
          const m = samples.get(name)!;
          if (!m.has('rssPeakMiB')) m.set('rssPeakMiB', []);
          m.get('rssPeakMiB')![round] = peakRssMiB(c.dataPlanePid);
        }
        await c.teardown();
      }
    }
  }
  await stop(hostRr, 500);
  teardownInside();

  const metrics = [...new Set([...samples.values()].flatMap((m) => [...m.keys()]))];
  const base = systems[0]!;
  const lines: string[] = [];
  lines.push(`A/B: ${o.repeat} rounds, ${o.duration} s, MTU ${o.mtu}, queues ${o.queues}; load at round starts: ${loads.map(fmt).join(' ')}`);
  lines.push(`${'metric'.padEnd(22)}${systems.map((s) => s.padStart(30)).join('')}`);
  for (const metric of metrics) {
    const cells = systems.map((s) => {
      const xs = (samples.get(s)!.get(metric) ?? []).filter((x) => Number.isFinite(x));
      if (xs.length === 0) return '-'.padStart(30);
      const med = median(xs);
      let cell = `${fmt(med)} [${fmt(Math.min(...xs))}..${fmt(Math.max(...xs))}]`;
      if (s !== base) {
        const a = samples.get(base)!.get(metric) ?? [];
        const b = samples.get(s)!.get(metric) ?? [];
        const ratios: number[] = [];
        for (let r = 0; r < o.repeat; r++) if (Number.isFinite(a[r]) && Number.isFinite(b[r]) && a[r] !== 0) ratios.push(b[r]! / a[r]!);
        if (ratios.length > 0) cell += ` ${fmt(median(ratios))}x`;
      }
      return cell.padStart(30);
    });
    lines.push(`${metric.padEnd(22)}${cells.join('')}`);
  }
  lines.push(`(median [min..max]; Nx = median over rounds of the ratio to ${base} in the same round)`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<number> {
  let o: AbOptions;
  try {
    o = parseAbArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`ab: ${(e as Error).message}\n`);
    return 64;
  }
  if (inSandbox()) {
    await inside(o);
    return 0;
  }
  const why = sandboxUnavailable();
  if (why !== null) {
    process.stderr.write(`ab: ${why}\n`);
    return 69;
  }
  return reexecInSandbox(__filename, process.argv.slice(2), {});
}

if (require.main === module) {
  main().then((c) => process.exit(c), (e) => {
    process.stderr.write(`ab: ${(e as Error).stack ?? String(e)}\n`);
    teardownInside();
    process.exit(70);
  });
}
