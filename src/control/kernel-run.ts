// `tapswitch run` on the kernel path: CMD in a network namespace of its own with a veth on a
// kernel bridge (or `none`, `host`, `container:NAME`), for as long as CMD runs.
//
//   check the flags fit the mode -> CAP_NET_ADMIN -> hold the published host ports -> driver:
//   netns + veth + rules (one locked transaction) -> private resolv.conf -> CMD via nsenter and
//   `unshare --mount` (its own /sys and resolv.conf, as `ip netns exec` does) -> wait, passing SIGINT/SIGTERM/SIGHUP/SIGQUIT on ->
//   [--stats: eth0's counters] -> driver: endpoint and its rules removed -> ports released ->
//   CMD's status (128+N if signal N killed it).
//
// This process owns the container: its pid + start time are in the record. If it is killed
// instead of ending normally, the next tapswitch command finds the owner gone and reaps the
// endpoint (kernel/reconcile.ts). A signal that arrives before CMD starts abandons set-up: what was
// created is removed and tapswitch exits 128+N without running CMD.
//
// Flags shared with the userspace `run` and what they mean here:
//   --mtu N            MTU of the veth pair (default: the network's `-o mtu`, else 1500)
//   --dns-forward ADDR the container's resolv.conf names ADDR (no forwarder: the container asks it
//                      directly); default: the host's IPv4 nameservers minus loopback ones
//   --publish          DNAT rules + a held host socket, as Docker does
//   --log-level        info: what was set up; debug: every `ip`/`nft` command run
//   --stats            eth0's kernel counters (rx/tx bytes, packets, errors, drops) at exit
//   --disable-host-loopback   always in force here: the host's 127.0.0.1 is never reachable from a
//                      kernel container (its 127.0.0.1 is its own lo; a forged loopback destination
//                      is dropped by the table's input chain, see kernel/nft-rules.ts)
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { DEFAULT_NETWORK, KernelDriver } from '../kernel/driver';
import { KernelError } from '../kernel/errors';
import { setCommandTrace } from '../kernel/exec';
import { requireNetAdmin } from '../kernel/host';
import { releasePorts, reservePort, type Reservation } from '../kernel/hostports';
import { endpointCounters, netnsPath } from '../kernel/links';
import { StateStore } from '../kernel/state';
import { parsePortSpec, type PortSpec } from '../kernel/validate';
import { readHostResolvConf, resolvMountTarget, writePrivateResolvConf, isIPv4, type HostResolvConf, type PrivateFile } from '../netns/resolv';
import type { Logger, LogLevel } from './log';
import { formatStats } from './runner';

