// Command line of `tapswitch-slirp4netns [OPTION]... PID|PATH [TAPNAME]`, the slirp4netns drop-in.
//
// Theory of operation
// -------------------
// RootlessKit, Podman, Buildah and nerdctl start slirp4netns with GNU getopt_long conventions, so
// this parser follows getopt_long rather than tapswitch's own parser (src/cli/args.ts):
//
//   - options and positionals in any order (argv is permuted); `--` ends the options;
//     a lone `-` is a positional;
//   - `--opt=value` and `--opt value`; a required value is taken from the next word even when it
//     starts with `-` (`-e -1` is exit-fd "-1", an error, not a missing value);
//   - short options cluster: `-c6`, `-ce 3`, `-ce3`, `-r3`;
//   - long options may be abbreviated to any unique prefix (`--disable-h`); an exact name always
//     wins (`--outbound-addr` is not ambiguous with `--outbound-addr6`);
//   - a repeated option: the last one wins; `-h` / `-v` act as soon as they are reached, so
//     `-h --bogus` prints help while `--bogus -h` is an error.
//
// Values are checked the moment their option is reached (fds, MTU, --userns-path) or after the scan
// (CIDR, MAC, positionals), in slirp4netns's order and with its message texts, so scripts and
// humans see the same errors. Every error is exit status 1 (slirp4netns's), never tapswitch's own
// sysexits codes: clients only look at zero / non-zero.
//
// Where tapswitch differs (all documented in the compatibility table of the README):
//   - TAPNAME is optional and defaults to `tap0` (slirp4netns 1.2.0 requires it);
//   - `--netns-type` must be `pid` or `path` (slirp4netns treats any other word as `path`);
//   - `--cidr`, `--macaddress`, `--outbound-addr` and the API socket path are checked here, before
//     anything starts (slirp4netns checks them after forking);
//   - a MAC must have exactly six groups and must not be multicast (the kernel would refuse it);
//   - unimplemented features (SLIRP4NETNS_FEATURES in slirp4netns-help.ts) are refused with a
//     clear message rather than silently ignored: a user asking for a sandbox must not get none;
//   - `--target-type=netns` is accepted, `bess` is refused.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import { SLIRP4NETNS_IPV6, parseCidr, planNetwork, ipToU32, u32ToIp, type NetworkPlan } from '../control/config';
import { isTapswitchError } from '../control/errors';
import type { Slirp4netnsOptions as ServeOptions } from '../control/slirp4netns-mode';
import {
  SLIRP4NETNS_FEATURES, SLIRP4NETNS_PROG, formatSlirp4netnsHelp, formatSlirp4netnsVersion,
  type Slirp4netnsFeatureSet,
} from './slirp4netns-help';

export const SLIRP4NETNS_DEFAULT_MTU = 1500;
export const SLIRP4NETNS_MAX_MTU = 65521;
export const SLIRP4NETNS_DEFAULT_CIDR = '10.0.2.0/24';
export const SLIRP4NETNS_DEFAULT_TAPNAME = 'tap0';
/** The smallest MTU an IPv6 link may have (RFC 8200 §5). */
export const IPV6_MIN_MTU = 1280;
/** sizeof(sockaddr_un.sun_path): the path plus its NUL must fit. */
export const UNIX_PATH_MAX = 108;
/** The exit status of every argument error (slirp4netns's EXIT_FAILURE). */
export const SLIRP4NETNS_EXIT_USAGE = 1;

export type NetnsType = 'pid' | 'path';

/** `--outbound-addr` / `--outbound-addr6`: an address, either given or taken from a named interface. */
export interface OutboundAddr {
  /** What the user typed. */
  spec: string;
  /** The IPv4 (IPv6) address to bind outgoing sockets to. */
  address: string;
  /** The interface it came from, when an interface name was given. */
  ifname?: string;
}

