#!/usr/bin/env node
// The `tapswitch` command: parse arguments, hand the lifecycle to control/runner, turn the outcome
// into an exit status. Every failure ends as one line `tapswitch: <what went wrong>: <what to do>`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_CIDR, DEFAULT_MTU, MAX_MTU, MAX_QUEUES, MIN_MTU, parseCidr, parseDnsForward, parseMtu, parseQueues, planNetwork } from '../control/config';
import { parsePublish } from '../control/publish';
import { ExitStatus, TapswitchError, toTapswitchError } from '../control/errors';
import { Logger, LogLevels, isLogLevel, type LogLevel } from '../control/log';
import type { AttachOptions, CommonOptions, RunOptions } from '../control/runner';
import { formatOptions, parseArgs, usageError, type OptionSpec, type ParsedArgs } from './args';
import { formatExitCodes } from './exit-codes';

const COMMON: OptionSpec[] = [
  { name: 'mtu', short: 'm', value: true, metavar: 'N', help: `MTU of the container's tap0, ${MIN_MTU}-${MAX_MTU} (default ${DEFAULT_MTU})` },
  { name: 'cidr', value: true, metavar: 'CIDR', help: `container network, prefix 1-25 (default ${DEFAULT_CIDR}): container +100, gateway +2, DNS +3` },
  { name: 'disable-host-loopback', value: false, help: 'connections to the gateway address fail instead of reaching the host\'s 127.0.0.1' },
  { name: 'dns-forward', value: true, metavar: 'ADDR', help: 'upstream resolver for the DNS forwarder, IPv4[:PORT] (default: the host\'s /etc/resolv.conf nameservers)' },
  { name: 'queues', value: true, metavar: 'N', help: `TAP queues, one data-plane worker thread each, 1-${MAX_QUEUES} (default 1)` },
  { name: 'log-level', value: true, metavar: 'LEVEL', help: `${LogLevels.join('|')} (default warn); messages go to stderr` },
  { name: 'stats', value: false, help: 'print the data plane\'s counters to stderr at exit' },
  { name: 'help', short: 'h', value: false, help: 'show this help' },
];

const RUN_OPTIONS: OptionSpec[] = [
  ...COMMON.slice(0, -1),
  { name: 'publish', short: 'p', value: true, metavar: '[HOSTIP:]HOSTPORT:PORT[/tcp|udp]', help: 'forward a host port (or range, 8000-8010:8000-8010) to the container; repeatable. 127.0.0.1:... is reachable from this host only. A port already taken fails before CMD starts' },
  { name: 'network', value: true, metavar: 'userspace', help: 'userspace (default); bridge, none, host, container:NAME or a network name use the rootful kernel path' },
  { name: 'map-user-only', value: false, help: 'map only yourself (as root) into the container; needed without /etc/subuid and /etc/subgid ranges' },
  ...COMMON.slice(-1),
];

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

export function usage(): string {
  return `tapswitch ${version()}: rootless container networking in userspace

Usage:
  tapswitch run [OPTIONS] [-p [HOSTIP:]HOSTPORT:PORT[/tcp|udp]]... [--] CMD [ARGS...]
      Run CMD in new user+net+mount namespaces whose only way out is tap0, served by tapswitch.
      Inside: tap0 = network+100, default route via network+2, /etc/resolv.conf -> network+3.
      -p publishes host ports into the container (no root needed).
      tapswitch exits with CMD's status when CMD exits; SIGINT/SIGTERM/SIGHUP are passed to CMD.
  tapswitch attach [OPTIONS] PID
  tapswitch attach [OPTIONS] --netns PATH [--userns PATH]
      Serve a TAP in an existing network namespace until SIGINT/SIGTERM.
  tapswitch run --network NAME|bridge|none|host|container:NAME [--name N] [--ip A] [--mac M]
                [--publish [HOSTIP:]HOSTPORT:PORT[/tcp|udp]]... -- CMD [ARGS...]
  tapswitch network create|ls|inspect|rm|publish|unpublish ...
      The rootful kernel path (bridge, veth, nftables; needs CAP_NET_ADMIN): see 'tapswitch network help'.
  tapswitch --help | --version

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
    ...(dns !== undefined ? { dnsForward: parseDnsForward(dns) } : {}),
    queues: get('queues') === undefined ? 1 : parseQueues(get('queues') as string),
    logLevel: level as LogLevel,
    stats: p.options.has('stats'),
  };
}

/**
 * Options that select `run`'s rootful kernel path (cli/network.ts) instead of the TAP path:
 * `--network NAME|bridge|none|host|container:...` (any value but `userspace`) and the flags that only
 * mean something there. `--publish`/`-p` alone is the userspace path's own port forwarding.
 */
const KERNEL_ONLY_FLAGS = new Set(['--name', '--ip', '--mac', '--mac-address']);
const NETWORK_FLAGS = new Set(['--network', '--net']);
const VALUED = new Set([...KERNEL_ONLY_FLAGS, ...NETWORK_FLAGS,
  ...RUN_OPTIONS.filter((o) => o.value).flatMap((o) => [`--${o.name}`, ...(o.short ? [`-${o.short}`] : [])])]);

/** Whether `run`'s options (up to `--` or CMD) ask for the kernel path. */
export function wantsKernelPath(argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--' || !arg.startsWith('-')) return false;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (KERNEL_ONLY_FLAGS.has(flag)) return true;
    if (NETWORK_FLAGS.has(flag)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
      if (value !== 'userspace') return true;
    }
    if (VALUED.has(flag) && flag === arg) i++;
  }
  return false;
}

export function parseRun(argv: string[]): RunOptions | 'help' {
  const p = parseArgs(argv, RUN_OPTIONS, { stopAtPositional: true, command: 'run' });
  if (p.options.has('help')) return 'help';
  if (p.rest.length === 0) throw usageError('missing command: use `tapswitch run [OPTIONS] -- CMD [ARGS...]`', 'run');
  const network = p.options.get('network');
  if (network !== undefined && network !== 'userspace') {
    throw usageError(`--network ${network} is the kernel path's (give it before the other options)`, 'run');
  }
  const c = common(p);
  const guest = planNetwork(c.cidr).guest;
  const publish = (p.all.get('publish') ?? []).flatMap((spec) => parsePublish(spec, guest));
  return { ...c, command: p.rest, mapUserOnly: p.options.has('map-user-only'), publish };
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
      // The rootful kernel path (bridge + veth + nftables) lives in cli/network.ts.
      const { networkCommand } = await import('./network');
      return networkCommand(rest);
    }
    case 'run': {
      if (wantsKernelPath(rest)) {
        const { parseRunKernelArgs, runKernel } = await import('./network');
        return runKernel(parseRunKernelArgs(rest));
      }
      const o = parseRun(rest);
      if (o === 'help') {
        process.stdout.write(usage());
        return ExitStatus.OK;
      }
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
      const err = toTapswitchError(e);
      process.stderr.write(`tapswitch: ${err.oneLine()}\n`);
      if (err.code === 'ERR_INTERNAL' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
      process.exit(err.exitCode);
    },
  );
}

if (require.main === module) cli(process.argv.slice(2));
