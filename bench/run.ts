// `npm run bench` (node dist/bench/run.js): tapswitch side by side with slirp4netns, pasta and the
// kernel veth path, inside a throwaway user+net+mount namespace that plays the host.
//
//   --duration S   seconds per throughput test (default 5)
//   --repeat N     repetitions of each measurement; the median is reported (default 1)
//   --only LIST    comma-separated systems: tapswitch,slirp4netns,pasta,veth
//   --quick        short tests (2 s, fewer round trips) for a smoke run
//   --out DIR      where results go (default bench/results of the source tree)
//   --render FILE  measure nothing: print the table and rewrite latest.svg from a results JSON
//
// Outside the sandbox it installs missing peers (root + apt-get) and re-executes itself inside.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  ensurePeers, inSandbox, reexecInSandbox, runToEnd, sandboxUnavailable, setupInside, spawnTracked, stop, teardownInside, waitForLine,
} from './sandbox';
import * as iperf3 from './measure/iperf3';
import { cpuSeconds, peakRssMiB } from './measure/proc';
import { median } from './measure/stats';
import { configId, SYSTEMS, type Container, type Peer, type PeerConfig, type SystemName } from './peers/types';
import { tapswitch } from './peers/tapswitch';
import { slirp4netns } from './peers/slirp4netns';
import { pasta } from './peers/pasta';
import { veth } from './peers/veth';
import { formatRatios, formatSpread, formatTable, renderSvg, type BenchDoc, type ConfigInfo, type ResultRow, METRICS } from './report';

const PEERS: Record<SystemName, Peer> = { tapswitch, slirp4netns, pasta, veth };
const RR_TOOL = path.join(__dirname, 'measure', 'rr-tool.js');
const SRC_ROOT = path.join(__dirname, '..', '..');

export const HOST_IPERF_PORT = 5201;
export const HOST_RR_PORT = 5202;
const CONT_IPERF_PORT = 5301;
const CONT_RR_PORT = 5302;

export interface Options {
  duration: number;
  repeat: number;
  only: SystemName[];
  quick: boolean;
  out: string;
  render: string | null;
}

export function parseArgs(argv: string[]): Options {
  const o: Options = { duration: 5, repeat: 1, only: [...SYSTEMS], quick: false, out: path.join(SRC_ROOT, 'bench', 'results'), render: null };
  let durationSet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--duration') {
      o.duration = Number(val());
      durationSet = true;
      if (!Number.isInteger(o.duration) || o.duration < 1) throw new Error('--duration: a whole number of seconds >= 1');
    } else if (a === '--repeat') {
      o.repeat = Number(val());
      if (!Number.isInteger(o.repeat) || o.repeat < 1) throw new Error('--repeat: a whole number >= 1');
    } else if (a === '--only') {
      const names = val().split(',').map((s) => s.trim()).filter((s) => s !== '');
      for (const n of names) if (!(SYSTEMS as readonly string[]).includes(n)) throw new Error(`--only: unknown system ${n} (known: ${SYSTEMS.join(', ')})`);
      o.only = names as SystemName[];
    } else if (a === '--quick') {
      o.quick = true;
    } else if (a === '--out') {
      o.out = path.resolve(val());
    } else if (a === '--render') {
      o.render = path.resolve(val());
    } else if (a === '-h' || a === '--help') {
      throw new Error('help');
    } else {
      throw new Error(`unknown option ${a}`);
    }
  }
  if (o.quick && !durationSet) o.duration = 2;
  return o;
}

const USAGE = 'usage: npm run bench -- [--duration S] [--repeat N] [--only tapswitch,slirp4netns,pasta,veth] [--quick] [--out DIR] [--render FILE.json]';

// ---- the plan ----

export type TaskKind = 'tcp_c2h_1' | 'tcp_h2c_1' | 'tcp_c2h_4' | 'tcp_h2c_4' | 'udp_c2h' | 'rr' | 'crr' | 'pf_tcp' | 'pf_rr32';

const TASK_LABEL: Record<TaskKind, string> = {
  tcp_c2h_1: 'tcp c->h single',
  tcp_h2c_1: 'tcp h->c single',
  tcp_c2h_4: 'tcp c->h 4 streams',
  tcp_h2c_4: 'tcp h->c 4 streams',
  udp_c2h: 'udp c->h',
  rr: 'tcp 1-byte request/response',
  crr: 'tcp connect-request-response',
  pf_tcp: 'port forward tcp h->c',
  pf_rr32: 'port forward 32 clients',
};

