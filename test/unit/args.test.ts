import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseArgs, type OptionSpec } from '../../src/cli/args';
import { TapswitchError } from '../../src/control/errors';
import { parseAttach, parseRun, usage } from '../../src/cli/main';

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
  for (const flag of ['--mtu', '--cidr', '--disable-host-loopback', '--dns-forward', '--queues', '--log-level', '--stats',
    '--map-user-only', '--netns', '--userns', '--tap', '--help']) {
    assert.ok(text.includes(flag), flag);
  }
  for (const status of ['64', '65', '69', '70', '125', '126', '127', '128+N']) assert.ok(text.includes(`  ${status} `), status);
});

test('run picks the kernel path only for its flags, before CMD', async () => {
  const { wantsKernelPath } = await import('../../src/cli/main');
  assert.equal(wantsKernelPath(['--network', 'x', '--', 'sh']), true);
  assert.equal(wantsKernelPath(['--mtu', '9000', '--network=y', '--', 'sh']), true);
  // --publish alone is the userspace path's port forwarding (issue 5); --network userspace too.
  assert.equal(wantsKernelPath(['-p', '8080:80', 'sh']), false);
  assert.equal(wantsKernelPath(['--publish=8080:80', '-p', '9090:90/udp', '--', 'sh']), false);
  assert.equal(wantsKernelPath(['--network', 'userspace', '-p', '8080:80', 'sh']), false);
  assert.equal(wantsKernelPath(['--network=userspace', 'sh']), false);
  assert.equal(wantsKernelPath(['-p', '8080:80', '--network', 'bridge', 'sh']), true);
  assert.equal(wantsKernelPath(['--network', 'none', 'sh']), true);
  assert.equal(wantsKernelPath(['--network=container:x', 'sh']), true);
  assert.equal(wantsKernelPath(['--name', 'c1', 'sh']), true);
  assert.equal(wantsKernelPath(['--mtu', '9000', '--', 'sh', '--network', 'x']), false);
  assert.equal(wantsKernelPath(['sh', '--network', 'x']), false);
  assert.equal(wantsKernelPath(['--cidr', '10.0.2.0/24', 'ls']), false);
});
