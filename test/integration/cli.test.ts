// CLI edge cases and the `run`/`attach` lifecycles, in a throwaway sandbox (see test/helpers/sandbox.ts).
// Tests that need a TAP run through lifecycleCli(): the real data plane once it is built, else the
// stand-in (each such test prints which in a diagnostic line).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, STANDIN_CLI, ensureSandbox, lifecycleCli, runCli, sh, spawnIn, HOST, tapMissing, track, waitForLine } from '../helpers/sandbox';
import { spawn } from 'node:child_process';

if (ensureSandbox(__filename)) {
  const noTap = tapMissing();
  const { entry, note } = lifecycleCli();
  const life = (name: string, fn: (t: import('node:test').TestContext) => Promise<void>) =>
    test(name, { skip: noTap ?? false, timeout: 60_000 }, async (t) => {
      t.diagnostic(note);
      await fn(t);
    });
  const run = (args: string[], timeoutMs?: number) => runCli(['run', '--network', 'userspace', ...args], { entry, ...(timeoutMs ? { timeoutMs } : {}) });

  /** One line on stderr of the form `tapswitch: <what went wrong>: <what to do>`. */
  const oneLineError = (stderr: string, re: RegExp) => {
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
    assert.match(lines[0] as string, /^tapswitch: .+: .+/);
    assert.match(lines[0] as string, re);
  };

  test('an unknown flag is a usage error (64) naming it and pointing at --help', async () => {
    const r = await runCli(['run', '--bogus', '--', 'true']);
    assert.equal(r.code, 64);
    oneLineError(r.stderr, /unknown option --bogus: see `tapswitch run --help`/);
    const r2 = await runCli(['--frobnicate']);
    assert.equal(r2.code, 64);
    oneLineError(r2.stderr, /unknown option --frobnicate.*tapswitch --help/);
    const r3 = await runCli(['launch']);
    assert.equal(r3.code, 64);
    oneLineError(r3.stderr, /unknown command launch/);
  });

  test('bad CIDRs exit 65 with slirp4netns\'s texts', async () => {
    const cases: Array<[string, string]> = [
      ['10.0.2', 'invalid CIDR: 10.0.2'],
      ['10.0.2.0/26', 'prefix length needs to be 1-25'],
      ['10.0.2.100/24', 'CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24'],
    ];
    for (const [cidr, text] of cases) {
      const r = await runCli(['run', '--network', 'userspace', '--cidr', cidr, '--', 'true']);
      assert.equal(r.code, 65, cidr);
      oneLineError(r.stderr, new RegExp(`^tapswitch: ${text.replace(/[./]/g, '\\$&')}: `));
    }
  });

  test('bad values exit 65; a missing command is a usage error', async () => {
    for (const args of [['--mtu', '67'], ['--mtu', '65521'], ['--queues', '0'], ['--log-level', 'chatty'], ['--dns-forward', 'x']]) {
      const r = await runCli(['run', '--network', 'userspace', ...args, '--', 'true']);
      assert.equal(r.code, 65, args.join(' '));
      oneLineError(r.stderr, /./);
    }
    const r = await runCli(['run', '--mtu', '1500']);
    assert.equal(r.code, 64);
    oneLineError(r.stderr, /missing command/);
    const a = await runCli(['attach']);
    assert.equal(a.code, 64);
    const b = await runCli(['attach', '999999999']);
    assert.equal(b.code, 65);
    oneLineError(b.stderr, /no process with PID 999999999/);
  });

  test('--help lists every flag and the exit codes, on stdout, exit 0; --version', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    for (const flag of ['--mtu', '--cidr', '--disable-host-loopback', '--dns-forward', '--queues', '--log-level', '--stats',
      '--map-user-only', '--netns', '--userns']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
    assert.match(r.stdout, /Exit status:/);
    assert.match(r.stdout, /127 +CMD not found/);
    assert.equal((await runCli(['run', '--help'])).stdout, r.stdout);
    const v = await runCli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^tapswitch \d+\.\d+\.\d+\n$/);
    const none = await runCli([]);
    assert.equal(none.code, 64);
  });

  test('a missing /dev/net/tun is ERR_NO_TUN (69) saying to load the module', async () => {
    // Hide /dev/net in a nested mount namespace only.
    const r = spawnSyncOut('unshare', ['--mount', '--', 'sh', '-c', `mount -t tmpfs none /dev/net && exec "${process.execPath}" "${CLI}" run --network userspace -- true`]);
    assert.equal(r.status, 69);
    oneLineError(r.stderr, /\/dev\/net\/tun is missing: load the tun module/);
  });

  life('CMD\'s exit code is passed through', async () => {
    const r = await run(['--', 'sh', '-c', 'exit 7']);
    assert.equal(r.code, 7, r.stderr);
    assert.equal((await run(['--', 'true'])).code, 0);
  });

  life('a missing command exits 127, a non-executable one 126', async () => {
    // A plain PATH: an unsearchable directory on PATH (e.g. root's, under `su`) makes sh say 126.
    const env = { ...process.env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
    const r = await runCli(['run', '--network', 'userspace', '--', 'tapswitch-no-such-command'], { entry, env });
    assert.equal(r.code, 127, r.stderr);
    assert.match(r.stderr, /not found/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-noexec-'));
    const file = path.join(dir, 'script');
    fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    try {
      const r2 = await run(['--', file]);
      assert.equal(r2.code, 126, r2.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  life('inside: tap0 is 10.0.2.100/24 with default via 10.0.2.2, lo is up, resolv.conf points at 10.0.2.3', async () => {
    const r = await run(['--', 'sh', '-c', 'ip -o -4 addr show; echo ---; ip route; echo ---; cat /etc/resolv.conf; echo ---; id -u']);
    assert.equal(r.code, 0, r.stderr);
    const [addrs = '', routes = '', resolv = '', uid = ''] = r.stdout.split('---\n');
    assert.match(addrs, /\d+: tap0 +inet 10\.0\.2\.100\/24 /);
    assert.match(addrs, /\d+: lo +inet 127\.0\.0\.1\/8 /);
    assert.match(routes, /^default via 10\.0\.2\.2 dev tap0/m);
    assert.deepEqual(resolv.split('\n').filter((l) => l.startsWith('nameserver')), ['nameserver 10.0.2.3']);
    assert.equal(uid.trim(), '0');
    // The host's own resolv.conf is untouched.
    assert.doesNotMatch(fs.readFileSync('/etc/resolv.conf', 'utf8'), /10\.0\.2\.3/);
  });

  life('a dangling /etc/resolv.conf symlink is left alone with a warning; CMD still runs', async () => {
    // A nested mount namespace with an empty /etc whose resolv.conf points nowhere.
    const r = spawnSyncOut('unshare', ['--mount', '--', 'sh', '-c',
      `mount -t tmpfs none /etc && ln -s /run/nowhere/stub-resolv.conf /etc/resolv.conf && exec "${process.execPath}" "${entry}" run --network userspace -- sh -c 'exit 3'`]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /^tapswitch: warn: leaving the container's \/etc\/resolv.conf as it is: \/etc\/resolv.conf is a dangling symlink to \/run\/nowhere\/stub-resolv.conf$/m);
  });

  life('--cidr and --mtu are honoured', async () => {
    const r = await run(['--mtu', '9000', '--cidr', '192.168.7.0/25', '--', 'sh', '-c', 'ip -o link show tap0; ip route; cat /etc/resolv.conf']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /tap0: .* mtu 9000 /);
    assert.match(r.stdout, /default via 192\.168\.7\.2 dev tap0/);
    assert.match(r.stdout, /192\.168\.7\.0\/25 dev tap0 .*src 192\.168\.7\.100/);
    assert.match(r.stdout, /nameserver 192\.168\.7\.3/);
  });

  life('the container is isolated: the host\'s interfaces are not there', async () => {
    const r = await run(['--', 'ip', '-o', 'link']);
    assert.equal(r.code, 0, r.stderr);
    const names = r.stdout.trim().split('\n').map((l) => l.split(': ')[1]);
    assert.deepEqual(names.sort(), ['lo', 'tap0']);
  });

  life('nothing is left behind: background processes, temp files', async () => {
    const before = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('tapswitch-'));
    const r = await run(['--', 'sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $!; sleep 1000 >/dev/null 2>&1 & exit 3']);
    assert.equal(r.code, 3, r.stderr);
    // The PID printed inside the namespace is the same outside (no PID namespace).
    const pid = Number(r.stdout.trim());
    assert.ok(pid > 0);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(fs.existsSync(`/proc/${pid}`) && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), false,
      'background sleep was killed');
    // Only what this run created counts: other test files run `tapswitch run` concurrently and
    // create and remove their own tapswitch-* files meanwhile.
    const after = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('tapswitch-'));
    assert.deepEqual(after.filter((n) => !before.includes(n)), []);
  });

  life('SIGTERM and SIGINT are passed on to CMD; a killed CMD gives 128+N', async () => {
    for (const [signal, trapped, expected] of [['SIGTERM', true, 42], ['SIGTERM', false, 143], ['SIGINT', false, 130]] as const) {
      const script = trapped
        ? 'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done'
        : `echo ready; exec sleep 1000`;
      const child = track(spawn(process.execPath, [entry, 'run', '--network', 'userspace', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
      await waitForLine(child, (l) => l === 'ready', 20_000);
      await new Promise((res) => setTimeout(res, 100));
      const done = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
      child.kill(signal);
      assert.equal(await done, expected, `${signal} ${trapped ? 'trapped' : 'default'}`);
    }
  });

  test('a data plane that keeps crashing stops CMD and exits 70 with one line', { skip: noTap ?? false, timeout: 60_000 }, async () => {
    // Always the stand-in here: it can be told to crash.
    const r = await runCli(['run', '--network', 'userspace', '--', 'sleep', '1000'], { entry: STANDIN_CLI, env: { ...process.env, TSW_FAKE_WORKER: 'crash-after-ready' } });
    assert.equal(r.code, 70, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.filter((l) => l.includes('restarting its worker')).length, 5);
    assert.match(lines[lines.length - 1] as string, /^tapswitch: data plane failed 6 times within 60 s, giving up: /);
  });

  life('--stats prints a counters table at exit', async () => {
    const r = await run(['--stats', '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^tapswitch: stats:/m);
  });

  life('attach to a TAP created beforehand (RootlessKit\'s way): served, and left in place afterwards', async () => {
    const holder = spawnIn(HOST, 'unshare', ['--net', '--', 'sh', '-c', 'echo ready; exec sleep 1000']);
    await waitForLine(holder, (l) => l === 'ready');
    const ns = `--net=/proc/${holder.pid}/ns/net`;
    sh('nsenter', [ns, 'ip', 'tuntap', 'add', 'name', 'tap0', 'mode', 'tap']);
    // A single-queue TAP refuses a multi-queue attach: a coded error with a hint.
    const mq = await runCli(['attach', '--queues', '2', String(holder.pid)], { entry });
    assert.equal(mq.code, 125, mq.stderr);
    assert.match(mq.stderr, /^tapswitch: cannot attach to TAP tap0 .*--queues/m);
    const child = track(spawn(process.execPath, [entry, 'attach', '--log-level', 'info', String(holder.pid)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const done = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    for (let i = 0; i < 100 && !stderr.includes('serving tap0'); i++) await new Promise((res) => setTimeout(res, 50));
    assert.match(stderr, /serving tap0/);
    assert.match(sh('nsenter', [ns, 'ip', '-o', '-4', 'addr', 'show', 'tap0']), /inet 10\.0\.2\.100\/24/);
    child.kill('SIGINT');
    assert.equal(await done, 0, stderr);
    assert.match(sh('nsenter', [ns, 'ip', '-d', 'link', 'show', 'tap0']), /persist on/);
    holder.kill('SIGKILL');
  });

  life('attach serves an existing namespace until SIGTERM, configuring tap0', async () => {
    const holder = spawnIn(HOST, 'unshare', ['--net', '--', 'sh', '-c', 'echo ready; exec sleep 1000']);
    await waitForLine(holder, (l) => l === 'ready');
    const pid = holder.pid as number;
    const child = track(spawn(process.execPath, [entry, 'attach', '--log-level', 'info', String(pid)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const done = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    for (let i = 0; i < 100 && !stderr.includes('serving tap0'); i++) await new Promise((res) => setTimeout(res, 50));
    assert.match(stderr, /serving tap0/);
    const addr = sh('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-o', '-4', 'addr', 'show', 'tap0']);
    assert.match(addr, /inet 10\.0\.2\.100\/24/);
    child.kill('SIGTERM');
    assert.equal(await done, 0, stderr);
    // The TAP vanished with tapswitch's fds.
    assert.equal(sh('nsenter', [`--net=/proc/${pid}/ns/net`, 'ip', '-o', 'link']).includes('tap0'), false);
    holder.kill('SIGKILL');
  });
}

function spawnSyncOut(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = require('node:child_process').spawnSync(cmd, args, { encoding: 'utf8' }) as { status: number | null; stdout: string; stderr: string };
  return r;
}
