// tapswitch-slirp4netns command line: getopt_long behaviour, every flag, every error text, and the
// exact command lines RootlessKit and Podman use (shared/docs/slirp4netns-compat.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseSlirp4netnsArgs, resolveSlirp4netnsCommandLine, Slirp4netnsArgError, formatSlirp4netnsStartupInfo,
  type Slirp4netnsOptions, type Slirp4netnsParseEnv,
} from '../../src/cli/slirp4netns-args';
import {
  formatSlirp4netnsHelp, formatSlirp4netnsVersion, SLIRP_CONFIG_VERSION_MAX, SLIRP4NETNS_FEATURES,
} from '../../src/cli/slirp4netns-help';

const EXISTING = new Set(['/run/user/1000/netns/cni-1', '/proc/42/ns/user', '/proc/self/ns/user']);
const env: Slirp4netnsParseEnv = {
  pathExists: (p) => EXISTING.has(p),
  networkInterfaces: () => ({
    eth0: [{ address: '192.0.2.7', netmask: '255.255.255.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: false, cidr: '192.0.2.7/24' }],
    v6only: [{ address: '2001:db8::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: '2001:db8::1/64', scopeid: 0 }],
  }),
};

function run(argv: string[]): Slirp4netnsOptions {
  const r = parseSlirp4netnsArgs(argv, env);
  assert.equal(r.kind, 'run');
  if (r.kind !== 'run') throw new Error('unreachable');
  return r.options;
}

function fails(argv: string[], message: string | RegExp, showUsage = true): void {
  assert.throws(() => parseSlirp4netnsArgs(argv, env), (e: unknown) => {
    assert.ok(e instanceof Slirp4netnsArgError, `expected Slirp4netnsArgError, got ${String(e)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.equal(e.exitCode, 1);
    assert.equal(e.showUsage, showUsage, `showUsage for ${argv.join(' ')}`);
    return true;
  }, argv.join(' '));
}

test('defaults', () => {
  const o = run(['42', 'tap0']);
  assert.equal(o.targetPid, 42);
  assert.equal(o.netnsPath, null);
  assert.equal(o.netnsType, 'pid');
  assert.equal(o.tapName, 'tap0');
  assert.equal(o.mtu, 1500);
  assert.equal(o.cidr, '10.0.2.0/24');
  assert.equal(o.network.prefixLength, 24);
  assert.equal(o.network.gateway, 0x0a000202);
  assert.equal(o.network.dns, 0x0a000203);
  assert.equal(o.network.dhcpStart, 0x0a00020f);
  assert.equal(o.network.guest, 0x0a000264);
  assert.equal(o.configure, false);
  assert.equal(o.exitFd, null);
  assert.equal(o.readyFd, null);
  assert.equal(o.apiSocket, null);
  assert.equal(o.disableHostLoopback, false);
  assert.equal(o.disableDns, false);
  assert.equal(o.macAddress, null);
  assert.equal(o.outboundAddr, null);
  assert.equal(o.usernsPath, null);
  assert.equal(o.enableIpv6, false);
  assert.equal(o.enableSandbox, false);
  assert.equal(o.enableSeccomp, false);
  assert.deepEqual(o.warnings, []);
});

test('TAPNAME defaults to tap0', () => {
  assert.equal(run(['42']).tapName, 'tap0');
  assert.equal(run(['42', 'eth0']).tapName, 'eth0');
});

test('RootlessKit 1.1 command line', () => {
  const o = run(['--mtu', '65520', '-r', '3', '--disable-host-loopback', '--cidr', '10.0.3.0/24',
    '--api-socket', '/tmp/rk/.s4nn.sock', '1234', 'tap0']);
  assert.equal(o.mtu, 65520);
  assert.equal(o.readyFd, 3);
  assert.equal(o.exitFd, null);
  assert.equal(o.disableHostLoopback, true);
  assert.equal(o.network.network, 0x0a000300);
  assert.equal(o.apiSocket, '/tmp/rk/.s4nn.sock');
  assert.equal(o.targetPid, 1234);
  assert.equal(o.configure, false);
});

test('RootlessKit --detach-netns command line', () => {
  const o = run(['--mtu', '65520', '-r', '3', '--userns-path=/proc/42/ns/user', '--netns-type=path',
    '/run/user/1000/netns/cni-1', 'tap0']);
  assert.equal(o.netnsType, 'path');
  assert.equal(o.netnsPath, '/run/user/1000/netns/cni-1');
  assert.equal(o.targetPid, null);
  assert.equal(o.usernsPath, '/proc/42/ns/user');
});

test('Podman 4.3 command line', () => {
  const o = run(['--disable-host-loopback', '--mtu=65520', '--cidr=10.0.2.0/24', '--outbound-addr=eth0',
    '-c', '-e', '3', '-r', '4', '--api-socket', '/run/user/1000/libpod/tmp/x.net', '--netns-type=path',
    '/run/user/1000/netns/cni-1', 'tap0']);
  assert.equal(o.configure, true);
  assert.equal(o.exitFd, 3);
  assert.equal(o.readyFd, 4);
  assert.deepEqual(o.outboundAddr, { spec: 'eth0', address: '192.0.2.7', ifname: 'eth0' });
  assert.equal(o.netnsPath, '/run/user/1000/netns/cni-1');
});

test('Podman 5 command line (-r 3 -e 4)', () => {
  const o = run(['--disable-host-loopback', '--mtu=65520', '-c', '-r', '3', '-e', '4',
    '--netns-type=path', '/run/user/1000/netns/cni-1', 'tap0']);
  assert.equal(o.readyFd, 3);
  assert.equal(o.exitFd, 4);
});

test('GNU forms: attached values, clusters, permutation, --', () => {
  assert.equal(run(['-r3', '42']).readyFd, 3);
  assert.equal(run(['-r', '3', '42']).readyFd, 3);
  assert.equal(run(['--ready-fd=3', '42']).readyFd, 3);
  assert.equal(run(['--ready-fd', '3', '42']).readyFd, 3);
  let o = run(['-ce', '3', '42']);
  assert.equal(o.configure, true);
  assert.equal(o.exitFd, 3);
  o = run(['-ce3', '42']);
  assert.equal(o.exitFd, 3);
  o = run(['-cr4', '42']);
  assert.equal(o.readyFd, 4);
  o = run(['42', '-c', 'tap1', '--mtu', '9000']);
  assert.equal(o.targetPid, 42);
  assert.equal(o.tapName, 'tap1');
  assert.equal(o.mtu, 9000);
  o = run(['-c', '--', '42', 'tap2']);
  assert.equal(o.tapName, 'tap2');
  // After --, option-looking words are positionals.
  fails(['--', '-c', 'tap0'], 'PID must be a positive integer');
  // The last of a repeated option wins.
  assert.equal(run(['-m', '1400', '--mtu=9000', '42']).mtu, 9000);
  assert.equal(run(['--api-socket=/a', '-a', '/b', '42']).apiSocket, '/b');
  assert.equal(run(['-a/c', '42']).apiSocket, '/c');
});

test('long options may be abbreviated; exact names win', () => {
  assert.equal(run(['--disable-h', '42']).disableHostLoopback, true);
  assert.equal(run(['--disable-d', '42']).disableDns, true);
  assert.equal(run(['--conf', '42']).configure, true);
  assert.equal(run(['--mt=9000', '42']).mtu, 9000);
  assert.equal(run(['--outbound-addr=192.0.2.1', '42']).outboundAddr?.address, '192.0.2.1');
  fails(['--dis', '42'], "tapswitch-slirp4netns: option '--dis' is ambiguous; possibilities: '--disable-host-loopback' '--disable-dns'");
  fails(['42', '--e'], /option '--e' is ambiguous/);
});

test('deprecated alias --no-host-loopback', () => {
  const o = run(['--no-host-loopback', '42']);
  assert.equal(o.disableHostLoopback, true);
  assert.equal(o.warnings.length, 1);
  assert.match(o.warnings[0] ?? '', /deprecated/);
});

test('value taken from the next word even when it looks like an option', () => {
  fails(['-e', '-1', '42'], 'exit-fd must be a non-negative integer');
  fails(['--ready-fd', '--mtu', '42'], 'ready-fd must be a non-negative integer');
  assert.equal(run(['-a', '-x', '42']).apiSocket, '-x');
});

test('a lone - is a positional', () => {
  fails(['-'], 'PID must be a positive integer');
});

test('getopt error texts', () => {
  fails(['--foo', '42'], "tapswitch-slirp4netns: unrecognized option '--foo'");
  fails(['-x', '42'], "tapswitch-slirp4netns: invalid option -- 'x'");
  fails(['-cx', '42'], "tapswitch-slirp4netns: invalid option -- 'x'");
  fails(['42', '--ready-fd'], "tapswitch-slirp4netns: option '--ready-fd' requires an argument");
  fails(['42', '-r'], "tapswitch-slirp4netns: option requires an argument -- 'r'");
  fails(['--help=3'], "tapswitch-slirp4netns: option '--help' doesn't allow an argument");
  fails(['--configure=yes', '42'], "tapswitch-slirp4netns: option '--configure' doesn't allow an argument");
  fails(['--=x', '42'], "tapswitch-slirp4netns: unrecognized option '--'");
});

test('fd values', () => {
  for (const bad of ['abc', '-1', '3x', '', ' 3', '0x3', '+3', '99999999999']) {
    fails(['-e', bad, '42'], 'exit-fd must be a non-negative integer');
    fails([`--ready-fd=${bad}`, '42'], 'ready-fd must be a non-negative integer');
  }
  assert.equal(run(['-e', '0', '42']).exitFd, 0);
  assert.equal(run(['-r', '007', '42']).readyFd, 7);
});

test('MTU range 1..65521', () => {
  assert.equal(run(['-m', '1', '42']).mtu, 1);
  assert.equal(run(['-m', '65521', '42']).mtu, 65521);
  assert.equal(run(['-m', '65520', '42']).mtu, 65520);
  for (const bad of ['0', '65522', '100000', 'abc', '', '-5', '1500.5', '1e3']) {
    fails([`--mtu=${bad}`, '42'], 'MTU must be a positive integer (< 65522)');
  }
});

test('CIDR checks and texts (no usage after them, like slirp4netns)', () => {
  const o = run(['--cidr=192.168.7.0/25', '42']);
  assert.equal(o.network.network, 0xc0a80700);
  assert.equal(o.network.guest, 0xc0a80764);
  assert.equal(run(['--cidr=10.0.0.0/8', '42']).network.prefixLength, 8);
  assert.equal(run(['--cidr=0.0.0.0/1', '42']).network.prefixLength, 1);
  fails(['--cidr=foo', '42'], 'invalid CIDR: foo', false);
  fails(['--cidr=10.0.2.0', '42'], 'invalid CIDR: 10.0.2.0', false);
  fails(['--cidr=10.0.2.0/024', '42'], 'invalid CIDR: 10.0.2.0/024', false);
  fails(['--cidr=300.0.2.0/24', '42'], /^invalid (CIDR|network address)/, false);
  fails(['--cidr=10.0.2.0/26', '42'], 'prefix length needs to be 1-25', false);
  fails(['--cidr=10.0.2.0/0', '42'], 'prefix length needs to be 1-25', false);
  fails(['--cidr=10.0.2.100/24', '42'],
    'CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24', false);
});

test('--macaddress only with -c; format checked', () => {
  fails(['--macaddress=02:00:00:00:00:01', '42'],
    '--macaddr cannot be specified when --configure or -c is not specified');
  assert.equal(run(['-c', '--macaddress=02:AB:0:0:0:1', '42']).macAddress, '02:ab:00:00:00:01');
  const hint = "macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated by a ':').";
  fails(['-c', '--macaddress=zz', '42'], `"zz" is an invalid MAC address.\n${hint}`, false);
  fails(['-c', '--macaddress=02:00:00:00:00', '42'], `"02:00:00:00:00" is an invalid MAC address.\n${hint}`, false);
  fails(['-c', '--macaddress=02:00:00:00:00:100', '42'], /invalid MAC address/, false);
  fails(['-c', '--macaddress=02:00:00:00:00:01:02', '42'],
    `"02:00:00:00:00:01:02" is an invalid MAC address.  Is it too long?\n${hint}`, false);
  fails(['-c', '--macaddress=01:00:5e:00:00:01', '42'], /multicast/, false);
});

test('--netns-type and positionals', () => {
  fails(['--netns-type=foo', '42'], '--netns-type must be either "pid" or "path", not "foo"');
  fails(['--netns-type=path', '/nonexistent', 'tap0'],
    'existing path expected when --netns-type=path: No such file or directory');
  assert.equal(run(['--netns-type=pid', '42']).targetPid, 42);
  fails([], 'missing PID|PATH');
  fails(['-c'], 'missing PID|PATH');
  for (const bad of ['0', '-0', 'abc', '12a', '/proc/42/ns/net']) {
    fails(['--', bad, 'tap0'], 'PID must be a positive integer');
  }
  const o = run(['42', 'tap0', 'extra']);
  assert.deepEqual(o.warnings, ['WARNING: too many arguments']);
  fails(['42', 'a/b'], /^invalid TAPNAME/);
  fails(['42', 'sixteen-chars-xx'], /^invalid TAPNAME/);
  fails(['42', ''], /^invalid TAPNAME/);
  assert.equal(run(['42', 'fifteen-chars-x']).tapName, 'fifteen-chars-x');
});

test('--userns-path must exist (checked when reached)', () => {
  fails(['--userns-path=/nope', '42'], "userns path doesn't exist: /nope");
  assert.equal(run(['--userns-path', '/proc/self/ns/user', '42']).usernsPath, '/proc/self/ns/user');
});

test('--api-socket path length', () => {
  const ok = `/tmp/${'a'.repeat(102)}`; // 107 bytes
  assert.equal(run(['-a', ok, '42']).apiSocket, ok);
  fails(['-a', `${ok}b`, '42'], 'the specified API socket path is too long (>= 108)', false);
  fails(['-a', `/tmp/${'é'.repeat(52)}`, '42'], 'the specified API socket path is too long (>= 108)', false);
  fails(['--api-socket=', '42'], 'the API socket path must not be empty');
});

test('--outbound-addr: IPv4 or an interface with an IPv4 address', () => {
  assert.deepEqual(run(['--outbound-addr=192.0.2.1', '42']).outboundAddr, { spec: '192.0.2.1', address: '192.0.2.1' });
  for (const bad of ['1.2.3', 'nosuchif', 'v6only', '2001:db8::1', 'a/b']) {
    fails([`--outbound-addr=${bad}`, '42'], 'outbound-addr has to be valid ipv4 address or interface name.', false);
  }
});

test('--disable-dns, --target-type', () => {
  assert.equal(run(['--disable-dns', '42']).disableDns, true);
  assert.equal(run(['--target-type=netns', '42']).targetPid, 42);
  fails(['--target-type=bess', '/tmp/sock'], '--target-type=bess is not supported by tapswitch');
  fails(['--target-type=foo', '42'], '--target-type must be either "netns" or "bess"');
});

test('unimplemented features are refused, not silently ignored', () => {
  for (const flag of ['--enable-sandbox', '--create-sandbox', '--enable-seccomp']) {
    fails([flag, '42'], /is not supported by tapswitch yet/);
  }
  const none = { ipv6: false, sandbox: false, seccomp: false };
  for (const flag of ['--enable-ipv6', '-6', '--outbound-addr6=::1', '-c6']) {
    assert.throws(() => parseSlirp4netnsArgs([flag, '42'], { ...env, features: none }), /is not supported by tapswitch yet/, flag);
  }
  // ... and accepted once a feature is turned on.
  const all = { ipv6: true, sandbox: true, seccomp: true };
  const r = parseSlirp4netnsArgs(['-6', '--enable-sandbox', '--enable-seccomp', '--outbound-addr6=fd00::1', '42'],
    { ...env, features: all });
  assert.equal(r.kind, 'run');
  if (r.kind === 'run') {
    assert.equal(r.options.enableIpv6, true);
    assert.equal(r.options.enableSandbox, true);
    assert.equal(r.options.enableSeccomp, true);
    assert.deepEqual(r.options.outboundAddr6, { spec: 'fd00::1', address: 'fd00::1' });
  }
});

test('-6 / --enable-ipv6 are accepted, with slirp4netns\'s warning', () => {
  assert.notEqual(SLIRP4NETNS_FEATURES.ipv6, false);
  for (const argv of [['-6', '42'], ['--enable-ipv6', '42'], ['-c6', '42'], ['--enable-i', '42']]) {
    const o = run(argv);
    assert.equal(o.enableIpv6, true, argv.join(' '));
    assert.deepEqual(o.warnings, ['WARNING: Support for IPv6 is experimental']);
  }
  assert.equal(run(['42']).enableIpv6, false);
  assert.equal(run(['42']).outboundAddr6, null);
  // An MTU below IPv6's minimum: accepted (slirp4netns does), with a warning that says why it cannot work.
  assert.deepEqual(run(['-6', '--mtu=1000', '42', 'tap1']).warnings, ['WARNING: Support for IPv6 is experimental',
    "WARNING: IPv6 needs an MTU of at least 1280; with --mtu=1000 the guest's kernel disables IPv6 on tap1"]);
  assert.equal(run(['-6', '--mtu=1280', '42']).warnings.length, 1);
  assert.equal(run(['--mtu=1000', '42']).warnings.length, 0);
});

test('--outbound-addr6: IPv6 or an interface with a non-link-local IPv6 address', () => {
  const ifs: Slirp4netnsParseEnv = {
    ...env,
    networkInterfaces: () => ({
      eth0: [
        { address: '192.0.2.7', netmask: '255.255.255.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: false, cidr: '192.0.2.7/24' },
        { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: 'fe80::1/64', scopeid: 2 },
        { address: '2001:db8::7', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: '2001:db8::7/64', scopeid: 0 },
      ],
      llonly: [{ address: 'fe80::9', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: 'fe80::9/64', scopeid: 3 }],
    }),
  };
  const r6 = (argv: string[]) => {
    const r = parseSlirp4netnsArgs(argv, ifs);
    assert.equal(r.kind, 'run');
    return r.kind === 'run' ? r.options : (undefined as never);
  };
  assert.deepEqual(r6(['-6', '--outbound-addr6=2001:db8::1', '42']).outboundAddr6, { spec: '2001:db8::1', address: '2001:db8::1' });
  assert.deepEqual(r6(['-6', '--outbound-addr6', 'eth0', '42']).outboundAddr6, { spec: 'eth0', address: '2001:db8::7', ifname: 'eth0' });
  // Exact name wins over the --outbound-addr prefix.
  assert.equal(r6(['-6', '--outbound-addr6=::1', '--outbound-addr=192.0.2.1', '42']).outboundAddr?.address, '192.0.2.1');
  for (const bad of ['192.0.2.1', 'llonly', 'nosuchif', 'fd00::1::2', 'a/b']) {
    assert.throws(() => parseSlirp4netnsArgs(['-6', `--outbound-addr6=${bad}`, '42'], ifs), (e: unknown) => {
      assert.ok(e instanceof Slirp4netnsArgError);
      assert.equal(e.message, 'outbound-addr6 has to be valid ipv6 address or interface name.');
      assert.equal(e.showUsage, false);
      return true;
    }, bad);
  }
});

test('start-up lines with -6 name the IPv6 plan and the ::1 warning', () => {
  const info = formatSlirp4netnsStartupInfo(run(['-6', '42']));
  assert.match(info, /^\* IPv6 prefix: +fd00::\/64 /m);
  assert.match(info, /^\* IPv6 gateway: +fd00::2$/m);
  assert.match(info, /^\* IPv6 DNS: +fd00::3$/m);
  assert.match(info, /^WARNING: \[::1\]:\* on the host is accessible as \[fd00::2\]/m);
  const quiet = formatSlirp4netnsStartupInfo(run(['-6', '--disable-host-loopback', '--disable-dns', '42']));
  assert.match(quiet, /^\* IPv6 DNS: +\(disabled\)$/m);
  assert.doesNotMatch(quiet, /WARNING/);
  assert.doesNotMatch(formatSlirp4netnsStartupInfo(run(['42'])), /IPv6/);
});

test('-h / -v act when reached', () => {
  assert.deepEqual(parseSlirp4netnsArgs(['-h'], env), { kind: 'help' });
  assert.deepEqual(parseSlirp4netnsArgs(['--help'], env), { kind: 'help' });
  assert.deepEqual(parseSlirp4netnsArgs(['-v'], env), { kind: 'version' });
  assert.deepEqual(parseSlirp4netnsArgs(['--version'], env), { kind: 'version' });
  assert.deepEqual(parseSlirp4netnsArgs(['--vers'], env), { kind: 'version' });
  assert.deepEqual(parseSlirp4netnsArgs(['-ch'], env), { kind: 'help' });
  assert.deepEqual(parseSlirp4netnsArgs(['-h', '--bogus'], env), { kind: 'help' });
  fails(['--bogus', '-h'], "tapswitch-slirp4netns: unrecognized option '--bogus'");
  fails(['--mtu=0', '-h'], 'MTU must be a positive integer (< 65522)');
});

test('--help text: every supported flag string, no unsupported one', () => {
  const help = formatSlirp4netnsHelp();
  for (const s of ['--netns-type', '--disable-host-loopback', '--mtu', '--cidr', '--api-socket', '--exit-fd',
    '--ready-fd', '--configure', '--disable-dns', '--outbound-addr', '--macaddress', '--userns-path',
    '--help', '--version', '-c, --configure', '-e, --exit-fd=FD', '-r, --ready-fd=FD', '-m, --mtu=MTU',
    '-a, --api-socket=PATH', '--cidr=CIDR', '--netns-type=TYPE', '--outbound-addr=IPv4', '--macaddress=MAC']) {
    assert.ok(help.includes(s), `help lacks ${s}`);
  }
  // IPv6 is advertised only when it is on (true), never while merely accepted ('unadvertised').
  const ipv6Shown = SLIRP4NETNS_FEATURES.ipv6 === true;
  for (const s of ['--enable-ipv6', '-6,', '--outbound-addr6']) assert.equal(help.includes(s), ipv6Shown, s);
  assert.equal(formatSlirp4netnsHelp({ ipv6: 'unadvertised', sandbox: false, seccomp: false }).includes('--enable-ipv6'), false);
  for (const s of ['--enable-sandbox', '--enable-seccomp',
    '--target-type', '--create-sandbox', '--no-host-loopback']) {
    assert.ok(!help.includes(s), `help advertises ${s}`);
  }
  assert.match(help, /^Usage: tapswitch-slirp4netns \[OPTION\]\.\.\. PID\|PATH \[TAPNAME\]\n/);
  const withAll = formatSlirp4netnsHelp({ ipv6: true, sandbox: true, seccomp: true });
  for (const s of ['--enable-ipv6', '--enable-sandbox', '--enable-seccomp', '--outbound-addr6']) {
    assert.ok(withAll.includes(s), `help with all features lacks ${s}`);
  }
});

test('--version lines, parsed the way slirp4netns tests parse them', () => {
  const v = formatSlirp4netnsVersion({ version: '0.1.0', commit: 'abc' });
  const lines = v.trimEnd().split('\n');
  assert.equal(lines[0], 'slirp4netns version 1.2.0+tapswitch-0.1.0');
  assert.equal(lines[1], 'commit: abc');
  assert.match(lines[2] ?? '', /^libslirp: /);
  const cfg = lines.find((l) => l.startsWith('SLIRP_CONFIG_VERSION_MAX: '));
  assert.equal(Number(cfg?.slice('SLIRP_CONFIG_VERSION_MAX: '.length)), SLIRP_CONFIG_VERSION_MAX);
  assert.ok(SLIRP_CONFIG_VERSION_MAX >= 3, '--disable-dns is implemented');
  // The real package.json version when none is given.
  assert.match(formatSlirp4netnsVersion(), /^slirp4netns version 1\.2\.0\+tapswitch-\d+\.\d+\.\d+/);
});

test('resolveSlirp4netnsCommandLine: streams and exit statuses', () => {
  const capture = () => {
    const out = { stdout: '', stderr: '' };
    return { out, io: { stdout: (s: string) => { out.stdout += s; }, stderr: (s: string) => { out.stderr += s; } } };
  };
  let c = capture();
  assert.deepEqual(resolveSlirp4netnsCommandLine(['--help'], c.io, env), { exitCode: 0 });
  assert.ok(c.out.stdout.includes('--netns-type'));
  assert.equal(c.out.stderr, '');

  c = capture();
  assert.deepEqual(resolveSlirp4netnsCommandLine(['-v'], c.io, env), { exitCode: 0 });
  assert.match(c.out.stdout, /SLIRP_CONFIG_VERSION_MAX: 3\n/);

  c = capture();
  assert.deepEqual(resolveSlirp4netnsCommandLine(['--mtu=0', '42'], c.io, env), { exitCode: 1 });
  assert.match(c.out.stderr, /^MTU must be a positive integer \(< 65522\)\nUsage: /);
  assert.equal(c.out.stdout, '');

  c = capture();
  assert.deepEqual(resolveSlirp4netnsCommandLine(['--cidr=foo', '42'], c.io, env), { exitCode: 1 });
  assert.equal(c.out.stderr, 'invalid CIDR: foo\n');

  c = capture();
  const r = resolveSlirp4netnsCommandLine(['42', 'tap0', 'x'], c.io, env);
  assert.ok('options' in r);
  assert.equal(c.out.stdout, 'WARNING: too many arguments\n');
});

test('startup info: address plan and the host-loopback warning', () => {
  const info = formatSlirp4netnsStartupInfo(run(['--mtu=65520', '-a', '/tmp/a.sock', '42']));
  assert.match(info, /\* MTU: +65520\n/);
  assert.match(info, /\* Network: +10\.0\.2\.0\n\* Netmask: +255\.255\.255\.0\n\* Gateway: +10\.0\.2\.2\n\* DNS: +10\.0\.2\.3\n/);
  assert.match(info, /\* DHCP begin: +10\.0\.2\.15\n\* DHCP end: +10\.0\.2\.30\n\* Recommended IP: +10\.0\.2\.100\n/);
  assert.match(info, /\* API Socket: +\/tmp\/a\.sock\n/);
  assert.match(info, /WARNING: 127\.0\.0\.1:\* on the host is accessible as 10\.0\.2\.2 /);
  const quiet = formatSlirp4netnsStartupInfo(run(['--disable-host-loopback', '--disable-dns', '--cidr=192.168.0.0/16', '42']));
  assert.ok(!quiet.includes('WARNING'));
  assert.match(quiet, /\* Gateway: +192\.168\.0\.2\n\* DNS: +\(disabled\)\n/);
  assert.match(quiet, /\* Netmask: +255\.255\.0\.0\n/);
});