export interface KernelRunOptions {
  /** Network name, "bridge", "none", "host", "container:NAME". */
  network: string;
  name?: string;
  ip?: string;
  mac?: string;
  /** `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]` strings. */
  publish: string[];
  /** veth MTU. */
  mtu?: number;
  /** The container's nameserver (IPv4, port 53). */
  dnsForward?: string;
  /** false for `--disable-host-loopback`: nothing to do, the host's loopback is never reachable on this path. */
  hostLoopback?: boolean;
  stats?: boolean;
  logLevel?: LogLevel;
  command: string[];
  /** Called once CMD's netns is ready, before CMD starts (tests, logging). */
  onReady?: (info: { netns?: string; ip?: string; mac?: string }) => void;
  stateDir?: string;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

function signalStatus(sig: NodeJS.Signals): number {
  return 128 + ((osConstants.signals as Record<string, number>)[sig] ?? 0);
}

/**
 * Refuse flags that mean nothing in the chosen mode, before anything is created: one error naming
 * every such flag and why. Pure.
 */
export function checkKernelRunOptions(o: KernelRunOptions): void {
  if (o.command.length === 0) {
    throw new KernelError('ERR_USAGE', 'run needs a command', 'tapswitch run [OPTIONS] -- CMD [ARGS...]');
  }
  if (o.network === 'userspace') {
    throw new KernelError('ERR_INTERNAL', '--network userspace is not the kernel path');
  }
  const given: Array<[string, boolean]> = [
    ['--publish', o.publish.length > 0], ['--ip', o.ip !== undefined], ['--mac', o.mac !== undefined],
    ['--mtu', o.mtu !== undefined], ['--dns-forward', o.dnsForward !== undefined], ['--stats', o.stats === true],
    ['--name', o.name !== undefined],
  ];
  const refuse = (flags: string[], why: string): void => {
    const bad = given.filter(([f, set]) => set && flags.includes(f)).map(([f]) => f);
    if (bad.length === 0) return;
    throw new KernelError(bad.includes('--publish') ? 'ERR_PUBLISH_REFUSED' : 'ERR_BAD_VALUE',
      `${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not allowed with --network ${o.network}`, why);
  };
  if (o.network === 'host') {
    refuse(['--publish', '--ip', '--mac', '--mtu', '--dns-forward', '--stats', '--name'],
      'CMD uses the host\'s network (interfaces, addresses, resolv.conf) as is, and there is no container to name');
  } else if (o.network.startsWith('container:')) {
    refuse(['--publish', '--ip', '--mac', '--mtu', '--stats', '--name'],
      'the joined container owns the network namespace and its endpoint: publish on that container instead');
  } else if (o.network === 'none') {
    refuse(['--publish', '--ip', '--mac', '--mtu', '--dns-forward', '--stats'],
      '`--network none` gives the container only lo');
  }
  if (o.dnsForward !== undefined) {
    const [addr, port] = o.dnsForward.split(':') as [string, string | undefined];
    if (port !== undefined && port !== '53') {
      throw new KernelError('ERR_BAD_VALUE', `--dns-forward ${o.dnsForward}: the kernel path cannot use a port other than 53`,
        'the address goes into the container\'s resolv.conf, which has no port; the userspace path (--network userspace) forwards to any port');
    }
    if (addr.startsWith('127.')) {
      throw new KernelError('ERR_BAD_VALUE', `--dns-forward ${o.dnsForward}: a loopback address is the container's own`,
        'name a resolver the container can reach, e.g. one on the host\'s network or the gateway address');
    }
  }
}

/**
 * The container's resolv.conf on the kernel path: `--dns-forward` if given, else the host's IPv4
 * nameservers minus loopback ones (the container's 127.0.0.1 is its own), with search/options kept.
 * Pure; `warning` says why no nameserver is left, if none is.
 */
export function kernelResolvConf(dnsForward: string | undefined, host: HostResolvConf): { content: string; nameservers: string[]; warning?: string } {
  const nameservers = dnsForward !== undefined ? [dnsForward.split(':')[0]!]
    : host.nameservers.filter((n) => isIPv4(n) && !n.startsWith('127.') && n !== '0.0.0.0');
  const content = ['# written by tapswitch: the host\'s resolvers the container can reach', ...nameservers.map((n) => `nameserver ${n}`),
    ...host.carryOver, ''].join('\n');
  if (nameservers.length > 0) return { content, nameservers };
  const why = host.nameservers.length > 0
    ? `the host's nameservers (${host.nameservers.join(', ')}) are on its loopback or not IPv4, which the container cannot reach`
    : 'the host\'s /etc/resolv.conf names no nameserver';
  return { content, nameservers, warning: `the container has no nameserver: ${why} (pass --dns-forward ADDR)` };
}

/**
 * The shell that prepares CMD's private mount namespace, then becomes CMD (as `ip netns exec`
 * does): a sysfs of CMD's own network namespace on /sys (otherwise /sys/class/net lists the
 * host's interfaces; best effort), and the private resolv.conf (if any) over /etc/resolv.conf.
 */
const MOUNT_SCRIPT = [
  'r=$1; shift',
  'mount -t sysfs -o nosuid,nodev,noexec sysfs /sys 2>/dev/null',
  'if [ -n "$r" ]; then mount --bind "$r" /etc/resolv.conf || exit 125; fi',
  'exec "$@"',
].join('\n');

interface Spawned {
  /** Resolves with CMD's status. */
  status: Promise<number>;
  kill(sig: NodeJS.Signals): void;
}

function spawnCommand(command: string[], netns: string | undefined, resolv: string | undefined): Spawned {
  // nsenter, unshare and sh all exec, so the PID we hold ends up being CMD itself: signals reach
  // it directly, and its exit status is CMD's (sh's 127/126 when CMD is missing or not executable).
  const argv = netns === undefined ? command
    : ['nsenter', `--net=${netnsPath(netns)}`, '--', 'unshare', '--mount', '--propagation', 'private', '--',
      '/bin/sh', '-c', MOUNT_SCRIPT, 'sh', resolv ?? '', ...command];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
  const status = new Promise<number>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') resolve(127);
      else if (e.code === 'EACCES') resolve(126);
      else reject(e);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal ? signalStatus(signal) : 128)));
  });
  return { status, kill: (sig) => { child.kill(sig); } };
}

