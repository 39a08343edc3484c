// Podman 4.3 (Debian's podman) with `--network slirp4netns`, against the real slirp4netns and
// tapswitch-slirp4netns, in the e2e sandbox (test/helpers/e2e-sandbox.ts). The same scenario for
// both: a busybox image made locally (`podman import` of a static busybox rootfs), a published
// port through the slirp4netns API (port_handler=slirp4netns), DNS through the forwarder at
// 10.0.2.3 to a resolver on the host's loopback, and an outbound connection.
//
// How Podman runs here (shared/docs/slirp4netns-compat.md): `--runtime runc` (crun refuses this
// machine's hybrid cgroups), cgroup_manager=cgroupfs, storage driver vfs, its own containers.conf,
// storage.conf, --root/--runroot and XDG dirs under a temp dir; `network_cmd_path` points at the
// implementation under test. Podman runs as root of the sandbox's user namespace (so "rootful" to
// itself, but without any real privilege): it then starts slirp4netns with `-c -e 3 -r 4
// --netns-type=path` exactly as rootless Podman does.
//
// IPv6 stays at Podman's default: Podman 4.3 passes --enable-ipv6 whenever the binary's --help
// offers it (and refuses a binary without it: "enable_ipv6 not supported"). The container must then
// get a SLAAC address in fd00::/64 from the router advertisements, ping the gateway fd00::2, and
// reach an outside IPv6 server (2001:db8::1) as the host's 2001:db8::2. Podman passes
// --disable-host-loopback by default, so fd00::2 (the host's ::1) must be unreachable, as 10.0.2.2 is.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { HOST, HOST_ADDR, HOST_ADDR6, OUTSIDE_ADDR, OUTSIDE_ADDR6, ROOT, addOutsideIpv6, dataPlaneMissing, makeOutside, probe, startServer, track, useResolvConf } from '../helpers/sandbox';
import { ensureWideSandbox, slirp4netnsImpls, which } from '../helpers/e2e-sandbox';

const BIN = path.join(ROOT, 'dist', 'src', 'cli', 'slirp4netns.js');

function busyboxMissing(): string | null {
  const bb = which('busybox');
  if (bb === null) return 'busybox is not installed (apt-get install busybox-static)';
  const r = spawnSync('sh', ['-c', `file -L "${bb}" 2>/dev/null || ldd "${bb}" 2>&1`], { encoding: 'utf8' });
  if (!/statically linked|not a dynamic executable/.test(r.stdout)) return `${bb} is not static (apt-get install busybox-static)`;
  return null;
}