/** The parsed command line: what serving needs, plus what only the front end uses. */
export interface Slirp4netnsOptions extends ServeOptions {
  netnsType: NetnsType;
  outboundAddr: OutboundAddr | null;
  /** `--outbound-addr6`: an IPv6 address, given or taken from a named interface. */
  outboundAddr6: OutboundAddr | null;
  /** The CIDR text as given (or the default). */
  cidr: string;
  enableSandbox: boolean;
  enableSeccomp: boolean;
  /** Lines slirp4netns prints on stdout while parsing (`WARNING: ...`), for the caller to print. */
  warnings: string[];
}

export type Slirp4netnsCommand =
  | { kind: 'run'; options: Slirp4netnsOptions }
  | { kind: 'help' }
  | { kind: 'version' };

/** An argument error: print `message` (and the usage when `showUsage`), exit 1. */
export class Slirp4netnsArgError extends Error {
  readonly exitCode = SLIRP4NETNS_EXIT_USAGE;
  readonly showUsage: boolean;
  constructor(message: string, showUsage = true) {
    super(message);
    this.name = 'Slirp4netnsArgError';
    this.showUsage = showUsage;
  }
}

/** Host facts the parser looks at; injectable for tests. */
export interface Slirp4netnsParseEnv {
  /** Whether a path exists (access(F_OK)). */
  pathExists?: (p: string) => boolean;
  /** The host's interfaces, for `--outbound-addr=IFNAME`. */
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** Which optional features are implemented. */
  features?: Slirp4netnsFeatureSet;
  /** Program name in messages. */
  prog?: string;
}

type OptId =
  | 'configure' | 'exit-fd' | 'ready-fd' | 'mtu' | 'cidr' | 'disable-host-loopback'
  | 'no-host-loopback' | 'netns-type' | 'userns-path' | 'api-socket' | 'enable-ipv6'
  | 'enable-sandbox' | 'create-sandbox' | 'enable-seccomp' | 'help' | 'version' | 'outbound-addr'
  | 'outbound-addr6' | 'disable-dns' | 'macaddress' | 'target-type';

interface OptSpec { name: OptId; short?: string; value: boolean }

// slirp4netns 1.2.0's option table, deprecated aliases included.
const OPTS: readonly OptSpec[] = [
  { name: 'configure', short: 'c', value: false },
  { name: 'exit-fd', short: 'e', value: true },
  { name: 'ready-fd', short: 'r', value: true },
  { name: 'mtu', short: 'm', value: true },
  { name: 'cidr', value: true },
  { name: 'disable-host-loopback', value: false },
  { name: 'no-host-loopback', value: false },
  { name: 'netns-type', value: true },
  { name: 'userns-path', value: true },
  { name: 'api-socket', short: 'a', value: true },
  { name: 'enable-ipv6', short: '6', value: false },
  { name: 'enable-sandbox', value: false },
  { name: 'create-sandbox', value: false },
  { name: 'enable-seccomp', value: false },
  { name: 'help', short: 'h', value: false },
  { name: 'version', short: 'v', value: false },
  { name: 'outbound-addr', value: true },
  { name: 'outbound-addr6', value: true },
  { name: 'disable-dns', value: false },
  { name: 'macaddress', value: true },
  { name: 'target-type', value: true },
];
const BY_SHORT = new Map(OPTS.filter((o) => o.short !== undefined).map((o) => [o.short as string, o]));
const BY_LONG = new Map(OPTS.map((o) => [o.name, o] as const));

/** Exact long name, else the unique option it abbreviates. */
function lookupLong(name: string): OptSpec | { ambiguous: OptSpec[] } | null {
  const exact = BY_LONG.get(name as OptId);
  if (exact) return exact;
  if (name === '') return null;
  const candidates = OPTS.filter((o) => o.name.startsWith(name));
  if (candidates.length === 1) return candidates[0] as OptSpec;
  if (candidates.length > 1) return { ambiguous: candidates };
  return null;
}

/** strtol-like, but strict: decimal digits only (no sign, spaces, hex), within int range. */
function parseNonNegativeInt(text: string): number | null {
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  return n <= 0x7fffffff ? n : null;
}

