// The pieces gso-kernel.test.ts drives the TCP translator with, against the guest kernel's TCP:
// - serveObserved(): tap0 in a container namespace (vnet header, CSUM/TSO offloads, given MTU)
//   served in this process by TapDevice -> ObservedDevice (frame log + loss injection) -> Switch +
//   Router + TcpTranslator, like container-ns.ts's serveTap() with the observer in between.
// - HostEnds: the host's side of every transfer, in this process on 127.0.0.1 (the guest reaches
//   it through the gateway 10.0.2.2): `down` answers a request line `<id>\n` with that transfer's
//   bytes written exactly as specified (a list of write() sizes in one tick, or a bulk stream paced
//   by 'drain'); `up` reads `<id>\n` + bytes and records their count and SHA-256.
// - GUEST_CLIENT: the container's side (run with node inside the container's namespaces).
// - guestNetstat(): the guest kernel's /proc/net/snmp and /proc/net/netstat counters.
// Transfer bytes are deterministic: det(seed, off, len)[i] = ((off + i) * 7 + seed) % 251.
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import type { TcpTranslator } from '../../src/translate/tcp';
import type { Router } from '../../src/gateway/router';
import type { DataPlaneConfig } from '../../src/worker/protocol';
import type { TapDevice } from '../../src/link/tap';
import { ObservedDevice } from './observed-tap';

export function det(seed: number, off: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = ((off + i) * 7 + seed) % 251;
  return b;
}

/** SHA-256 of det(seed, 0, n), hashed in 1 MiB pieces. */
export function detSha(seed: number, n: number): string {
  const h = createHash('sha256');
  for (let o = 0; o < n; o += 1 << 20) h.update(det(seed, o, Math.min(1 << 20, n - o)));
  return h.digest('hex');
}

/**
 * How one side writes a transfer: these write() sizes back to back in one tick, or a paced bulk
 * stream; then, if `tail` is given, once everything so far has left the socket and 300 ms have
 * passed (the connection is idle), the `tail` write() sizes in one tick. Then end().
 */
export interface WriteSpec { seed: number; writes?: number[]; bulk?: number; tail?: number[] }

export function specBytes(s: WriteSpec): number {
  const sum = (a: number[] | undefined) => (a ?? []).reduce((x, y) => x + y, 0);
  return (s.bulk ?? sum(s.writes)) + sum(s.tail);
}

/** Write a spec's bytes to a socket, then end it. */
export function writeSpec(sock: net.Socket, s: WriteSpec): void {
  let off = 0;
  const finish = (): void => {
    if (!s.tail) { sock.end(); return; }
    const idle = (): void => {
      if (sock.writableLength > 0) { setTimeout(idle, 20); return; }
      setTimeout(() => {
        for (const n of s.tail ?? []) { sock.write(det(s.seed, off, n)); off += n; }
        sock.end();
      }, 300);
    };
    idle();
  };
  if (s.bulk !== undefined) {
    const total = s.bulk;
    const pump = (): void => {
      while (off < total) {
        const n = Math.min(256 * 1024, total - off);
        const ok = sock.write(det(s.seed, off, n));
        off += n;
        if (!ok) { sock.once('drain', pump); return; }
      }
      finish();
    };
    pump();
    return;
  }
  for (const n of s.writes ?? []) { sock.write(det(s.seed, off, n)); off += n; }
  finish();
}

export interface UpResult { n: number; sha: string }

export class HostEnds {
  readonly down: net.Server;
  readonly up: net.Server;
  readonly downSpecs = new Map<string, WriteSpec>();
  readonly upResults = new Map<string, UpResult>();
  readonly errors: string[] = [];

