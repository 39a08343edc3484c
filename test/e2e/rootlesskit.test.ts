// RootlessKit (Debian's rootlesskit) with --net=slirp4netns and --port-driver=slirp4netns, against
// the real slirp4netns and tapswitch-slirp4netns, in the e2e sandbox (test/helpers/e2e-sandbox.ts):
// the same scenario for both, so the suite shows the same behaviour from each.
//
//   rootlesskit --net=slirp4netns --slirp4netns-binary=BIN --port-driver=slirp4netns \
//     -p 0.0.0.0:PORT:80/tcp --disable-host-loopback --ipv6 CMD
//
// CMD serves TCP on :80 and connects out to a server in the "outside" namespace, over IPv4 and over
// IPv6 (--ipv6: RootlessKit passes --enable-ipv6 and configures fd00::100 itself). Checked: the
// publish answers on the host (RootlessKit adds it through our API socket), both outbound
// connections arrive NATed to the host's addresses, and RootlessKit called BIN its way (`-r 3`,
// PID and tap0, no -c, no exit fd).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { HOST, HOST_ADDR, HOST_ADDR6, OUTSIDE_ADDR, OUTSIDE_ADDR6, ROOT, SERVERS, addOutsideIpv6, dataPlaneMissing, makeOutside, probe, startServer, track } from '../helpers/sandbox';
import { ensureWideSandbox, slirp4netnsImpls, which } from '../helpers/e2e-sandbox';

const BIN = path.join(ROOT, 'dist', 'src', 'cli', 'slirp4netns.js');

if (ensureWideSandbox(__filename)) {
  const missing = which('rootlesskit') === null ? 'rootlesskit is not installed (apt-get install rootlesskit)'
    : which('newuidmap') === null ? 'newuidmap is not installed (apt-get install uidmap)' : dataPlaneMissing();
  const { impls, notes } = slirp4netnsImpls(BIN);
  let port = 18080;
  const outsideP = missing ? null : makeOutside().then(addOutsideIpv6);

  // A third run finds tapswitch-slirp4netns the way RootlessKit's default and slirp4netns's own test
  // suite do: by PATH lookup of `slirp4netns` (a symlink named so, first on PATH; no
  // --slirp4netns-binary).
  const ours = impls.find((i) => i.name === 'tapswitch-slirp4netns') as (typeof impls)[number];
  const pathDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-path-'));
  fs.symlinkSync(ours.bin, path.join(pathDir, 'slirp4netns'));
  const runs = [...impls.map((impl) => ({ impl, viaPath: false })), { impl: ours, viaPath: true }];

  for (const { impl, viaPath } of runs) {
    test(`RootlessKit + ${impl.name}${viaPath ? ' (found as `slirp4netns` on PATH)' : ''}: a -p publish answers on the host; outbound is NATed; called as RootlessKit does`,
      { skip: missing ?? false, timeout: 120_000 }, async (t) => {
        for (const n of notes) t.diagnostic(n);
        const outside = await outsideP!;
        const srv = await startServer(outside, 'tcp-server', ['--port', '0']);
        const srv6 = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR6, '--port', '0']);
        const hostPort = port++;
        const state = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-rk-'));
        const inner = [
          `"${process.execPath}" "${path.join(SERVERS, 'tcp-server.js')}" --port 80 &`,
          `"${process.execPath}" "${path.join(SERVERS, 'probe.js')}" tcp ${OUTSIDE_ADDR} ${srv.port} hello;`,
          // RootlessKit sets fd00::100 itself; until duplicate address detection ends the address is
          // "tentative" and the kernel would pick the link-local one as the source (both slirp4netns
          // and tapswitch rightly drop that off-link).
          // The default route comes from the router advertisement: wait for that too.
          'i=0; while [ $i -lt 100 ] && { ip -6 -o addr show dev tap0 scope global | grep -q tentative || [ -z "$(ip -6 route show default)" ]; }; do sleep 0.1; i=$((i+1)); done;',
          `"${process.execPath}" "${path.join(SERVERS, 'probe.js')}" tcp ${OUTSIDE_ADDR6} ${srv6.port} hello6;`,
          'wait',
        ].join(' ');
        fs.writeFileSync(impl.log, '');
        const rk = track(spawn('rootlesskit', [`--state-dir=${path.join(state, 'rk')}`, '--net=slirp4netns',
          ...(viaPath ? [] : [`--slirp4netns-binary=${impl.bin}`]),
          '--port-driver=slirp4netns', '-p', `0.0.0.0:${hostPort}:80/tcp`, '--disable-host-loopback', '--ipv6', 'sh', '-c', inner],
        { stdio: ['ignore', 'pipe', 'pipe'], env: viaPath ? { ...process.env, PATH: `${pathDir}:${process.env.PATH ?? '/usr/bin:/bin'}` } : process.env }));
        let out = '';
        let err = '';
        rk.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
        rk.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
        const until = async (re: RegExp, ms: number) => {
          const end = Date.now() + ms;
          while (!re.test(out)) {
            if (Date.now() > end || rk.exitCode !== null) throw new Error(`waiting for ${re}: stdout ${out}\nstderr ${err}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        await until(/"ready":true/, 30_000);
        await until(/"data":[^\n]*\n[^]*"(data|error)":/, 30_000);
        const [outbound, outbound6] = out.split('\n').filter((l) => /"(data|error)":/.test(l))
          .map((l) => JSON.parse(l) as { data?: string; error?: string });
        assert.match(outbound?.data ?? '', new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:\\d+\\n`), 'outbound NATed to the host address');
        assert.match(outbound6?.data ?? JSON.stringify(outbound6), new RegExp(`^you are ${HOST_ADDR6}:\\d+\\n`), 'IPv6 outbound NATed to the host address');
        // The publish (RootlessKit's slirp4netns port driver -> add_hostfwd on the API socket).
        let got: Record<string, unknown> = {};
        for (let i = 0; i < 50; i++) {
          got = await probe(HOST, ['tcp', '127.0.0.1', String(hostPort), '']);
          if (got.data !== undefined) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        assert.match(String(got.data), /^you are 10\.0\.2\.2:\d+\n$/, `publish: ${JSON.stringify(got)}; stderr ${err}`);
        const fromOutside = await probe(outside, ['tcp', HOST_ADDR, String(hostPort), '']);
        assert.match(String(fromOutside.data), new RegExp(`^you are ${OUTSIDE_ADDR.replace(/\./g, '\\.')}:\\d+\\n$`), 'an outside client keeps its address');
        const calls = fs.readFileSync(impl.log, 'utf8').trim().split('\n');
        const run = calls.find((l) => !l.includes('--help') && !l.includes('--version')) ?? '';
        t.diagnostic(`RootlessKit called: ${calls.join(' | ')}`);
        assert.match(run, /(^| )-r 3( |$)/);
        assert.match(run, / tap0$/);
        assert.match(run, /--enable-ipv6/);
        assert.doesNotMatch(run, /(^| )(-c|--configure|-e)( |$)/);
        rk.kill('SIGTERM');
        srv.stop();
        srv6.stop();
        await new Promise((r) => rk.once('exit', r));
      });
  }
}
