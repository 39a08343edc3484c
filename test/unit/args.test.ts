import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseArgs, type OptionSpec } from '../../src/cli/args';
import { TapswitchError } from '../../src/control/errors';
import { parseAttach, parseRun, parseRunArgs, usage } from '../../src/cli/main';

const specs: OptionSpec[] = [
  { name: 'mtu', short: 'm', value: true, help: '' },
  { name: 'stats', value: false, help: '' },
  { name: 'help', short: 'h', value: false, help: '' },
];

function usageErr(fn: () => unknown): TapswitchError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TapswitchError);
    return e;
  }
  assert.fail('expected an error');
}

test('GNU forms: --flag=value, --flag value, -m N, -mN', () => {
  for (const argv of [['--mtu=9000'], ['--mtu', '9000'], ['-m', '9000'], ['-m9000']]) {
    assert.equal(parseArgs(argv, specs).options.get('mtu'), '9000', argv.join(' '));
  }
  assert.equal(parseArgs(['--stats'], specs).options.get('stats'), '');
});

test('-- ends options; positionals interleave unless stopAtPositional', () => {
  const a = parseArgs(['x', '--stats', 'y', '--', '--mtu', 'z'], specs);
  assert.deepEqual(a.positionals, ['x', 'y']);
  assert.deepEqual(a.rest, ['--mtu', 'z']);
  assert.equal(a.sawDoubleDash, true);
  const b = parseArgs(['--stats', 'cmd', '--mtu', '1'], specs, { stopAtPositional: true });
  assert.deepEqual(b.rest, ['cmd', '--mtu', '1']);
  assert.equal(b.options.has('mtu'), false);
});

test('unknown flags and missing values are usage errors naming the flag', () => {
  const e = usageErr(() => parseArgs(['--bogus'], specs));
  assert.equal(e.code, 'ERR_USAGE');
  assert.equal(e.exitCode, 64);
  assert.match(e.oneLine(), /unknown option --bogus: see `tapswitch --help`/);
  assert.match(usageErr(() => parseArgs(['--bogus=1'], specs)).message, /--bogus$/);
  assert.match(usageErr(() => parseArgs(['-x'], specs)).message, /unknown option -x/);
  assert.match(usageErr(() => parseArgs(['--mtu'], specs)).message, /--mtu needs a value/);
  assert.match(usageErr(() => parseArgs(['--stats=1'], specs)).message, /takes no value/);
  assert.match(usageErr(() => parseArgs(['--bogus'], specs, { command: 'run' })).oneLine(), /tapswitch run --help/);
});

test('run: options, then CMD with its own flags untouched', () => {
  const o = parseRun(['--mtu', '9000', '--cidr=10.1.0.0/16', '--disable-host-loopback', '--queues', '2', '--stats', '--', 'sh', '-c', 'exit 7']);
  assert.ok(o !== 'help');
  assert.deepEqual(o.command, ['sh', '-c', 'exit 7']);
  assert.equal(o.mtu, 9000);
  assert.deepEqual(o.cidr, { network: 0x0a010000, prefixLength: 16 });
  assert.equal(o.hostLoopback, false);
  assert.equal(o.queues, 2);
  assert.equal(o.stats, true);
  assert.equal(o.mapUserOnly, false);
  const p = parseRun(['ls', '-l', '--mtu']);
  assert.ok(p !== 'help');
  assert.deepEqual(p.command, ['ls', '-l', '--mtu']);
  assert.equal(p.mtu, 1500);
  assert.equal(parseRun(['--help']), 'help');
});

test('run: a missing CMD or a bad value is an error with the right code', () => {
  assert.equal(usageErr(() => parseRun([])).code, 'ERR_USAGE');
  assert.equal(usageErr(() => parseRun(['--mtu', '1'])).code, 'ERR_USAGE');
  assert.equal(usageErr(() => parseRun(['--mtu', '1', 'true'])).code, 'ERR_BAD_MTU');
  assert.equal(usageErr(() => parseRun(['--log-level', 'loud', 'true'])).code, 'ERR_BAD_VALUE');
  assert.equal(usageErr(() => parseRun(['--cidr', '10.0.2.1/24', 'true'])).code, 'ERR_BAD_CIDR');
});

test('attach: PID or --netns, not both', () => {
  const a = parseAttach(['1234']);
  assert.ok(a !== 'help');
  assert.equal(a.pid, 1234);
  assert.equal(a.tapName, 'tap0');
  assert.equal(a.configure, true);
  const b = parseAttach(['--netns', '/run/netns/x', '--userns=/proc/1/ns/user', '--tap', 'tap1', '--no-configure']);
  assert.ok(b !== 'help');
  assert.equal(b.netnsPath, '/run/netns/x');
  assert.equal(b.usernsPath, '/proc/1/ns/user');
  assert.equal(b.tapName, 'tap1');
  assert.equal(b.configure, false);
  assert.equal(usageErr(() => parseAttach([])).code, 'ERR_USAGE');
  assert.equal(usageErr(() => parseAttach(['1', '--netns', 'x'])).code, 'ERR_USAGE');
  assert.equal(usageErr(() => parseAttach(['abc'])).code, 'ERR_BAD_VALUE');
  assert.equal(usageErr(() => parseAttach(['1', '--tap', 'a-very-long-interface-name'])).code, 'ERR_BAD_VALUE');
});

