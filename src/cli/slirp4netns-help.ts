// `tapswitch-slirp4netns --help` and `--version`.
//
// Clients decide what to pass by grepping our --help output, so this text is a contract, not prose:
//
//   - RootlessKit refuses the binary unless the text contains `--netns-type`, and turns on
//     `--cidr`, `--disable-host-loopback`, `--api-socket`, `--enable-sandbox`, `--enable-seccomp`
//     for each string it finds.
//   - Podman adds `--enable-ipv6`, `--enable-sandbox`, `--enable-seccomp`, `--mtu=`, `--cidr=`,
//     `--outbound-addr=` ... whenever the string is present (IPv6 even by default).
//
// So a flag string may appear here only when tapswitch really implements it, and an unimplemented
// flag must not appear anywhere in the text, not even in a "not supported" note. The set of features
// lives in SLIRP4NETNS_FEATURES; the help lines and the parser (slirp4netns-args.ts) both read it, so
// turning a feature on is a one-line change that updates both.
//
// The wording is tapswitch's own; only the flag strings match slirp4netns.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Slirp4netnsFeature = 'ipv6' | 'sandbox' | 'seccomp';
export type Slirp4netnsFeatureState = boolean | 'unadvertised';
export type Slirp4netnsFeatureSet = Readonly<Record<Slirp4netnsFeature, Slirp4netnsFeatureState>>;

/**
 * Optional slirp4netns features and whether tapswitch implements them today: true (accepted and
 * advertised in --help), 'unadvertised' (accepted when asked for by name, but kept out of --help so
 * clients that grep it do not turn it on by default), false (refused).
 */
export const SLIRP4NETNS_FEATURES: Slirp4netnsFeatureSet = {
  /**
   * `-6`, `--enable-ipv6` (and `--outbound-addr6`, meaningless without it): RAs, SLAAC, NDP, echo
   * to fd00::2/fd00::3/fe80::2, and TCP/UDP/ICMPv6 echo/DNS over IPv6, proven end to end
   * (test/integration/ipv6.test.ts). Advertised: Podman turns it on by default when --help offers it.
   */
  ipv6: true,
  /** `--enable-sandbox`: private mount namespace, dropped capabilities. */
  sandbox: false,
  /** `--enable-seccomp`: syscall filter. */
  seccomp: false,
};

/** The slirp4netns release whose command line and API tapswitch-slirp4netns follows. */
export const SLIRP4NETNS_COMPAT_VERSION = '1.2.0';

/**
 * What `SLIRP_CONFIG_VERSION_MAX:` reports. slirp4netns prints libslirp's config version, and its
 * own test suite enables feature tests by it: >= 2 `--outbound-addr`, >= 3 `--disable-dns`. Both are
 * implemented, so 3. (4 and up are libslirp internals with no command-line flag.)
 */
export const SLIRP_CONFIG_VERSION_MAX = 3;

/** The program name used in messages, e.g. `tapswitch-slirp4netns: unrecognized option '--foo'`. */
export const SLIRP4NETNS_PROG = 'tapswitch-slirp4netns';

interface HelpLine {
  flags: string;
  text: string;
  /** Shown only when this feature is implemented. */
  feature?: Slirp4netnsFeature;
}