const MAC_HINT = "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a ':').";

function parseMacAddress(text: string): string {
  const groups = text.split(':');
  if (groups.length > 6 && groups.slice(0, 6).every((g) => /^[0-9a-fA-F]{1,2}$/.test(g))) {
    throw new Slirp4netnsArgError(`"${text}" is an invalid MAC address.  Is it too long?\n${MAC_HINT}`, false);
  }
  if (groups.length !== 6 || !groups.every((g) => /^[0-9a-fA-F]{1,2}$/.test(g))) {
    throw new Slirp4netnsArgError(`"${text}" is an invalid MAC address.\n${MAC_HINT}`, false);
  }
  const bytes = groups.map((g) => parseInt(g, 16));
  if (((bytes[0] as number) & 1) !== 0) {
    throw new Slirp4netnsArgError(`"${text}" is an invalid MAC address: it is a multicast address.\n${MAC_HINT}`, false);
  }
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Linux interface name rules (IFNAMSIZ 16 with the NUL; no '/', ':' or whitespace; not . or ..). */
export function isValidIfname(name: string): boolean {
  return Buffer.byteLength(name) >= 1 && Buffer.byteLength(name) <= 15 && name !== '.' && name !== '..'
    && !/[/:\s]/.test(name);
}

function resolveOutboundAddr(spec: string, interfaces: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>): OutboundAddr {
  const err = () => new Slirp4netnsArgError('outbound-addr has to be valid ipv4 address or interface name.', false);
  if (ipToU32(spec) !== null) return { spec, address: u32ToIp(ipToU32(spec) as number) };
  if (!isValidIfname(spec)) throw err();
  const addrs = interfaces()[spec] ?? [];
  // Node 18.0-18.3 reported family as a number; accept both.
  const v4 = addrs.find((a) => a.family === 'IPv4' || (a.family as unknown) === 4);
  if (!v4) throw err();
  return { spec, address: v4.address, ifname: spec };
}

/**
 * `--outbound-addr6`: an IPv6 address, or an interface's first IPv6 address that is not link-local
 * (a link-local one cannot be bound without a scope, and reaches nothing beyond the link).
 */
function resolveOutboundAddr6(spec: string, interfaces: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>): OutboundAddr {
  const err = () => new Slirp4netnsArgError('outbound-addr6 has to be valid ipv6 address or interface name.', false);
  if (net.isIPv6(spec)) return { spec, address: spec };
  if (!isValidIfname(spec)) throw err();
  const addrs = interfaces()[spec] ?? [];
  const v6 = addrs.find((a) => (a.family === 'IPv6' || (a.family as unknown) === 6) && !/^fe[89ab]/i.test(a.address));
  if (!v6) throw err();
  return { spec, address: v6.address, ifname: spec };
}

function defaultPathExists(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

const FEATURE_OF: Partial<Record<OptId, keyof Slirp4netnsFeatureSet>> = {
  'enable-ipv6': 'ipv6', 'outbound-addr6': 'ipv6', 'enable-sandbox': 'sandbox',
  'create-sandbox': 'sandbox', 'enable-seccomp': 'seccomp',
};

/**
 * Parse argv (without node and the script). Returns what to do, or throws Slirp4netnsArgError.
 * `-h`/`-v` return { kind: 'help' | 'version' } for the caller to print.
 */
export function parseSlirp4netnsArgs(argv: readonly string[], env: Slirp4netnsParseEnv = {}): Slirp4netnsCommand {
  const prog = env.prog ?? SLIRP4NETNS_PROG;
  const pathExists = env.pathExists ?? defaultPathExists;
  const features = env.features ?? SLIRP4NETNS_FEATURES;
  const warnings: string[] = [];
  const positionals: string[] = [];
  const raw = new Map<OptId, string>();
  const flags = new Set<OptId>();

  // Returns a command when -h/-v stops the scan.
  const apply = (spec: OptSpec, value: string | undefined): Slirp4netnsCommand | null => {
    const feature = FEATURE_OF[spec.name];
    if (feature !== undefined && features[feature] === false) {
      throw new Slirp4netnsArgError(`--${spec.name} is not supported by tapswitch yet; remove it from the command line`);
    }
    switch (spec.name) {
      case 'help': return { kind: 'help' };
      case 'version': return { kind: 'version' };
      case 'exit-fd':
      case 'ready-fd':
        if (parseNonNegativeInt(value ?? '') === null) {
          throw new Slirp4netnsArgError(`${spec.name} must be a non-negative integer`);
        }
        break;
      case 'mtu': {
        const n = parseNonNegativeInt(value ?? '');
        if (n === null || n < 1 || n > SLIRP4NETNS_MAX_MTU) {
          throw new Slirp4netnsArgError(`MTU must be a positive integer (< ${SLIRP4NETNS_MAX_MTU + 1})`);
        }
        break;
      }
      case 'userns-path':
        if (!pathExists(value ?? '')) throw new Slirp4netnsArgError(`userns path doesn't exist: ${value ?? ''}`);
        break;
      case 'no-host-loopback':
        warnings.push('WARNING: --no-host-loopback is deprecated, use --disable-host-loopback instead.');
        break;
      case 'enable-ipv6':
        warnings.push('WARNING: Support for IPv6 is experimental');
        break;
      default:
        break;
    }
    if (spec.value) raw.set(spec.name, value as string);
    else flags.add(spec.name);
    return null;
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const found = lookupLong(name);
      if (found === null) throw new Slirp4netnsArgError(`${prog}: unrecognized option '--${name}'`);
      if ('ambiguous' in found) {
        const list = found.ambiguous.map((o) => `'--${o.name}'`).join(' ');
        throw new Slirp4netnsArgError(`${prog}: option '--${name}' is ambiguous; possibilities: ${list}`);
      }
      let value: string | undefined;
      if (found.value) {
        if (inline !== undefined) value = inline;
        else if (i + 1 < argv.length) value = argv[++i] as string;
        else throw new Slirp4netnsArgError(`${prog}: option '--${found.name}' requires an argument`);
      } else if (inline !== undefined) {
        throw new Slirp4netnsArgError(`${prog}: option '--${found.name}' doesn't allow an argument`);
      }
      const done = apply(found, value);
      if (done) return done;
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A cluster of short options; one that takes a value ends the cluster.
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j] as string;
        const spec = BY_SHORT.get(letter);
        if (!spec) throw new Slirp4netnsArgError(`${prog}: invalid option -- '${letter}'`);
        let value: string | undefined;
        if (spec.value) {
          if (j + 1 < arg.length) value = arg.slice(j + 1);
          else if (i + 1 < argv.length) value = argv[++i] as string;
          else throw new Slirp4netnsArgError(`${prog}: option requires an argument -- '${letter}'`);
        }
        const done = apply(spec, value);
        if (done) return done;
        if (spec.value) break;
      }
      continue;
    }
    positionals.push(arg);
  }

  // After the scan, in slirp4netns's order.
  let macAddress: string | null = null;
  const macText = raw.get('macaddress');
  if (macText !== undefined) {
    if (!flags.has('configure')) {
      throw new Slirp4netnsArgError('--macaddr cannot be specified when --configure or -c is not specified');
    }
    macAddress = parseMacAddress(macText);
  }

  const targetType = raw.get('target-type');
  if (targetType !== undefined && targetType !== 'netns') {
    if (targetType === 'bess') throw new Slirp4netnsArgError('--target-type=bess is not supported by tapswitch');
    throw new Slirp4netnsArgError('--target-type must be either "netns" or "bess"');
  }

  const netnsTypeText = raw.get('netns-type') ?? 'pid';
  if (netnsTypeText !== 'pid' && netnsTypeText !== 'path') {
    throw new Slirp4netnsArgError(`--netns-type must be either "pid" or "path", not "${netnsTypeText}"`);
  }
  const netnsType: NetnsType = netnsTypeText;

  const target = positionals[0];
  if (target === undefined) throw new Slirp4netnsArgError('missing PID|PATH');
  if (positionals.length > 2) warnings.push('WARNING: too many arguments');
  let targetPid: number | null = null;
  let netnsPath: string | null = null;
  if (netnsType === 'pid') {
    targetPid = parseNonNegativeInt(target);
    if (targetPid === null || targetPid <= 0) throw new Slirp4netnsArgError('PID must be a positive integer');
  } else {
    if (!pathExists(target)) {
      throw new Slirp4netnsArgError('existing path expected when --netns-type=path: No such file or directory');
    }
    netnsPath = target;
  }
  const tapName = positionals[1] ?? SLIRP4NETNS_DEFAULT_TAPNAME;
  if (!isValidIfname(tapName)) {
    throw new Slirp4netnsArgError(`invalid TAPNAME: ${JSON.stringify(tapName)} (1-15 bytes, no '/', ':' or whitespace)`);
  }

  const apiSocket = raw.get('api-socket') ?? null;
  if (apiSocket !== null) {
    if (apiSocket === '') throw new Slirp4netnsArgError('the API socket path must not be empty');
    if (Buffer.byteLength(apiSocket) >= UNIX_PATH_MAX) {
      throw new Slirp4netnsArgError(`the specified API socket path is too long (>= ${UNIX_PATH_MAX})`, false);
    }
  }

  // CIDR texts are config.ts's, which match slirp4netns's; slirp4netns prints no usage after them.
  const cidr = raw.get('cidr') ?? SLIRP4NETNS_DEFAULT_CIDR;
  let network: NetworkPlan;
  try {
    network = planNetwork(parseCidr(cidr));
  } catch (e) {
    if (isTapswitchError(e)) throw new Slirp4netnsArgError(e.message, false);
    throw e;
  }

  const outboundText = raw.get('outbound-addr');
  const outboundAddr = outboundText === undefined ? null
    : resolveOutboundAddr(outboundText, env.networkInterfaces ?? os.networkInterfaces);
  const outbound6Text = raw.get('outbound-addr6');
  const outboundAddr6 = outbound6Text === undefined ? null
    : resolveOutboundAddr6(outbound6Text, env.networkInterfaces ?? os.networkInterfaces);

  const mtu = raw.has('mtu') ? Number(raw.get('mtu')) : SLIRP4NETNS_DEFAULT_MTU;
  if (flags.has('enable-ipv6') && mtu < IPV6_MIN_MTU) {
    // RFC 8200 §5: every IPv6 link carries 1280 bytes; Linux turns IPv6 off on a smaller link.
    warnings.push(`WARNING: IPv6 needs an MTU of at least ${IPV6_MIN_MTU}; with --mtu=${mtu} the guest's kernel disables IPv6 on ${positionals[1] ?? SLIRP4NETNS_DEFAULT_TAPNAME}`);
  }

  const fd = (name: 'exit-fd' | 'ready-fd'): number | null => {
    const t = raw.get(name);
    return t === undefined ? null : parseNonNegativeInt(t);
  };

  return {
    kind: 'run',
    options: {
      configure: flags.has('configure'),
      exitFd: fd('exit-fd'),
      readyFd: fd('ready-fd'),
      mtu,
      network,
      cidr,
      disableHostLoopback: flags.has('disable-host-loopback') || flags.has('no-host-loopback'),
      netnsType,
      targetPid,
      netnsPath,
      usernsPath: raw.get('userns-path') ?? null,
      apiSocket,
      tapName,
      enableIpv6: flags.has('enable-ipv6'),
      enableSandbox: flags.has('enable-sandbox') || flags.has('create-sandbox'),
      enableSeccomp: flags.has('enable-seccomp'),
      outboundAddr,
      outboundAddr6,
      disableDns: flags.has('disable-dns'),
      macAddress,
      warnings,
    },
  };
}