test('--help lists every flag and the exit codes', () => {
  const text = usage();
  for (const flag of ['--mtu', '--cidr', '--ipv6', '--disable-host-loopback', '--dns-forward', '--queues', '--log-level', '--stats',
    '--map-user-only', '--netns', '--userns', '--tap', '--help']) {
    assert.ok(text.includes(flag), flag);
  }
  for (const status of ['64', '65', '69', '70', '75', '125', '126', '127', '128+N']) assert.ok(text.includes(`  ${status} `), status);
});

test('run: --network, else root or not, picks the path; flags of the other path are refused, naming why', () => {
  const root = () => true, user = () => false;
  const pick = (argv: string[], r: () => boolean) => {
    const c = parseRunArgs(argv, r);
    assert.ok(c !== 'help');
    return c;
  };
  // No --network: bridge as root, userspace otherwise; --network userspace either way.
  assert.deepEqual([pick(['sh'], root).path, (pick(['sh'], root).options as { network?: string }).network], ['kernel', 'bridge']);
  assert.equal(pick(['sh'], user).path, 'userspace');
  // --ipv6 (-6) is the userspace path's, off unless asked for.
  assert.equal((pick(['sh'], user).options as { ipv6?: boolean }).ipv6, false);
  assert.equal((pick(['-6', 'sh'], user).options as { ipv6?: boolean }).ipv6, true);
  assert.equal((pick(['--ipv6', '--network', 'userspace', 'sh'], root).options as { ipv6?: boolean }).ipv6, true);
  assert.equal(pick(['--network', 'userspace', 'sh'], root).path, 'userspace');
  assert.equal(pick(['--network=userspace', '-p', '8080:80', 'sh'], root).path, 'userspace');
  // Any other value is the kernel path, root or not (it then needs CAP_NET_ADMIN and says so).
  for (const net of ['bridge', 'none', 'host', 'container:x', 'web']) {
    const c = pick(['--network', net, 'sh'], user);
    assert.equal(c.path, 'kernel', net);
    assert.equal((c.options as { network: string }).network, net);
  }
  // The root check is asked only when --network is absent.
  let asked = 0;
  pick(['--network', 'web', 'sh'], () => { asked++; return true; });
  assert.equal(asked, 0);
  // Options end at CMD: its own --network is its own.
  assert.deepEqual(pick(['--mtu', '9000', '--', 'sh', '--network', 'x'], user).options.command, ['sh', '--network', 'x']);
  assert.equal(pick(['sh', '--network', 'x'], user).path, 'userspace');

  // The kernel path's options, every shared flag carried over.
  const k = pick(['--network', 'web', '--name=api', '-p', '8080:80', '--publish=127.0.0.1:53:53/udp', '--ip', '172.18.0.9',
    '--mac-address', '02:42:ac:12:00:09', '--mtu', '1400', '--dns-forward', '192.0.2.53', '--log-level', 'debug', '--stats',
    '--disable-host-loopback', '--', 'nginx', '-g', 'daemon off;'], user);
  assert.equal(k.path, 'kernel');
  assert.deepEqual(k.options, {
    network: 'web', name: 'api', publish: ['8080:80', '127.0.0.1:53:53/udp'], ip: '172.18.0.9', mac: '02:42:ac:12:00:09',
    mtu: 1400, dnsForward: '192.0.2.53', logLevel: 'debug', stats: true, hostLoopback: false, command: ['nginx', '-g', 'daemon off;'],
  });
  const plain = pick(['--net=none', 'true'], user);
  assert.deepEqual(plain.options, { network: 'none', publish: [], logLevel: 'warn', stats: false, hostLoopback: true, command: ['true'] });

  // Flags of the other path: usage errors (64) that name the flag, the path and the way out.
  const cases: Array<[string[], () => boolean, RegExp]> = [
    [['--queues', '2', 'sh'], root, /--queues does not apply to the kernel path, the default as root: .*worker threads.*pass --network userspace/],
    [['--cidr', '10.1.0.0/24', '--network', 'web', 'sh'], user, /--cidr does not apply to --network web: .*network create --subnet/],
    [['--map-user-only', 'sh'], root, /--map-user-only does not apply to the kernel path.*no new user namespace/],
    [['--name', 'c1', 'sh'], user, /--name does not apply to the userspace path, the default without root: .*pass --network bridge/],
    [['--network', 'userspace', '--ip', '10.0.2.5', 'sh'], root, /--ip does not apply to --network userspace: .*\+100/],
    [['--mac', '02:00:00:00:00:01', 'sh'], user, /--mac does not apply/],
    [['-6', '--network', 'web', 'sh'], user, /--ipv6 does not apply to --network web: kernel networks are IPv4-only/],
  ];
  for (const [argv, r, re] of cases) {
    const e = usageErr(() => parseRunArgs(argv, r));
    assert.equal(e.code, 'ERR_USAGE', argv.join(' '));
    assert.match(e.message, re);
  }
  // Values are still checked on the kernel path.
  assert.equal(usageErr(() => parseRunArgs(['--network', 'web', '--mtu', '1', 'sh'], user)).code, 'ERR_BAD_MTU');
  assert.equal(usageErr(() => parseRunArgs(['--network=', 'sh'], user)).code, 'ERR_BAD_VALUE');
  assert.equal(usageErr(() => parseRunArgs(['--network', 'web'], user)).code, 'ERR_USAGE');
});

test('--help states the default-path rule and every run flag', () => {
  const text = usage();
  assert.match(text, /no --network +bridge as root, userspace otherwise/);
  assert.match(text, /uid 0 with CAP_NET_ADMIN/);
  for (const flag of ['--network MODE', '--name NAME', '--ip ADDR', '--mac MAC', '--publish']) assert.ok(text.includes(flag), flag);
  assert.ok(!text.includes('--mac-address'), 'aliases stay out of the help');
});
