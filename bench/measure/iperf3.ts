// iperf3 runs and the parsing of its `-J` output. The parsing is pure (unit-tested with fixtures);
// the runner starts a one-shot server (`-s -1`) per measurement, so a failed test never leaves a
// busy server behind.
import type { ChildProcess } from 'node:child_process';
import { runToEnd, spawnTracked, stop, waitForLine } from '../sandbox';

export interface TcpResult {
  /** Receiver-side goodput, bit/s. */
  bitsPerSecond: number;
  /** Bytes the receiver got (what moved through the data path). */
  bytes: number;
  seconds: number;
  retransmits: number | null;
  streams: number;
}

export interface UdpResult {
  /** What the receiver got, bit/s. */
  receivedBitsPerSecond: number;
  sentBitsPerSecond: number;
  lostPercent: number;
  lostPackets: number;
  packets: number;
  jitterMs: number;
  bytes: number;
  seconds: number;
}

export class Iperf3Error extends Error {}

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Iperf3Error(`iperf3 JSON: ${where} is missing`);
  return v as Json;
}

function num(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Iperf3Error(`iperf3 JSON: ${where}.${key} is not a number`);
  return v;
}

function parseDoc(text: string): Json {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Iperf3Error(`iperf3 output is not JSON: ${text.slice(0, 120)}`);
  }
  const d = obj(doc, 'document');
  if (typeof d.error === 'string') throw new Iperf3Error(`iperf3: ${d.error}`);
  return d;
}

/** Parse a TCP test's `iperf3 -J` output (client side; works with and without -R and -P). */
export function parseTcp(text: string): TcpResult {
  const d = parseDoc(text);
  const end = obj(d.end, 'end');
  const recv = obj(end.sum_received, 'end.sum_received');
  const sent = obj(end.sum_sent, 'end.sum_sent');
  const streams = Array.isArray(end.streams) ? end.streams.length : 1;
  const rt = sent.retransmits;
  return {
    bitsPerSecond: num(recv, 'bits_per_second', 'end.sum_received'),
    bytes: num(recv, 'bytes', 'end.sum_received'),
    seconds: num(recv, 'seconds', 'end.sum_received'),
    retransmits: typeof rt === 'number' ? rt : null,
    streams,
  };
}

/**
 * Parse a UDP test's `iperf3 -u -J` output. iperf3 ≥ 3.10 reports the receiver's view in
 * `end.sum_received`; older versions only have `end.sum` (sender rate + receiver loss), from which
 * the received rate is derived.
 */
export function parseUdp(text: string): UdpResult {
  const d = parseDoc(text);
  const end = obj(d.end, 'end');
  if (end.sum_received !== undefined && end.sum_sent !== undefined) {
    const recv = obj(end.sum_received, 'end.sum_received');
    const sent = obj(end.sum_sent, 'end.sum_sent');
    return {
      receivedBitsPerSecond: num(recv, 'bits_per_second', 'end.sum_received'),
      sentBitsPerSecond: num(sent, 'bits_per_second', 'end.sum_sent'),
      lostPercent: num(recv, 'lost_percent', 'end.sum_received'),
      lostPackets: num(recv, 'lost_packets', 'end.sum_received'),
      packets: num(recv, 'packets', 'end.sum_received'),
      jitterMs: num(recv, 'jitter_ms', 'end.sum_received'),
      bytes: num(recv, 'bytes', 'end.sum_received'),
      seconds: num(recv, 'seconds', 'end.sum_received'),
    };
  }
  const sum = obj(end.sum, 'end.sum');
  const sentBps = num(sum, 'bits_per_second', 'end.sum');
  const lost = num(sum, 'lost_percent', 'end.sum');
  const bytes = num(sum, 'bytes', 'end.sum');
  return {
    receivedBitsPerSecond: sentBps * (1 - lost / 100),
    sentBitsPerSecond: sentBps,
    lostPercent: lost,
    lostPackets: num(sum, 'lost_packets', 'end.sum'),
    packets: num(sum, 'packets', 'end.sum'),
    jitterMs: num(sum, 'jitter_ms', 'end.sum'),
    bytes: bytes * (1 - lost / 100),
    seconds: num(sum, 'seconds', 'end.sum'),
  };
}

export interface Iperf3Server {
  child: ChildProcess;
  port: number;
}

/** Start a one-shot iperf3 server (`exec` prefix places it, e.g. inside a container). */
export async function startServer(exec: string[], port: number): Promise<Iperf3Server> {
  // --forceflush: the "Server listening" line must not sit in stdio's pipe buffer.
  const argv = [...exec, 'iperf3', '-s', '-1', '--forceflush', '-p', String(port)];
  const child = spawnTracked(argv[0] as string, argv.slice(1));
  try {
    await waitForLine(child, (l) => l.includes('Server listening'), 10_000);
  } catch (e) {
    await stop(child, 500);
    throw e;
  }
  return { child, port };
}

export interface ClientOpts {
  host: string;
  port: number;
  seconds: number;
  reverse?: boolean;
  parallel?: number;
  udpRate?: string;
  udpLen?: number;
}

export function clientArgs(o: ClientOpts): string[] {
  const a = ['-c', o.host, '-p', String(o.port), '-t', String(o.seconds), '-J', '--connect-timeout', '5000'];
  if (o.reverse) a.push('-R');
  if (o.parallel !== undefined && o.parallel > 1) a.push('-P', String(o.parallel));
  if (o.udpRate !== undefined) a.push('-u', '-b', o.udpRate, '-l', String(o.udpLen ?? 1400));
  return a;
}

/** Run one client test against a fresh server; returns the client's JSON text. */
export async function runClient(serverExec: string[], clientExec: string[], o: ClientOpts): Promise<string> {
  const srv = await startServer(serverExec, o.port);
  try {
    const argv = [...clientExec, 'iperf3', ...clientArgs(o)];
    const r = await runToEnd(spawnTracked(argv[0] as string, argv.slice(1)), (o.seconds + 25) * 1000);
    if (r.timedOut) throw new Iperf3Error(`iperf3 client timed out after ${o.seconds + 25} s`);
    if (r.stdout.trim() === '') throw new Iperf3Error(`iperf3 client failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
    return r.stdout;
  } finally {
    await stop(srv.child, 1000);
  }
}