  constructor() {
    this.down = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', (e) => this.errors.push(`down: ${e.message}`));
      let pre = '';
      const onData = (d: Buffer): void => {
        pre += d.toString('latin1');
        const i = pre.indexOf('\n');
        if (i < 0) return;
        s.off('data', onData);
        const spec = this.downSpecs.get(pre.slice(0, i));
        if (!spec) { this.errors.push(`down: unknown transfer ${pre.slice(0, i)}`); s.destroy(); return; }
        s.resume();
        writeSpec(s, spec);
      };
      s.on('data', onData);
    });
    this.up = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', (e) => this.errors.push(`up: ${e.message}`));
      let id: string | null = null;
      let pre = Buffer.alloc(0);
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => {
        if (id === null) {
          pre = Buffer.concat([pre, d]);
          const i = pre.indexOf(10);
          if (i < 0) return;
          id = pre.subarray(0, i).toString('latin1');
          d = pre.subarray(i + 1);
        }
        h.update(d);
        n += d.length;
      });
      s.on('end', () => {
        if (id !== null) this.upResults.set(id, { n, sha: h.digest('hex') });
        s.end('ok\n');
      });
    });
  }

  async listen(): Promise<{ down: number; up: number }> {
    const l = (srv: net.Server) => new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
    return { down: await l(this.down), up: await l(this.up) };
  }

  close(): void { this.down.close(); this.up.close(); }
}

/**
 * Runs in the container: argv[2] is JSON {host, transfers: [{id, kind: 'down'|'up', port, seed,
 * writes?, bulk?}], parallel?}. Prints one JSON line per transfer: down -> {id, port, n, sha} of
 * what arrived; up -> {id, port, reply} once the host answered (after our FIN).
 */
export const GUEST_CLIENT = `
const net = require('node:net');
const crypto = require('node:crypto');
const spec = JSON.parse(process.argv[2]);
function det(seed, off, len) { const b = Buffer.allocUnsafe(len); for (let i = 0; i < len; i++) b[i] = ((off + i) * 7 + seed) % 251; return b; }
function writeSpec(s, t) {
  let off = 0;
  const finish = () => {
    if (!t.tail) return void s.end();
    const idle = () => {
      if (s.writableLength > 0) return void setTimeout(idle, 20);
      setTimeout(() => { for (const n of t.tail) { s.write(det(t.seed, off, n)); off += n; } s.end(); }, 300);
    };
    idle();
  };
  if (t.bulk !== undefined) {
    const pump = () => {
      while (off < t.bulk) { const n = Math.min(262144, t.bulk - off); const ok = s.write(det(t.seed, off, n)); off += n; if (!ok) return void s.once('drain', pump); }
      finish();
    };
    pump();
    return;
  }
  for (const n of t.writes) { s.write(det(t.seed, off, n)); off += n; }
  finish();
}
function one(t) {
  return new Promise((resolve) => {
    const s = net.connect({ host: spec.host, port: t.port });
    const h = crypto.createHash('sha256');
    let n = 0; let reply = ''; let port = 0;
    s.on('connect', () => {
      port = s.localPort;
      if (t.kind === 'down') s.write(t.id + '\\n');
      else { s.write(t.id + '\\n'); writeSpec(s, t); }
    });
    s.on('data', (d) => { if (t.kind === 'down') { h.update(d); n += d.length; } else reply += d.toString(); });
    s.on('end', () => {
      if (t.kind === 'down') resolve({ id: t.id, port, n, sha: h.digest('hex') });
      else resolve({ id: t.id, port, reply });
    });
    s.on('error', (e) => resolve({ id: t.id, port, error: e.code || e.message }));
  });
}
(async () => {
  if (spec.parallel) { for (const r of await Promise.all(spec.transfers.map(one))) console.log(JSON.stringify(r)); }
  else for (const t of spec.transfers) console.log(JSON.stringify(await one(t)));
})();
`;

/**
 * Runs in the container: a server on :8080 that accepts one connection and does not read it until
 * a line arrives on its stdin (the test says when), then reads everything and answers
 * "sha256 <hex> <n>" after the client's FIN. Prints "ready" when listening, "accepted" per client.
 */