if (ensureWideSandbox(__filename)) {
  const missing = which('podman') === null ? 'podman is not installed (apt-get install podman)'
    : which('runc') === null ? 'runc is not installed (apt-get install runc)'
      : busyboxMissing() ?? dataPlaneMissing();
  const { impls, notes } = slirp4netnsImpls(BIN);
  let port = 28080;

  // One storage and image for every run; a containers.conf per implementation.
  const base = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), 'tsw-podman-'));
  const dirs = { root: path.join(base, 'root'), runroot: path.join(base, 'runroot'), tmp: path.join(base, 'tmp'),
    config: path.join(base, 'config'), run: path.join(base, 'run') };
  let setup: Promise<void> | null = null;
  const podman = (conf: string, args: string[]) => ({
    cmd: 'podman',
    args: ['--runtime', 'runc', '--root', dirs.root, '--runroot', dirs.runroot, '--tmpdir', dirs.tmp, '--cgroup-manager', 'cgroupfs', ...args],
    env: { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: path.join(base, 'storage.conf'),
      XDG_RUNTIME_DIR: dirs.run, XDG_CONFIG_HOME: dirs.config, TMPDIR: dirs.tmp },
  });
  const containersConf = (networkCmd: string): string => {
    const file = path.join(base, `containers-${path.basename(networkCmd)}.conf`);
    fs.writeFileSync(file, [
      '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', 'runtime = "runc"',
      `network_cmd_path = "${networkCmd}"`, '',
    ].join('\n'));
    return file;
  };
  const prepare = async (): Promise<void> => {
    for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(base, 'storage.conf'),
      `[storage]\ndriver = "vfs"\ngraphroot = "${dirs.root}"\nrunroot = "${dirs.runroot}"\n`);
    const rootfs = path.join(base, 'rootfs');
    for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
    fs.copyFileSync(which('busybox') as string, path.join(rootfs, 'bin', 'busybox'));
    fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    for (const a of ['sh', 'echo', 'cat', 'ip', 'nc', 'nslookup', 'sleep', 'grep', 'ping']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', a));
    const tar = path.join(base, 'rootfs.tar');
    const t = spawnSync('tar', ['-C', rootfs, '-cf', tar, '.'], { encoding: 'utf8' });
    assert.equal(t.status, 0, t.stderr);
    const p = podman(containersConf('/bin/false'), ['import', tar, 'localhost/tsw-busybox']);
    const r = spawnSync(p.cmd, p.args, { env: p.env, encoding: 'utf8' });
    assert.equal(r.status, 0, `podman import: ${r.stderr}`);
    // The host's resolver is on its loopback (like systemd-resolved's 127.0.0.53).
    useResolvConf('nameserver 127.0.0.1\n');
    await startServer(HOST, 'dns-server', ['--host', '127.0.0.1', '--port', '53']);
  };
  const outsideP = missing ? null : makeOutside().then(addOutsideIpv6);

  for (const impl of impls) {
    test(`Podman 4.3 + ${impl.name}: published port, DNS via 10.0.2.3, outbound; called with -c -e 3 -r 4`,
      { skip: missing ?? false, timeout: 300_000 }, async (t) => {
        for (const n of notes) t.diagnostic(n);
        setup ??= prepare();
        await setup;
        const outside = await outsideP!;
        const srv = await startServer(outside, 'tcp-server', ['--port', '0']);
        const srv6 = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR6, '--port', '0']);
        const hostPort = port++;
        const script = [
          'ip -4 -o addr show tap0',
          'nslookup tapswitch.test 10.0.2.3',
          `echo "outbound: $(nc ${OUTSIDE_ADDR} ${srv.port} </dev/null)"`,
          // SLAAC: wait out duplicate address detection (the address is "tentative" until then).
          'i=0; while [ $i -lt 100 ] && ! ip -6 -o addr show dev tap0 scope global | grep -v tentative | grep -q "inet6 fd00:"; do sleep 0.1; i=$((i+1)); done',
          'ip -6 -o addr show dev tap0 scope global',
          'ping -6 -c 1 -W 5 fd00::2 >/dev/null && echo "ping6: ok"',
          `echo "outbound6: $(nc ${OUTSIDE_ADDR6} ${srv6.port} </dev/null 2>&1)"`,
          `echo "host loopback6: $(nc fd00::2 ${srv6.port} </dev/null 2>&1)"`,
          'echo READY',
          'printf "hello from podman\\n" | nc -l -p 80',
        ].join('; ');
        const p = podman(containersConf(impl.bin), ['run', '--rm', '--network', 'slirp4netns:port_handler=slirp4netns',
          '-p', `${hostPort}:80`, 'localhost/tsw-busybox', 'sh', '-c', script]);
        const proc = track(spawn(p.cmd, p.args, { env: p.env, stdio: ['ignore', 'pipe', 'pipe'] }));
        let out = '';
        let err = '';
        proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
        proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
        const end = Date.now() + 120_000;
        while (!out.includes('READY')) {
          if (Date.now() > end || proc.exitCode !== null) throw new Error(`podman run: stdout ${out}\nstderr ${err}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(out, /inet 10\.0\.2\.100\/24 /);
        assert.match(out, /Address( 1)?:\s+198\.51\.100\.7/, `DNS through the forwarder: ${out}`);
        assert.match(out, new RegExp(`outbound: you are ${HOST_ADDR.replace(/\./g, '\\.')}:\\d+`));
        assert.match(out, /inet6 fd00::[0-9a-f:]+\/64 scope global/, `SLAAC address from the RA: ${out}`);
        assert.match(out, /ping6: ok/, `ping -6 fd00::2: ${out}`);
        assert.match(out, new RegExp(`outbound6: you are ${HOST_ADDR6}:\\d+`), `IPv6 outbound: ${out}`);
        assert.match(out, /host loopback6: nc: can't connect to remote host: Network is unreachable/, `--disable-host-loopback: ${out}`);
        let got: Record<string, unknown> = {};
        for (let i = 0; i < 50; i++) {
          got = await probe(HOST, ['tcp', '127.0.0.1', String(hostPort), '']);
          if (got.data !== undefined) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(got.data, 'hello from podman\n', `publish: ${JSON.stringify(got)}; stderr ${err}`);
        const code = await new Promise<number | null>((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.once('exit', (c) => r(c))));
        assert.equal(code, 0, err);
        const calls = fs.readFileSync(impl.log, 'utf8').trim().split('\n');
        const run = calls.find((l) => !l.includes('--help') && !l.includes('--version')) ?? '';
        t.diagnostic(`Podman called: ${calls.join(' | ')}`);
        assert.match(run, / -c -e 3 -r 4 /);
        assert.match(run, /--netns-type=path \S+ tap0$/);
        assert.match(run, /--api-socket /);
        assert.match(run, / --enable-ipv6 /, 'Podman asks for IPv6 when --help offers it');
        assert.match(run, /--disable-host-loopback/);
        srv.stop();
        srv6.stop();
      });
  }
}