export const ALL_TASKS: TaskKind[] = ['tcp_c2h_1', 'tcp_h2c_1', 'tcp_c2h_4', 'tcp_h2c_4', 'udp_c2h', 'rr', 'crr', 'pf_tcp', 'pf_rr32'];

interface PlannedConfig extends PeerConfig {
  id: string;
  tasks: TaskKind[];
}

export function plan(only: readonly SystemName[]): PlannedConfig[] {
  const fwd = [CONT_IPERF_PORT, CONT_RR_PORT];
  const out: PlannedConfig[] = [];
  const add = (system: SystemName, mtu: number, tasks: TaskKind[], queues?: number) => {
    if (!only.includes(system)) return;
    const c: PeerConfig = { system, mtu, forwardPorts: fwd, ...(queues !== undefined ? { queues } : {}) };
    out.push({ ...c, id: configId(c), tasks });
  };
  add('tapswitch', 1500, ALL_TASKS, 1);
  add('tapswitch', 65520, ALL_TASKS, 1);
  add('tapswitch', 1500, ['tcp_c2h_4', 'tcp_h2c_4'], 2);
  add('tapswitch', 65520, ['tcp_c2h_4', 'tcp_h2c_4'], 2);
  add('slirp4netns', 1500, ALL_TASKS);
  add('slirp4netns', 65520, ALL_TASKS);
  add('pasta', 1500, ALL_TASKS);
  add('pasta', 65520, ALL_TASKS);
  add('veth', 1500, ALL_TASKS);
  return out;
}

// ---- measurements ----

/** Metric values from one run of a task. */
export type Sample = Record<string, number>;
export interface TaskOutcome { sample?: Sample; extra?: Record<string, number | string>; na?: string }

class NotApplicable extends Error {}

async function withCpu<T>(pid: number | null, f: () => Promise<T>): Promise<{ r: T; cpu: number }> {
  const before = pid === null ? NaN : cpuSeconds(pid);
  const r = await f();
  const after = pid === null ? NaN : cpuSeconds(pid);
  return { r, cpu: after - before };
}

async function runRrTool(exec: string[], args: string[], timeoutMs: number): Promise<{ n: number; rate: number; p50us: number; p99us: number; errors: number; firstError?: string }> {
  const argv = [...exec, process.execPath, RR_TOOL, ...args];
  const r = await runToEnd(spawnTracked(argv[0] as string, argv.slice(1)), timeoutMs);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.timedOut) throw new Error(`rr-tool ${args[0]} timed out; stderr: ${r.stderr.trim()}`);
  try {
    return JSON.parse(line) as { n: number; rate: number; p50us: number; p99us: number; errors: number; firstError?: string };
  } catch {
    throw new Error(`rr-tool ${args[0]} failed (${r.code ?? r.signal}): ${r.stderr.trim() || line}`);
  }
}

export async function startRrServer(exec: string[], port: number) {
  const argv = [...exec, process.execPath, RR_TOOL, 'server', String(port)];
  const child = spawnTracked(argv[0] as string, argv.slice(1));
  await waitForLine(child, (l) => l.startsWith('listening'), 10_000);
  return child;
}