const HELP_LINES: readonly HelpLine[] = [
  { flags: '-c, --configure', text: 'configure the TAP inside the namespace: up, MTU, address network+100, default route via network+2' },
  { flags: '-e, --exit-fd=FD', text: 'exit (and remove the API socket) when FD hangs up, becomes readable or is not open' },
  { flags: '-r, --ready-fd=FD', text: "write '1' to FD and close it once the network and the API socket are ready" },
  { flags: '-m, --mtu=MTU', text: 'MTU of the TAP (default=1500, max=65521)' },
  { flags: '-6, --enable-ipv6', text: 'IPv6 on fd00::/64 (gateway fd00::2, DNS fd00::3, SLAAC)', feature: 'ipv6' },
  { flags: '-a, --api-socket=PATH', text: 'serve the port-forwarding API on this AF_UNIX socket (path < 108 bytes)' },
  { flags: '--cidr=CIDR', text: 'virtual network (default=10.0.2.0/24, prefix 1-25): gateway +2, DNS +3, DHCP +15, guest +100' },
  { flags: '--disable-host-loopback', text: "do not map the gateway address to the host's 127.0.0.1 / ::1" },
  { flags: '--netns-type=TYPE', text: 'what PID|PATH names: "pid" (default) a process, "path" a netns file' },
  { flags: '--userns-path=PATH', text: 'user namespace to join before the network namespace' },
  { flags: '--outbound-addr=IPv4', text: 'bind outgoing host sockets to this IPv4 address (or IFNAME\'s address)' },
  { flags: '--outbound-addr6=IPv6', text: 'bind outgoing IPv6 host sockets to this address (or IFNAME\'s address)', feature: 'ipv6' },
  { flags: '--disable-dns', text: 'no DNS forwarder at network+3 (default 10.0.2.3); it is then an ordinary address' },
  { flags: '--macaddress=MAC', text: 'MAC address for the TAP (only valid with -c)' },
  { flags: '--enable-sandbox', text: 'run in a private mount namespace with dropped capabilities', feature: 'sandbox' },
  { flags: '--enable-seccomp', text: 'restrict system calls with a seccomp filter', feature: 'seccomp' },
  { flags: '-h, --help', text: 'print this help and exit' },
  { flags: '-v, --version', text: 'print version information and exit' },
];

/** The usage text (for `--help` on stdout, and after an argument error on stderr). */
export function formatSlirp4netnsHelp(features: Slirp4netnsFeatureSet = SLIRP4NETNS_FEATURES,
  prog: string = SLIRP4NETNS_PROG): string {
  const lines = HELP_LINES.filter((l) => l.feature === undefined || features[l.feature] === true);
  const width = Math.max(...lines.map((l) => l.flags.length)) + 2;
  return [
    `Usage: ${prog} [OPTION]... PID|PATH [TAPNAME]`,
    'Userspace networking for a rootless network namespace: a drop-in for slirp4netns,',
    'served by tapswitch (TAPNAME defaults to tap0).',
    '',
    ...lines.map((l) => `${l.flags.padEnd(width)}${l.text}`),
    '',
  ].join('\n');
}

/** tapswitch's own version from package.json ("unknown" when it cannot be found). */
export function tapswitchVersion(): string {
  // src/cli (ts) or dist/src/cli (compiled): package.json is two or three levels up.
  for (const up of ['../..', '../../..']) {
    try {
      const pkg: unknown = JSON.parse(fs.readFileSync(path.join(__dirname, up, 'package.json'), 'utf8'));
      if (typeof pkg === 'object' && pkg !== null && (pkg as { name?: unknown }).name === 'tapswitch') {
        const v = (pkg as { version?: unknown }).version;
        if (typeof v === 'string') return v;
      }
    } catch { /* try the next candidate */ }
  }
  return 'unknown';
}

/**
 * `--version`, in slirp4netns's line format: scripts parse `slirp4netns version X` and
 * `SLIRP_CONFIG_VERSION_MAX: N` (the last one with grep/sed).
 */
export function formatSlirp4netnsVersion(opts: { version?: string; commit?: string } = {}): string {
  const version = opts.version ?? tapswitchVersion();
  return [
    `slirp4netns version ${SLIRP4NETNS_COMPAT_VERSION}+tapswitch-${version}`,
    `commit: ${opts.commit ?? 'unknown'}`,
    'libslirp: none (tapswitch userspace stack)',
    `SLIRP_CONFIG_VERSION_MAX: ${SLIRP_CONFIG_VERSION_MAX}`,
    `tapswitch: ${version}`,
    '',
  ].join('\n');
}
