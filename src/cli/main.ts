#!/usr/bin/env node
// The `tapswitch` command: parse arguments, hand the lifecycle to control/runner, turn the outcome
// into an exit status. Every failure ends as one line `tapswitch: <what went wrong>: <what to do>`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_CIDR, DEFAULT_MTU, MAX_MTU, MAX_QUEUES, MIN_MTU, parseCidr, parseDnsForward, parseMtu, parseQueues, planNetwork } from '../control/config';
import { parsePublish } from '../control/publish';
import { ExitStatus, TapswitchError, toTapswitchError } from '../control/errors';
import { Logger, LogLevels, isLogLevel, type LogLevel } from '../control/log';
import type { KernelRunOptions } from '../control/kernel-run';
import { isKernelError, runningAsRoot, selectRunPath, USERSPACE_NETWORK } from '../control/kernel-select';
import type { AttachOptions, CommonOptions, RunOptions } from '../control/runner';
import { formatOptions, parseArgs, usageError, type OptionSpec, type ParsedArgs } from './args';
import { formatExitCodes } from './exit-codes';

const COMMON: OptionSpec[] = [
  { name: 'mtu', short: 'm', value: true, metavar: 'N', help: `MTU of the container's tap0, ${MIN_MTU}-${MAX_MTU} (default ${DEFAULT_MTU})` },
  { name: 'cidr', value: true, metavar: 'CIDR', help: `container network, prefix 1-25 (default ${DEFAULT_CIDR}): container +100, gateway +2, DNS +3` },
  { name: 'disable-host-loopback', value: false, help: 'connections to the gateway address fail instead of reaching the host\'s 127.0.0.1' },
  { name: 'ipv6', short: '6', value: false, help: 'IPv6 too, as slirp4netns -6: fd00::/64 by router advertisement (SLAAC), gateway fd00::2 (the host\'s ::1 unless --disable-host-loopback), DNS fd00::3' },
  { name: 'dns-forward', value: true, metavar: 'ADDR', help: 'upstream resolver for the DNS forwarder, IPv4[:PORT] (default: the host\'s /etc/resolv.conf nameservers)' },
  { name: 'queues', value: true, metavar: 'N', help: `TAP queues, one data-plane worker thread each, 1-${MAX_QUEUES} (default 1)` },
  { name: 'log-level', value: true, metavar: 'LEVEL', help: `${LogLevels.join('|')} (default warn); messages go to stderr` },
  { name: 'stats', value: false, help: 'print the data plane\'s counters to stderr at exit' },
  { name: 'help', short: 'h', value: false, help: 'show this help' },
];

const RUN_OPTIONS: OptionSpec[] = [
  { ...COMMON[0]!, help: `MTU of the container's interface (tap0; eth0 and its host end on the kernel path), ${MIN_MTU}-${MAX_MTU} (default ${DEFAULT_MTU}, or the kernel network's -o mtu)` },
  ...COMMON.slice(1, -1),
  { name: 'publish', short: 'p', value: true, metavar: '[HOSTIP:]HOSTPORT:PORT[/tcp|udp]', help: 'forward a host port (or range, 8000-8010:8000-8010) to the container; repeatable. 127.0.0.1:... is reachable from this host only. A port already taken fails before CMD starts' },
  { name: 'network', value: true, metavar: 'MODE', help: 'userspace: the TAP path; bridge, NAME (a `network create`d one), none, host or container:NAME: the kernel path. Default: bridge as root, userspace otherwise (see "Which path")' },
  { name: 'net', value: true, help: '', hidden: true },
  { name: 'name', value: true, metavar: 'NAME', help: 'kernel path: name the container (for --network container:NAME and `network publish`)' },
  { name: 'ip', value: true, metavar: 'ADDR', help: 'kernel path: the container\'s address on its network (default: the first free one)' },
  { name: 'mac', value: true, metavar: 'MAC', help: 'kernel path: eth0\'s MAC (default: 02:42 + the IPv4 address, as Docker <= 27)' },
  { name: 'mac-address', value: true, help: '', hidden: true },
  { name: 'map-user-only', value: false, help: 'map only yourself (as root) into the container; needed without /etc/subuid and /etc/subgid ranges' },
  ...COMMON.slice(-1),
];

