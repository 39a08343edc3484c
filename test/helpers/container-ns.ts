// The set-up the kernel-facing integration tests share (dhcp, tcp-kernel, udp-icmp): a container
// namespace (a nested user+net namespace, the rootless case) held open by a sleeping process, and
// a TAP in it served in this process by TapDevice + Switch + Router. Each test adds its own
// translators through `onForward`, starts the port, and closes what it opened in its `finally`.
// Call these inside the sandbox of sandbox.ts; the native addon is loaded only when serveTap()
// runs, so a skipped test never needs it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type * as Native from '../../native/index';
import type { ForwardFn, Router, RouterConfig } from '../../src/gateway/router';
import type { TapDevice } from '../../src/link/tap';
import type { Switch, TapPort } from '../../src/switch/switch';
import type { DataPlaneConfig } from '../../src/worker/protocol';
import { track, waitForLine } from './sandbox';

/** Run to completion without blocking the event loop (the TAP is served on this thread). */
export function run(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

/** slirp4netns's network: 10.0.2.0/24, gateway .2, DNS .3, guest .100, leases from .15. */
export function testConfig(overrides: Partial<DataPlaneConfig> = {}): DataPlaneConfig {
  return {
    mtu: 1500, network: 0x0a000200, prefixLength: 24, gateway: 0x0a000202, dns: 0x0a000203, guest: 0x0a000264,
    dhcpStart: 0x0a00020f, dhcpCount: 16, gatewayMac: [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02], hostLoopback: true,
    dnsUpstreams: [], logLevel: 'warn',
    ...overrides,
  };
}

export interface Container {
  /** The process holding the namespaces open (tracked: sandbox cleanup kills it). */
  holder: ChildProcess;
  pid: number;
  /** Spawn a command inside the container's user+net namespace (stdout/stderr piped, tracked). */
  inContainer(args: string[]): ChildProcess;
}

export async function startContainer(): Promise<Container> {
  const holder = track(spawn('unshare', ['--user', '--map-root-user', '--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000000'],
    { stdio: ['ignore', 'pipe', 'inherit'] }));
  await waitForLine(holder, (l) => l === 'ready');
  const pid = holder.pid as number;
  const inContainer = (args: string[]) => track(spawn('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] }));
  return { holder, pid, inContainer };
}

/** The guest kernel's /proc/net/snmp row for `proto` ('Tcp', 'Udp'...) by name; {} when absent. */
export function guestSnmp(pid: number, proto: string): Record<string, number> {
  const r = spawnSync('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', 'cat', '/proc/net/snmp'], { encoding: 'utf8' });
  const l = r.stdout.split('\n').filter((x) => x.startsWith(`${proto}:`));
  const res: Record<string, number> = {};
  if (l.length === 2) {
    const names = l[0]!.split(/\s+/);
    const vals = l[1]!.split(/\s+/);
    names.forEach((n, i) => { if (i > 0) res[n] = Number(vals[i]); });
  }
  return res;
}

export interface ServedTap {
  native: typeof Native;
  tap: Native.OpenTapResult;
  dev: TapDevice;
  counters: Record<string, number>;
  sw: Switch;
  /** Not started yet: call port.start(sw) once the translators exist. */
  port: TapPort;
  router: Router;
}

/**
 * Open tap0 (one queue, vnet header, CSUM/TSO offloads, lo up) in the container and serve it with
 * a Switch + Router. `guestLink`: 'configured' gives the guest cfg.guest/24 and a default route
 * via the gateway in the same visit; 'up' only brings the TAP up (a DHCP client configures it).
 */
export async function serveTap(pid: number, cfg: DataPlaneConfig, guestLink: 'configured' | 'up',
  onForward: ForwardFn): Promise<ServedTap> {
  const { native } = await import('../../src/link/native');
  const { TapDevice } = await import('../../src/link/tap');
  const { Switch, TapPort } = await import('../../src/switch/switch');
  const { Router } = await import('../../src/gateway/router');
  const tap = native.openTap({
    netns: `/proc/${pid}/ns/net`, userns: `/proc/${pid}/ns/user`, name: 'tap0', queues: 1, vnetHdr: true,
    offloads: native.TUN_F.CSUM | native.TUN_F.TSO4 | native.TUN_F.TSO6, loopbackUp: true,
    ...(guestLink === 'configured'
      ? { link: { mtu: cfg.mtu, address: cfg.guest, prefixLength: cfg.prefixLength, gateway: cfg.gateway } }
      : { up: true }),
  });
  const dev = new TapDevice(tap.fds[0]!, { vnetHdr: tap.vnetHdr, name: 'tap0' });
  const counters: Record<string, number> = {};
  const sw = new Switch({ counters });
  const port = new TapPort(1, dev);
  sw.addPort(port);
  const routerCfg: RouterConfig = cfg;
  const router = new Router(routerCfg, { switch: sw, counters, offloads: tap.vnetHdr, onForward });
  return { native, tap, dev, counters, sw, port, router };
}