export async function runTask(kind: TaskKind, c: Container, o: Options): Promise<TaskOutcome> {
  const host: string[] = [];
  const d = o.duration;
  const tcp = async (reverse: boolean, parallel: number): Promise<TaskOutcome> => {
    const { r, cpu } = await withCpu(c.dataPlanePid, () =>
      iperf3.runClient(host, c.exec, { host: c.hostAddr, port: HOST_IPERF_PORT, seconds: d, reverse, parallel }));
    const t = iperf3.parseTcp(r);
    const sample: Sample = { [kind]: t.bitsPerSecond / 1e9 };
    const extra: Record<string, number | string> = { bytes: t.bytes, seconds: t.seconds };
    if (t.retransmits !== null) extra.retransmits = t.retransmits;
    if (Number.isFinite(cpu)) {
      extra.cpuSeconds = cpu;
      extra.cpuCores = cpu / t.seconds;
      extra.cpuSecPerGB = cpu / (t.bytes / 1e9);
      if (kind === 'tcp_c2h_1') sample.cpu_c2h_1 = cpu / (t.bytes / 1e9);
      if (kind === 'tcp_h2c_1') sample.cpu_h2c_1 = cpu / (t.bytes / 1e9);
    }
    return { sample, extra };
  };
  switch (kind) {
    case 'tcp_c2h_1': return tcp(false, 1);
    case 'tcp_h2c_1': return tcp(true, 1);
    case 'tcp_c2h_4': return tcp(false, 4);
    case 'tcp_h2c_4': return tcp(true, 4);
    case 'udp_c2h': {
      const { r, cpu } = await withCpu(c.dataPlanePid, () =>
        iperf3.runClient(host, c.exec, { host: c.hostAddr, port: HOST_IPERF_PORT, seconds: Math.min(d, 3), udpRate: '1G', udpLen: 1400 }));
      const u = iperf3.parseUdp(r);
      const extra: Record<string, number | string> = { sentGbps: u.sentBitsPerSecond / 1e9, lostPackets: u.lostPackets, packets: u.packets, jitterMs: u.jitterMs, target: '1G, 1400-byte datagrams' };
      if (Number.isFinite(cpu)) extra.cpuSecPerGB = cpu / (u.bytes / 1e9);
      return { sample: { udp_c2h: u.receivedBitsPerSecond / 1e9, udp_loss: u.lostPercent }, extra };
    }
    case 'rr': {
      const count = o.quick ? 3000 : 20000;
      const r = await runRrTool(c.exec, ['rr', c.hostAddr, String(HOST_RR_PORT), String(count)], 120_000);
      return { sample: { rr_p50: r.p50us, rr_p99: r.p99us, rr_rate: r.rate / 1000 }, extra: { roundTrips: r.n } };
    }
    case 'crr': {
      const secs = Math.min(d, 3);
      const r = await runRrTool(c.exec, ['crr', c.hostAddr, String(HOST_RR_PORT), String(secs)], (secs + 30) * 1000);
      if (r.n === 0) throw new Error(`no connection succeeded (${r.firstError ?? 'unknown error'})`);
      const extra: Record<string, number | string> = { connections: r.n, p50us: r.p50us, p99us: r.p99us, errors: r.errors };
      if (r.firstError !== undefined) extra.firstError = r.firstError;
      return { sample: { crr_rate: r.rate / 1000 }, extra };
    }
    case 'pf_tcp': {
      const f = c.forward(CONT_IPERF_PORT);
      if ('na' in f) throw new NotApplicable(f.na);
      // Server in the container; the host client sends (host -> container).
      const { r, cpu } = await withCpu(c.dataPlanePid, () => iperf3.runClient(c.exec, host, { host: f.host, port: f.port, seconds: d }));
      const t = iperf3.parseTcp(r);
      const extra: Record<string, number | string> = { bytes: t.bytes };
      if (f.note !== undefined) extra.note = f.note;
      if (Number.isFinite(cpu)) extra.cpuSecPerGB = cpu / (t.bytes / 1e9);
      return { sample: { pf_tcp: t.bitsPerSecond / 1e9 }, extra };
    }
    case 'pf_rr32': {
      const f = c.forward(CONT_RR_PORT);
      if ('na' in f) throw new NotApplicable(f.na);
      const srv = await startRrServer(c.exec, CONT_RR_PORT);
      try {
        const secs = Math.min(d, 3);
        const r = await runRrTool(host, ['load', f.host, String(f.port), '32', String(secs)], (secs + 30) * 1000);
        const extra: Record<string, number | string> = { requests: r.n, p50us: r.p50us, p99us: r.p99us, errors: r.errors };
        if (f.note !== undefined) extra.note = f.note;
        return { sample: { pf_rr32: r.rate / 1000 }, extra };
      } finally {
        await stop(srv, 1000);
      }
    }
  }
}

export const TASK_METRICS: Record<TaskKind, string[]> = {
  tcp_c2h_1: ['tcp_c2h_1', 'cpu_c2h_1'],
  tcp_h2c_1: ['tcp_h2c_1', 'cpu_h2c_1'],
  tcp_c2h_4: ['tcp_c2h_4'],
  tcp_h2c_4: ['tcp_h2c_4'],
  udp_c2h: ['udp_c2h', 'udp_loss'],
  rr: ['rr_p50', 'rr_p99', 'rr_rate'],
  crr: ['crr_rate'],
  pf_tcp: ['pf_tcp'],
  pf_rr32: ['pf_rr32'],
};