/** Run CMD kernel-side; returns CMD's exit status. Errors are KernelErrors (coded). */
export async function runKernel(o: KernelRunOptions, log: Logger): Promise<number> {
  checkKernelRunOptions(o);
  const mode = o.network || DEFAULT_NETWORK;
  const ports: PortSpec[] = o.publish.map(parsePortSpec);

  // Signals: before CMD runs, remember the first and abandon set-up; afterwards pass them on.
  let cmd: Spawned | undefined;
  let early: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (cmd) {
      // CMD shares our process group: a Ctrl-C typed at a terminal has reached it already.
      if (sig === 'SIGINT' && process.stdin.isTTY) return;
      log.debug(`passing ${sig} to CMD`);
      cmd.kill(sig);
    } else {
      early ??= sig;
    }
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  if (log.enabled('debug')) setCommandTrace((argv, input) => log.debug(`exec: ${argv.join(' ')}${input ? ` (${input.split('\n').length} lines on stdin)` : ''}`));
  const held: Reservation[] = [];
  let resolv: PrivateFile | undefined;
  try {
    if (mode === 'host') {
      o.onReady?.({});
      cmd = spawnCommand(o.command, undefined, undefined);
      return await cmd.status;
    }
    requireNetAdmin(`run --network ${mode}`,
      'run as root (uid 0 with CAP_NET_ADMIN over this network namespace), or use --network userspace (the default without root)');
    const driver = new KernelDriver(o.stateDir === undefined ? undefined : new StateStore(o.stateDir));

    if (mode !== 'none') {
      const target = resolvMountTarget();
      if (target.kind === 'ok') {
        const conf = kernelResolvConf(o.dnsForward, readHostResolvConf());
        if (conf.warning) log.warn(conf.warning);
        else log.debug(`resolv.conf: nameserver ${conf.nameservers.join(', ')}`);
        resolv = writePrivateResolvConf(conf.content);
      } else {
        log.warn(`leaving the container's /etc/resolv.conf as it is: ${target.reason}`);
      }
    }

    if (mode.startsWith('container:')) {
      const target = driver.findContainer(mode.slice('container:'.length));
      log.info(`joining the network namespace of container ${target.name ?? target.id.slice(0, 12)} (${target.netns})`);
      o.onReady?.({ netns: target.netns });
      await new Promise((resolve) => setImmediate(resolve));
      if (early) return signalStatus(early);
      cmd = spawnCommand(o.command, target.netns, resolv?.path);
      return await cmd.status;
    }

    if (ports.length) driver.checkPublishable(ports);
    for (const p of ports) held.push(await reservePort(p));
    const c = driver.startContainer({
      network: mode, ports,
      ...(o.name !== undefined ? { name: o.name } : {}), ...(o.ip !== undefined ? { ip: o.ip } : {}),
      ...(o.mac !== undefined ? { mac: o.mac } : {}), ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
    });
    try {
      const ep = c.endpoint;
      log.info(ep ? `container ${c.name ?? c.id.slice(0, 12)}: eth0 ${ep.ip} ${ep.mac}${ep.mtu !== undefined ? ` mtu ${ep.mtu}` : ''} on network ${mode} (host end ${ep.hostVeth}), netns ${c.netns}`
        : `container ${c.name ?? c.id.slice(0, 12)}: only lo, netns ${c.netns}`);
      o.onReady?.({ netns: c.netns, ...(ep ? { ip: ep.ip, mac: ep.mac } : {}) });
      // Set-up ran synchronously: let a signal that arrived meanwhile reach onSignal (poll phase) first.
      await new Promise((resolve) => setImmediate(resolve));
      if (early) {
        log.debug(`${early} before CMD started: not running it`);
        return signalStatus(early);
      }
      cmd = spawnCommand(o.command, c.netns, resolv?.path);
      const status = await cmd.status;
      if (o.stats && ep) {
        try {
          const counters = endpointCounters(c.netns);
          process.stderr.write(formatStats(counters, [counters]));
        } catch (e) {
          log.warn(`--stats: cannot read eth0's counters: ${(e as Error).message}`);
        }
      }
      return status;
    } finally {
      driver.stopContainer(c.id);
    }
  } finally {
    releasePorts(held);
    resolv?.remove();
    setCommandTrace(undefined);
    for (const s of FORWARDED) process.off(s, onSignal);
  }
}
