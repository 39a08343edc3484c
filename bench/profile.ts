// Where does tapswitch spend its time? Runs one iperf3 test through `tapswitch run` with V8's CPU
// profiler on (`node --cpu-prof`: the main thread and every worker thread write their own
// .cpuprofile at exit) and prints the top self-time functions per thread.
//
//   node dist/bench/profile.js [--mtu N] [--queues N] [--duration S] [--reverse] [--parallel N] [--udp RATE] [--dir DIR]
//   node dist/bench/profile.js --summarize DIR        (only summarize existing profiles)
//
// Runs inside the same throwaway sandbox as the benchmark (see sandbox.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inSandbox, reexecInSandbox, runToEnd, sandboxUnavailable, setupInside, spawnTracked, stop, teardownInside } from './sandbox';
import * as iperf3 from './measure/iperf3';
import { cpuSeconds } from './measure/proc';
import { TAPSWITCH_CLI } from './peers/tapswitch';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

export interface SelfTime { name: string; location: string; ms: number; share: number }

/** Self time per function (name + location), in ms, largest first. Pure. */
export function selfTimes(p: CpuProfile, root = ''): SelfTime[] {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const msById = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    // timeDeltas[i] is the time since the previous sample; charge the interval that *follows* a
    // sample to it (the last one gets the mean interval).
    const mean = (p.endTime - p.startTime) / Math.max(1, samples.length);
    for (let i = 0; i < samples.length; i++) {
      const id = samples[i] as number;
      const dt = i + 1 < deltas.length ? (deltas[i + 1] as number) : mean;
      msById.set(id, (msById.get(id) ?? 0) + Math.max(0, dt) / 1000);
    }
  } else {
    const total = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    const per = total > 0 ? (p.endTime - p.startTime) / total / 1000 : 0;
    for (const n of p.nodes) msById.set(n.id, (n.hitCount ?? 0) * per);
  }
  const agg = new Map<string, SelfTime>();
  let total = 0;
  for (const [id, ms] of msById) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    const file = f.url === '' ? '' : (root !== '' && f.url.includes(root) ? f.url.slice(f.url.indexOf(root) + root.length) : f.url.replace(/^file:\/\//, ''));
    const location = file === '' ? '' : `${file}:${f.lineNumber + 1}`;
    const name = f.functionName === '' ? '(anonymous)' : f.functionName;
    const key = `${name}@${location}`;
    const e = agg.get(key) ?? { name, location, ms: 0, share: 0 };
    e.ms += ms;
    agg.set(key, e);
    total += ms;
  }
  const out = [...agg.values()].sort((a, b) => b.ms - a.ms);
  for (const e of out) e.share = total > 0 ? e.ms / total : 0;
  return out;
}

/** Self time per source file (node internals grouped as "node:..."), largest first. Pure. */
export function selfTimesByFile(rows: readonly SelfTime[]): { file: string; ms: number; share: number }[] {
  const m = new Map<string, number>();
  for (const r of rows) {
    const file = r.location === '' ? r.name.startsWith('(') ? r.name : '(native)' : r.location.replace(/:\d+$/, '');
    m.set(file, (m.get(file) ?? 0) + r.ms);
  }
  const total = [...m.values()].reduce((a, b) => a + b, 0);
  return [...m.entries()].map(([file, ms]) => ({ file, ms, share: total > 0 ? ms / total : 0 })).sort((a, b) => b.ms - a.ms);
}

export function summarize(dir: string, top = 25): string {
  const root = `${path.join(__dirname, '..', '..')}/`;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  const out: string[] = [];
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
    const rows = selfTimes(p, root);
    const wall = (p.endTime - p.startTime) / 1000;
    const busy = rows.filter((r) => r.name !== '(idle)').reduce((s, r) => s + r.ms, 0);
    out.push(`== ${f}: ${wall.toFixed(0)} ms profiled, ${busy.toFixed(0)} ms not idle`);
    for (const r of rows.slice(0, top)) out.push(`  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}  ${r.location}`);
    out.push('  by file:');
    for (const r of selfTimesByFile(rows).slice(0, 10)) out.push(`  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.file}`);
  }
  return out.join('\n');
}