/** Flags only the userspace path has, and why the kernel path has no use for them. */
const USERSPACE_ONLY: Readonly<Record<string, string>> = {
  cidr: 'it sets the userspace network\'s address plan; a kernel network\'s subnet is chosen at `tapswitch network create --subnet CIDR`',
  queues: 'it sets the userspace data plane\'s TAP queues and worker threads; on the kernel path the kernel forwards the packets',
  ipv6: 'kernel networks are IPv4-only for now; the userspace path serves fd00::/64',
  'map-user-only': 'it shapes the rootless container\'s user namespace; the kernel path runs CMD as you, in no new user namespace',
};

/** Flags only the kernel path has, and why the userspace path has no use for them. */
const KERNEL_ONLY: Readonly<Record<string, string>> = {
  name: 'names are for kernel containers (--network container:NAME, `network publish`)',
  ip: 'the userspace container is always at its network\'s +100 (choose the network with --cidr)',
  mac: 'the userspace container\'s tap0 MAC is its kernel\'s own',
  'mac-address': 'the userspace container\'s tap0 MAC is its kernel\'s own',
};

const ATTACH_OPTIONS: OptionSpec[] = [
  { name: 'netns', value: true, metavar: 'PATH', help: 'network namespace file to serve (instead of a PID)' },
  { name: 'userns', value: true, metavar: 'PATH', help: 'user namespace to enter before the network namespace' },
  { name: 'tap', value: true, metavar: 'NAME', help: 'TAP to create or attach to (default tap0)' },
  { name: 'no-configure', value: false, help: 'only bring the TAP up; do not set its address, route and MTU' },
  ...COMMON,
];