export interface Slirp4netnsIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const processIo: Slirp4netnsIo = {
  stdout: (s) => { process.stdout.write(s); },
  stderr: (s) => { process.stderr.write(s); },
};

/**
 * The front door for the binary: parse, print help / version / errors / warnings, and either return
 * the options to run with or the exit status to exit with (0 after help/version, 1 after an error).
 */
export function resolveSlirp4netnsCommandLine(argv: readonly string[], io: Slirp4netnsIo = processIo,
  env: Slirp4netnsParseEnv = {}): { options: Slirp4netnsOptions } | { exitCode: number } {
  let cmd: Slirp4netnsCommand;
  try {
    cmd = parseSlirp4netnsArgs(argv, env);
  } catch (e) {
    if (!(e instanceof Slirp4netnsArgError)) throw e;
    io.stderr(`${e.message}\n`);
    if (e.showUsage) io.stderr(formatSlirp4netnsHelp(env.features ?? SLIRP4NETNS_FEATURES, env.prog));
    return { exitCode: e.exitCode };
  }
  if (cmd.kind === 'help') {
    io.stdout(formatSlirp4netnsHelp(env.features ?? SLIRP4NETNS_FEATURES, env.prog));
    return { exitCode: 0 };
  }
  if (cmd.kind === 'version') {
    io.stdout(formatSlirp4netnsVersion());
    return { exitCode: 0 };
  }
  for (const w of cmd.options.warnings) io.stdout(`${w}\n`);
  return { options: cmd.options };
}