interface Opts { mtu: number; queues: number; duration: number; reverse: boolean; parallel: number; udp: string | null; dir: string; summarizeOnly: string | null }

function parse(argv: string[]): Opts {
  const o: Opts = { mtu: 1500, queues: 1, duration: 5, reverse: false, parallel: 1, udp: null, dir: '/tmp/tswbench-prof', summarizeOnly: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i] ?? '';
    if (a === '--mtu') o.mtu = Number(v());
    else if (a === '--queues') o.queues = Number(v());
    else if (a === '--duration') o.duration = Number(v());
    else if (a === '--reverse') o.reverse = true;
    else if (a === '--parallel') o.parallel = Number(v());
    else if (a === '--udp') o.udp = v();
    else if (a === '--dir') o.dir = path.resolve(v());
    else if (a === '--summarize') o.summarizeOnly = path.resolve(v());
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

async function profileInside(o: Opts): Promise<void> {
  await setupInside();
  fs.rmSync(o.dir, { recursive: true, force: true });
  fs.mkdirSync(o.dir, { recursive: true });
  const srv = await iperf3.startServer([], 5201);
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: pass it as a flag (worker threads inherit execArgv).
  const args = ['--cpu-prof', `--cpu-prof-dir=${o.dir}`, TAPSWITCH_CLI, 'run', '--network', 'userspace', '--mtu', String(o.mtu), '--queues', String(o.queues), '--',
    'iperf3', ...iperf3.clientArgs({ host: '10.0.2.2', port: 5201, seconds: o.duration, reverse: o.reverse, parallel: o.parallel,
      ...(o.udp !== null ? { udpRate: o.udp } : {}) })];
  const child = spawnTracked(process.execPath, args);
  const pid = child.pid as number;
  let cpuEnd = 0;
  const poll = setInterval(() => {
    const c = cpuSeconds(pid);
    if (Number.isFinite(c)) cpuEnd = c;
  }, 200);
  const r = await runToEnd(child, (o.duration + 30) * 1000);
  clearInterval(poll);
  await stop(srv.child, 500);
  try {
    if (o.udp !== null) {
      const u = iperf3.parseUdp(r.stdout);
      process.stdout.write(`iperf3 UDP ${o.reverse ? 'h->c' : 'c->h'} at ${o.udp}, MTU ${o.mtu}: received ${(u.receivedBitsPerSecond / 1e9).toFixed(3)} Gbit/s, ` +
        `loss ${u.lostPercent.toFixed(1)} %; tapswitch CPU ~${cpuEnd.toFixed(2)} s\n`);
    }
    const t = o.udp !== null ? null : iperf3.parseTcp(r.stdout);
    if (t !== null)
    process.stdout.write(`iperf3 ${o.reverse ? 'h->c' : 'c->h'} x${o.parallel} at MTU ${o.mtu}, ${o.queues} queue(s): ${(t.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, ` +
      `${t.retransmits ?? '?'} retransmits; tapswitch CPU ~${cpuEnd.toFixed(2)} s (${(cpuEnd / (t.bytes / 1e9)).toFixed(2)} s/GB, under the profiler)\n`);
  } catch (e) {
    process.stdout.write(`iperf3 failed: ${(e as Error).message}; stderr: ${r.stderr.trim().slice(0, 500)}\n`);
  }
  teardownInside();
  process.stdout.write(`${summarize(o.dir)}\n`);
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (o.summarizeOnly !== null) {
    process.stdout.write(`${summarize(o.summarizeOnly)}\n`);
    return 0;
  }
  if (inSandbox()) {
    await profileInside(o);
    return 0;
  }
  const why = sandboxUnavailable();
  if (why !== null) {
    process.stderr.write(`profile: ${why}\n`);
    return 69;
  }
  return reexecInSandbox(__filename, process.argv.slice(2), {});
}

if (require.main === module) {
  main().then((c) => process.exit(c), (e) => {
    process.stderr.write(`profile: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(70);
  });
}