function unitOf(metric: string): string {
  return METRICS.find((m) => m.id === metric)?.unit ?? '';
}

function short(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > 200 ? `${one.slice(0, 200)}...` : one;
}

// ---- machine info ----

function machineInfo(): Record<string, string | number> {
  const cpus = os.cpus();
  return {
    kernel: os.release(),
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    nproc: os.availableParallelism(),
    node: process.version,
    memGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    loadavg1AtStart: Math.round(os.loadavg()[0]! * 100) / 100,
    os: (() => {
      try {
        return /PRETTY_NAME="([^"]*)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os.type();
      } catch {
        return os.type();
      }
    })(),
  };
}

function iperfVersion(): string {
  const r = spawnSync('iperf3', ['--version'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n')[0]?.trim() ?? 'unknown';
}

// ---- main ----

function formatDoc(doc: BenchDoc): string {
  const o = doc.options;
  return [
    '',
    `tapswitch benchmark, ${doc.date}, ${doc.machine.cpu}, ${doc.machine.nproc} CPUs, kernel ${doc.machine.kernel}, node ${doc.machine.node}`,
    `duration ${o.duration} s, repeat ${o.repeat}${o.quick ? ', quick' : ''}; peers: ${Object.entries(doc.peers).map(([k, v]) => `${k} ${v}`).join('; ')}`,
    '',
    formatTable(doc),
    '',
    ...(formatSpread(doc) !== '' ? ['Spread of the repetitions behind each median:', formatSpread(doc), ''] : []),
    formatRatios(doc),
    '',
    ...doc.notes.map((n) => `note: ${n}`),
    '',
  ].join('\n');
}

function progress(s: string): void {
  process.stderr.write(s);
}

async function inside(o: Options, installSkips: Record<string, string>): Promise<number> {
  await setupInside();
  const configs = plan(o.only);
  const infos: ConfigInfo[] = [];
  const results: ResultRow[] = [];
  const peers: Record<string, string> = { iperf3: iperfVersion() };
  const notes: string[] = [
    'Medians of --repeat runs. c->h = container to host, h->c = host to container; port forward = host client on 127.0.0.1 -> server in the container.',
    'Latency figures include Node.js event-loop overhead on both ends (the same tool for every system).',
  ];

  // Skip reasons per system.
  const skip = new Map<SystemName, string>();
  if (installSkips.iperf3 !== undefined) for (const s of SYSTEMS) skip.set(s, installSkips.iperf3);
  for (const s of o.only) {
    if (skip.has(s)) continue;
    const cmd = s === 'pasta' ? 'pasta' : s;
    const why = installSkips[cmd] ?? PEERS[s].unavailable();
    if (why !== null && why !== undefined) skip.set(s, why);
    else peers[s] = PEERS[s].version();
  }

  const total = configs.reduce((n, c) => n + (skip.has(c.system) ? 0 : c.tasks.length * o.repeat), 0);
  let step = 0;
  const hostRr = await startRrServer([], HOST_RR_PORT);
  const loadAt = os.loadavg()[0] ?? 0;
  if (loadAt > 0.5) notes.push(`Load average was ${loadAt.toFixed(2)} at the start on ${os.availableParallelism()} CPUs: other work shared the machine, numbers are noisy.`);

  for (const cfg of configs) {
    const info: ConfigInfo = { id: cfg.id, system: cfg.system, mtu: cfg.mtu, ...(cfg.queues !== undefined ? { queues: cfg.queues } : {}) };
    infos.push(info);
    const why = skip.get(cfg.system);
    if (why !== undefined) {
      info.skipped = why;
      progress(`[skip] ${cfg.id}: ${why}\n`);
      continue;
    }
    let container: Container;
    try {
      container = await PEERS[cfg.system].setup(cfg);
    } catch (e) {
      info.skipped = `set-up failed: ${short((e as Error).message)}`;
      progress(`[fail] ${cfg.id} set-up: ${short((e as Error).message)}\n`);
      step += cfg.tasks.length * o.repeat;
      continue;
    }
    try {
      for (const kind of cfg.tasks) {
        const samples: Sample[] = [];
        const extras: Record<string, number | string>[] = [];
        let na: string | undefined;
        for (let rep = 0; rep < o.repeat; rep++) {
          step++;
          progress(`[${step}/${total}] ${cfg.system} mtu${cfg.mtu}${cfg.queues !== undefined && cfg.queues !== 1 ? ` queues${cfg.queues}` : ''} ${TASK_LABEL[kind]}${o.repeat > 1 ? ` (${rep + 1}/${o.repeat})` : ''} ... `);
          try {
            const out = await runTask(kind, container, o);
            if (out.sample) samples.push(out.sample);
            if (out.extra) extras.push(out.extra);
            progress(`${Object.entries(out.sample ?? {}).map(([k, v]) => `${k}=${v.toFixed(k.startsWith('rr_p') ? 0 : 3)}`).join(' ')}\n`);
          } catch (e) {
            na = e instanceof NotApplicable ? e.message : `error: ${short((e as Error).message)}`;
            progress(`${na}\n`);
            if (e instanceof NotApplicable) {
              step += o.repeat - rep - 1;
              break;
            }
          }
        }
        for (const metric of TASK_METRICS[kind]) {
          const vals = samples.map((s) => s[metric]).filter((v): v is number => v !== undefined);
          if (vals.length === 0 && !(metric.startsWith('cpu_') && container.dataPlanePid === null && na === undefined)) {
            results.push({ config: cfg.id, metric, unit: unitOf(metric), samples: [], na: na ?? 'not measured' });
          } else if (vals.length > 0) {
            const row: ResultRow = { config: cfg.id, metric, value: median(vals), unit: unitOf(metric), samples: vals };
            if (extras.length > 0 && metric === TASK_METRICS[kind][0]) row.extra = extras[Math.floor(extras.length / 2)] as Record<string, number | string>;
            if (na !== undefined) row.na = `some repetitions failed: ${na}`;
            results.push(row);
          }
        }
      }
    } finally {
      if (container.dataPlanePid !== null) {
        const rss = peakRssMiB(container.dataPlanePid);
        if (Number.isFinite(rss)) results.push({ config: cfg.id, metric: 'rss_peak', value: rss, unit: 'MiB', samples: [rss] });
      }
      await container.teardown();
    }
  }
  await stop(hostRr, 500);
  teardownInside();

  const date = new Date().toISOString();
  const doc: BenchDoc = {
    schema: 'tapswitch-bench/1',
    date,
    options: { duration: o.duration, repeat: o.repeat, quick: o.quick, only: o.only },
    machine: machineInfo(),
    peers,
    configs: infos,
    results,
    notes,
  };
  const loadEnd = os.loadavg()[0] ?? 0;
  doc.machine.loadavg1AtEnd = Math.round(loadEnd * 100) / 100;

  process.stdout.write(formatDoc(doc));

  fs.mkdirSync(o.out, { recursive: true });
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  fs.writeFileSync(path.join(o.out, 'latest.json'), json);
  fs.writeFileSync(path.join(o.out, `${date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`), json);
  fs.writeFileSync(path.join(o.out, 'latest.svg'), renderSvg(doc));
  process.stderr.write(`results: ${path.join(o.out, 'latest.json')}, ${path.join(o.out, 'latest.svg')}\n`);
  return 0;
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    const m = (e as Error).message;
    if (m === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    process.stderr.write(`bench: ${m}\n${USAGE}\n`);
    return 64;
  }
  if (o.render !== null) {
    const doc = JSON.parse(fs.readFileSync(o.render, 'utf8')) as BenchDoc;
    process.stdout.write(formatDoc(doc));
    fs.mkdirSync(o.out, { recursive: true });
    fs.writeFileSync(path.join(o.out, 'latest.svg'), renderSvg(doc));
    return 0;
  }
  if (inSandbox()) {
    const skips = JSON.parse(process.env.TSW_BENCH_SKIPS ?? '{}') as Record<string, string>;
    return inside(o, skips);
  }
  const skips = ensurePeers((s) => process.stderr.write(`bench: ${s}\n`));
  for (const [cmd, why] of skips) process.stderr.write(`bench: skip: ${why}\n`);
  const noSandbox = sandboxUnavailable();
  if (noSandbox !== null) {
    process.stderr.write(`bench: cannot run: ${noSandbox}\n`);
    return 69;
  }
  return reexecInSandbox(__filename, process.argv.slice(2), { TSW_BENCH_SKIPS: JSON.stringify(Object.fromEntries(skips)) });
}

if (require.main === module) {
  main().then((code) => process.exit(code), (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    teardownInside();
    process.exit(70);
  });
}