function version(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tapswitch') return pkg.version ?? 'unknown';
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

export const PATH_RULE = `Which path \`run\` takes:
  --network userspace            the userspace path, root or not: tap0 in new user+net+mount
                                 namespaces, served by tapswitch's own switch, gateway and NAT.
  --network bridge|NAME          the kernel path: a veth (eth0) on a kernel bridge with nftables NAT,
  --network none|host            as Docker's bridge driver does (needs CAP_NET_ADMIN); none = only lo,
  --network container:NAME       host = no new namespace, container:NAME = a running container's.
  no --network                   bridge as root, userspace otherwise. "Root" = uid 0 with CAP_NET_ADMIN,
                                 in the user namespace that owns this network namespace: real root, or
                                 root of a user+net namespace that plays the host (\`unshare -Urn\`).
                                 A normal user (and \`unshare -Ur\` without -n) gets userspace.
  Flags of one path only are refused on the other, naming why: --cidr, --queues, --map-user-only are
  userspace-only; --name, --ip, --mac are kernel-only. On the kernel path --mtu sets the veth's MTU,
  --dns-forward ADDR is the container's nameserver (default: the host's non-loopback ones), --stats
  prints eth0's counters, --log-level debug shows every ip/nft command; --disable-host-loopback is
  always in force there (the host's 127.0.0.1 is out of reach, even for a forged destination).`;

export function usage(): string {
  return `tapswitch ${version()}: rootless container networking in userspace

Usage:
  tapswitch run [OPTIONS] [-p [HOSTIP:]HOSTPORT:PORT[/tcp|udp]]... [--] CMD [ARGS...]
      Userspace path: run CMD in new user+net+mount namespaces whose only way out is tap0, served
      by tapswitch. Inside: tap0 = network+100, default route via network+2, /etc/resolv.conf ->
      network+3. -p publishes host ports into the container (no root needed).
      tapswitch exits with CMD's status when CMD exits; SIGINT/SIGTERM/SIGHUP are passed to CMD.
  tapswitch run --network bridge|NAME|none|host|container:NAME [--name N] [--ip A] [--mac M]
                [OPTIONS] [-p ...]... [--] CMD [ARGS...]
      Kernel path (rootful): CMD in a network namespace with eth0 on a kernel bridge; its exit
      removes the endpoint and its rules. Same exit statuses and signal passing.
  tapswitch attach [OPTIONS] PID
  tapswitch attach [OPTIONS] --netns PATH [--userns PATH]
      Serve a TAP in an existing network namespace until SIGINT/SIGTERM.
  tapswitch network create|ls|inspect|rm|publish|unpublish ...
      The kernel path's networks (bridge, veth, nftables; needs CAP_NET_ADMIN): see 'tapswitch network help'.
  tapswitch --help | --version

${PATH_RULE}

Options for run:
${formatOptions(RUN_OPTIONS)}

Options for attach:
${formatOptions(ATTACH_OPTIONS.slice(0, 4))}
  (and --mtu, --cidr, --disable-host-loopback, --dns-forward, --queues, --log-level, --stats)

Exit status:
${formatExitCodes()}
`;
}

function common(p: ParsedArgs): CommonOptions {
  const get = (k: string) => p.options.get(k);
  const level = get('log-level') ?? 'warn';
  if (!isLogLevel(level)) {
    throw new TapswitchError('ERR_BAD_VALUE', `invalid log level: ${level}`, `use one of ${LogLevels.join(', ')}`);
  }
  const dns = get('dns-forward');
  return {
    cidr: parseCidr(get('cidr') ?? DEFAULT_CIDR),
    mtu: get('mtu') === undefined ? DEFAULT_MTU : parseMtu(get('mtu') as string),
    hostLoopback: !p.options.has('disable-host-loopback'),
    ipv6: p.options.has('ipv6'),
    ...(dns !== undefined ? { dnsForward: parseDnsForward(dns) } : {}),
    queues: get('queues') === undefined ? 1 : parseQueues(get('queues') as string),
    logLevel: level as LogLevel,
    stats: p.options.has('stats'),
  };
}

/** What `run`'s arguments ask for: the userspace path or the kernel path, with their options. */
export type RunChoice =
  | { path: 'userspace'; options: RunOptions }
  | { path: 'kernel'; options: KernelRunOptions; logLevel: LogLevel };

/**
 * Parse `run` once for both paths, pick the path (control/kernel-select.ts: --network, else root
 * or not) and refuse the flags the chosen path has no use for. `root` is asked only when
 * --network is absent.
 */
export function parseRunArgs(argv: string[], root: () => boolean = runningAsRoot): RunChoice | 'help' {
  const p = parseArgs(argv, RUN_OPTIONS, { stopAtPositional: true, command: 'run' });
  if (p.options.has('help')) return 'help';
  if (p.rest.length === 0) throw usageError('missing command: use `tapswitch run [OPTIONS] -- CMD [ARGS...]`', 'run');
  for (const alias of ['net', 'mac-address'] as const) {
    const v = p.options.get(alias);
    if (v !== undefined) p.options.set(alias === 'net' ? 'network' : 'mac', v);
  }
  const network = p.options.get('network');
  if (network !== undefined && network.length === 0) {
    throw new TapswitchError('ERR_BAD_VALUE', '--network needs a value', 'use userspace, bridge, none, host, container:NAME or a network name');
  }
  const choice = selectRunPath(network, network === undefined ? root() : false);
  const why = network !== undefined ? `--network ${network}`
    : choice.path === 'kernel' ? 'the kernel path, the default as root' : 'the userspace path, the default without root';
  const refuse = (table: Readonly<Record<string, string>>, hint: string): void => {
    for (const [flag, reason] of Object.entries(table)) {
      if (p.options.has(flag)) throw usageError(`--${flag} does not apply to ${why}: ${reason}; ${hint}`, 'run');
    }
  };
  if (choice.path === 'userspace') {
    refuse(KERNEL_ONLY, 'pass --network bridge (or a network name) for the kernel path');
    const c = common(p);
    const guest = planNetwork(c.cidr).guest;
    const publish = (p.all.get('publish') ?? []).flatMap((spec) => parsePublish(spec, guest));
    return { path: 'userspace', options: { ...c, command: p.rest, mapUserOnly: p.options.has('map-user-only'), publish } };
  }
  refuse(USERSPACE_ONLY, `pass --network ${USERSPACE_NETWORK} for the userspace path`);
  const c = common(p);
  const get = (k: string): string | undefined => p.options.get(k);
  const o: KernelRunOptions = {
    network: choice.network, command: p.rest, publish: p.all.get('publish') ?? [],
    hostLoopback: c.hostLoopback, stats: c.stats, logLevel: c.logLevel,
    ...(get('mtu') !== undefined ? { mtu: c.mtu } : {}),
    ...(c.dnsForward !== undefined ? { dnsForward: c.dnsForward } : {}),
  };
  for (const k of ['name', 'ip', 'mac'] as const) {
    const v = get(k);
    if (v !== undefined) o[k] = v;
  }
  return { path: 'kernel', options: o, logLevel: c.logLevel };
}

/** `run`'s options for the userspace path, as a user without root gets them (the kernel path's are an error). */
export function parseRun(argv: string[]): RunOptions | 'help' {
  const c = parseRunArgs(argv, () => false);
  if (c === 'help' || c.path === 'userspace') return c === 'help' ? c : c.options;
  throw usageError(`--network ${c.options.network} is the kernel path's, not the userspace path's`, 'run');
}

export function parseAttach(argv: string[]): AttachOptions | 'help' {
  const p = parseArgs(argv, ATTACH_OPTIONS, { command: 'attach' });
  if (p.options.has('help')) return 'help';
  const positionals = [...p.positionals, ...p.rest];
  const netns = p.options.get('netns');
  if (positionals.length > 1) throw usageError(`unexpected argument ${positionals[1]}`, 'attach');
  const target = positionals[0];
  if (target === undefined && netns === undefined) throw usageError('missing target: pass a PID or --netns PATH', 'attach');
  if (target !== undefined && netns !== undefined) throw usageError('pass either a PID or --netns PATH, not both', 'attach');
  if (target !== undefined && !/^[1-9]\d*$/.test(target)) {
    throw new TapswitchError('ERR_BAD_VALUE', `invalid PID: ${target}`, 'pass a process id, or --netns PATH for a namespace file');
  }
  const userns = p.options.get('userns');
  const tap = p.options.get('tap') ?? 'tap0';
  if (tap.length === 0 || tap.length > 15 || /[\s/]/.test(tap)) {
    throw new TapswitchError('ERR_BAD_VALUE', `invalid interface name: ${tap}`, 'use 1-15 characters without spaces or slashes');
  }
  return {
    ...common(p),
    ...(target !== undefined ? { pid: Number(target) } : {}),
    ...(netns !== undefined ? { netnsPath: netns } : {}),
    ...(userns !== undefined ? { usernsPath: userns } : {}),
    tapName: tap,
    configure: !p.options.has('no-configure'),
  };
}

/** Test hooks; the installed command passes none. */
export interface MainOverrides {
  /** Data-plane worker entry to use instead of dist/src/worker/task.js. */
  workerFile?: string;
}

export async function main(argv: string[], overrides: MainOverrides = {}): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      process.stderr.write(usage());
      return ExitStatus.USAGE;
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(usage());
      return ExitStatus.OK;
    case '-v':
    case '--version':
    case 'version':
      process.stdout.write(`tapswitch ${version()}\n`);
      return ExitStatus.OK;
    case 'network': {
      // The kernel path's networks: cli/network.ts parses and prints, control/kernel-networks.ts acts.
      const { networkCommand } = await import('./network');
      return networkCommand(rest);
    }
    case 'run': {
      const choice = parseRunArgs(rest);
      if (choice === 'help') {
        process.stdout.write(usage());
        return ExitStatus.OK;
      }
      if (choice.path === 'kernel') {
        const { runKernel } = await import('../control/kernel-run');
        return runKernel(choice.options, new Logger(choice.logLevel));
      }
      const o = choice.options;
      // The runner (and with it the native addon) loads only now: help and usage errors work without it.
      const { run } = await import('../control/runner');
      return run({ ...o, ...overrides }, new Logger(o.logLevel));
    }
    case 'attach': {
      const o = parseAttach(rest);
      if (o === 'help') {
        process.stdout.write(usage());
        return ExitStatus.OK;
      }
      const { attach } = await import('../control/runner');
      return attach({ ...o, ...overrides }, new Logger(o.logLevel));
    }
    default:
      if (command.startsWith('-')) throw usageError(`unknown option ${command.split('=')[0]} (options go after the command)`);
      throw usageError(`unknown command ${command}`);
  }
}

/** Run as a command: exit with the status, or print the one-line error and exit with its status. */
export function cli(argv: string[], overrides: MainOverrides = {}): void {
  main(argv, overrides).then(
    (code) => process.exit(code),
    (e: unknown) => {
      if (isKernelError(e)) {
        // The kernel path's coded errors; TAPSWITCH_DEBUG=1 adds the failed ip/nft command.
        process.stderr.write(`tapswitch: ${e.oneLine()}\n`);
        if (process.env.TAPSWITCH_DEBUG && e.command) process.stderr.write(`${e.detail()}\n`);
        process.exit(e.exitCode);
      }
      const err = toTapswitchError(e);
      process.stderr.write(`tapswitch: ${err.oneLine()}\n`);
      if (err.code === 'ERR_INTERNAL' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
      process.exit(err.exitCode);
    },
  );
}

if (require.main === module) cli(process.argv.slice(2));