/**
 * The lines slirp4netns prints on stdout once set up (scripts and humans read them), ending with the
 * host-loopback warning unless --disable-host-loopback was given.
 */
export function formatSlirp4netnsStartupInfo(o: Slirp4netnsOptions): string {
  const ip = (n: number) => u32ToIp(n >>> 0);
  const mask = o.network.prefixLength === 0 ? 0 : (~0 << (32 - o.network.prefixLength)) >>> 0;
  const lines = [
    'Starting tapswitch (slirp4netns mode)',
    `* MTU:             ${o.mtu}`,
    `* Network:         ${ip(o.network.network)}`,
    `* Netmask:         ${ip(mask)}`,
    `* Gateway:         ${ip(o.network.gateway)}`,
    o.disableDns ? '* DNS:             (disabled)' : `* DNS:             ${ip(o.network.dns)}`,
    `* DHCP begin:      ${ip(o.network.dhcpStart)}`,
    `* DHCP end:        ${ip(o.network.dhcpStart + o.network.dhcpCount - 1)}`,
    `* Recommended IP:  ${ip(o.network.guest)}`,
  ];
  if (o.apiSocket !== null) lines.push(`* API Socket:      ${o.apiSocket}`);
  if (o.outboundAddr !== null) lines.push(`* Outbound IPv4:    ${o.outboundAddr.address}`);
  if (o.enableIpv6) {
    const p = SLIRP4NETNS_IPV6;
    lines.push(`* IPv6 prefix:     ${p.prefix}/${p.prefixLength} (SLAAC from router advertisements by ${p.linkLocal})`,
      `* IPv6 gateway:    ${p.gateway}`,
      o.disableDns ? '* IPv6 DNS:        (disabled)' : `* IPv6 DNS:        ${p.dns}`);
    if (o.outboundAddr6 !== null) lines.push(`* Outbound IPv6:   ${o.outboundAddr6.address}`);
  }
  if (o.macAddress !== null) lines.push(`* MAC address:     ${o.macAddress}`);
  if (!o.disableHostLoopback) {
    lines.push(`WARNING: 127.0.0.1:* on the host is accessible as ${ip(o.network.gateway)} `
      + '(set --disable-host-loopback to prohibit connecting to 127.0.0.1:*)');
    if (o.enableIpv6) {
      lines.push(`WARNING: [::1]:* on the host is accessible as [${SLIRP4NETNS_IPV6.gateway}] `
        + '(set --disable-host-loopback to prohibit connecting to [::1]:*)');
    }
  }
  return `${lines.join('\n')}\n`;
}