export const GUEST_LAZY_SERVER = `
const net = require('node:net');
const crypto = require('node:crypto');
let conn = null; let go = false;
const start = () => {
  if (!conn || !go) return;
  const h = crypto.createHash('sha256'); let n = 0;
  conn.on('data', (d) => { h.update(d); n += d.length; });
  conn.on('end', () => conn.end('sha256 ' + h.digest('hex') + ' ' + n + '\\n'));
  conn.resume();
};
const srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => { conn = s; console.log('accepted'); start(); });
process.stdin.on('data', () => { go = true; start(); });
srv.listen(8080, '0.0.0.0', () => console.log('ready'));
`;

/** The guest kernel's counters: {Tcp: {...}, TcpExt: {...}, Ip: {...}, ...} from snmp and netstat. */
export function guestNetstat(pid: number): Record<string, Record<string, number>> {
  const res: Record<string, Record<string, number>> = {};
  for (const file of ['/proc/net/snmp', '/proc/net/netstat']) {
    const r = spawnSync('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', 'cat', file], { encoding: 'utf8' });
    const lines = r.stdout.split('\n').filter(Boolean);
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const vals = lines[i + 1]!.split(/\s+/);
      const proto = names[0]!.replace(/:$/, '');
      const row: Record<string, number> = res[proto] ?? {};
      names.forEach((nm, k) => { if (k > 0) row[nm] = Number(vals[k]); });
      res[proto] = row;
    }
  }
  return res;
}

/** b - a for every counter of `proto`. */
export function netstatDelta(a: Record<string, Record<string, number>>, b: Record<string, Record<string, number>>, proto: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b[proto] ?? {})) out[k] = v - (a[proto]?.[k] ?? 0);
  return out;
}

export interface ObservedTap {
  tap: { fds: number[]; vnetHdr: boolean };
  dev: TapDevice;
  obs: ObservedDevice;
  tcp: TcpTranslator;
  router: Router;
  counters: Record<string, number>;
  /** warn/error lines the translator logged. */
  problems: string[];
  close(): void;
}

/**
 * tap0 in the container `pid` (one queue, vnet header, CSUM/TSO4/TSO6, cfg.mtu, cfg.guest/24,
 * default route via the gateway), served here through an ObservedDevice by Switch + Router +
 * TcpTranslator. The native addon is loaded only when this runs.
 */
export async function serveObserved(pid: number, cfg: DataPlaneConfig): Promise<ObservedTap> {
  const { native } = await import('../../src/link/native');
  const { TapDevice } = await import('../../src/link/tap');
  const { Switch, TapPort } = await import('../../src/switch/switch');
  const { Router } = await import('../../src/gateway/router');
  const { TcpTranslator } = await import('../../src/translate/tcp');
  const tap = native.openTap({
    netns: `/proc/${pid}/ns/net`, userns: `/proc/${pid}/ns/user`, name: 'tap0', queues: 1, vnetHdr: true,
    offloads: native.TUN_F.CSUM | native.TUN_F.TSO4 | native.TUN_F.TSO6, loopbackUp: true,
    link: { mtu: cfg.mtu, address: cfg.guest, prefixLength: cfg.prefixLength, gateway: cfg.gateway },
  });
  const dev = new TapDevice(tap.fds[0]!, { vnetHdr: tap.vnetHdr, name: 'tap0' });
  const obs = new ObservedDevice(dev);
  const counters: Record<string, number> = {};
  const sw = new Switch({ counters });
  const port = new TapPort(1, obs);
  sw.addPort(port);
  let tcp: TcpTranslator | null = null;
  const router = new Router(cfg, { switch: sw, counters, offloads: tap.vnetHdr,
    onForward: (f, e, ip) => { if (ip.protocol === 6) tcp?.onPacket(f, e, ip); } });
  const problems: string[] = [];
  const log = {
    enabled: (l: string) => l === 'warn' || l === 'error',
    log: (level: string, msg: string) => { if (level === 'warn' || level === 'error') problems.push(`${level}: ${msg}`); },
  };
  tcp = new TcpTranslator({ config: cfg, sink: router, counters, log });
  port.start(sw);
  const t = tcp;
  return { tap, dev, obs, tcp: t, router, counters, problems, close: () => { t.close(); dev.close(); } };
}
