// tapswitch-slirp4netns driven exactly as its clients drive it (fd numbers, pipes, flags, API calls),
// and port forwarding end to end, in a throwaway sandbox (test/helpers/sandbox.ts):
//
//   - Podman 4.3's form: `-c -e 3 -r 4 --netns-type=path NETNS tap0`, no user namespace to enter;
//   - RootlessKit's form: `--mtu 65520 -r 3 ... PID tap0` with tap0 pre-created without a vnet
//     header and no -c (the client configures the link), killed with SIGKILL;
//   - forwards through the API socket: TCP 20 MB each way with SHA-256, UDP, the source address the
//     guest sees (loopback client -> gateway, other clients keep theirs), removal;
//   - `tapswitch run -p`: publish, 127.0.0.1-only, a taken port fails before CMD starts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import {
  CLI, HOST, HOST_ADDR, OUTSIDE_ADDR, ROOT, dataPlaneMissing, ensureSandbox, makeOutside, probe, runCli, sh,
  spawnIn, startServer, track, waitForLine, type Outside, type Place,
} from '../helpers/sandbox';
import { apiCall, startSlirp4netns } from '../helpers/slirp4netns-client';

const BIN = path.join(ROOT, 'dist', 'src', 'cli', 'slirp4netns.js');
const MB20 = 20 * 1024 * 1024;

if (ensureSandbox(__filename)) {
  const missing = dataPlaneMissing();
  const opts = { skip: missing ?? false, timeout: 120_000 };

  /** A network namespace to serve (no user namespace: Podman's case) and its holder. */
  async function netnsOnly(): Promise<{ pid: number; netns: string; at: Place }> {
    const holder = track(spawn('unshare', ['--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000000'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await waitForLine(holder, (l) => l === 'ready');
    const pid = holder.pid as number;
    const netns = `/proc/${pid}/ns/net`;
    return { pid, netns, at: { prefix: ['nsenter', `--net=${netns}`], name: 'container' } };
  }

  let outsideOnce: Promise<Outside> | undefined;
  /** One "outside" per file: a second veth with the same addresses would shadow the first. */
  const getOutside = () => (outsideOnce ??= makeOutside());

  /** Connect from `place`, read everything: greeting line, byte count and SHA-256 of the rest. */
  async function download(place: Place, host: string, port: number): Promise<{ greeting: string; bytes: number; sha256: string }> {
    const script = `const s=require('net').connect(${port},'${host}');const h=require('crypto').createHash('sha256');let g='',n=0,buf=Buffer.alloc(0),got=false;`
      + `s.on('data',d=>{if(!got){buf=Buffer.concat([buf,d]);const i=buf.indexOf(10);if(i<0)return;got=true;g=buf.subarray(0,i).toString();d=buf.subarray(i+1);}n+=d.length;h.update(d);});`
      + `s.on('end',()=>{console.log(JSON.stringify({greeting:g,bytes:n,sha256:h.digest('hex')}));s.end();});s.on('error',e=>{console.log(JSON.stringify({error:e.code}));});`;
    const child = spawnIn(place, process.execPath, ['-e', script]);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise((r) => child.once('close', r));
    return JSON.parse(out.trim()) as { greeting: string; bytes: number; sha256: string };
  }

  const apiPath = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-api-')), 'api.sock');

  test('Podman 4.3 form (-c -e 3 -r 4 --netns-type=path): ready only when configured and listening; exit fd -> socket removed, exit 0', opts, async () => {
    const c = await netnsOnly();
    const api = apiPath();
    const s = startSlirp4netns(BIN, ['--disable-host-loopback', '--mtu=65520', '-c', '-e', '3', '-r', '4', '--api-socket', api,
      '--netns-type=path', c.netns, 'tap0'], { readyFd: 4, exitFd: 3 });
    const got = await s.ready;
    assert.equal(got, '1', `ready pipe said ${JSON.stringify(got)}; stderr: ${s.stderr()}`);
    // At that moment: the socket answers and the TAP is configured.
    assert.deepEqual(await apiCall(api, { execute: 'list_hostfwd' }), { entries: [] });
    const addr = sh('nsenter', [`--net=${c.netns}`, 'ip', '-o', '-4', 'addr', 'show', 'tap0']);
    assert.match(addr, /inet 10\.0\.2\.100\/24 /);
    assert.match(sh('nsenter', [`--net=${c.netns}`, 'ip', 'route']), /^default via 10\.0\.2\.2 dev tap0/m);
    assert.match(sh('nsenter', [`--net=${c.netns}`, 'ip', '-o', 'link', 'show', 'tap0']), /mtu 65520 /);
    assert.match(s.stdout(), /Recommended IP: +10\.0\.2\.100/);
    assert.doesNotMatch(s.stdout(), /WARNING: 127\.0\.0\.1/, '--disable-host-loopback: no warning');
    // Podman goes away: its end of the exit pipe closes.
    s.closeExitFd?.();
    const e = await s.exited;
    assert.deepEqual(e, { code: 0, signal: null }, s.stderr());
    assert.equal(fs.existsSync(api), false, 'API socket removed');
  });

  test('-c honours --cidr, --mtu and --macaddress; the start-up lines say so', opts, async () => {
    const c = await netnsOnly();
    const s = startSlirp4netns(BIN, ['-c', '-r', '3', '--cidr=192.168.7.0/25', '--mtu=9000', '--macaddress=02:11:22:33:44:55',
      '--disable-dns', '--netns-type=path', c.netns, 'tap0'], { readyFd: 3 });
    assert.equal(await s.ready, '1', s.stderr());
    const link = sh('nsenter', [`--net=${c.netns}`, 'ip', '-o', 'link', 'show', 'tap0']);
    assert.match(link, /mtu 9000 /);
    assert.match(link, /link\/ether 02:11:22:33:44:55 /);
    assert.match(sh('nsenter', [`--net=${c.netns}`, 'ip', '-o', '-4', 'addr', 'show', 'tap0']), /inet 192\.168\.7\.100\/25 /);
    assert.match(sh('nsenter', [`--net=${c.netns}`, 'ip', 'route']), /^default via 192\.168\.7\.2 dev tap0/m);
    assert.match(s.stdout(), /\* DNS: +\(disabled\)/);
    assert.match(s.stdout(), /\* MAC address: +02:11:22:33:44:55/);
    s.proc.kill('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null });
  });

  test('an exit fd that is not open makes it exit 0 at once; a ready fd that is not open is an error (1)', opts, async () => {
    const c = await netnsOnly();
    // A high number: node itself opens a few fds (epoll, eventfd, ...) just above stdio.
    const r1 = await runCli(['-c', '-e', '200', '--netns-type=path', c.netns], { entry: BIN, timeoutMs: 20_000 });
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await runCli(['-c', '-r', '201', '--netns-type=path', c.netns], { entry: BIN, timeoutMs: 20_000 });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /^tapswitch-slirp4netns: --ready-fd 201: not an open file descriptor/);
  });

  test('RootlessKit form: pre-created tap0 without vnet header, -r 3, PID, no -c; link untouched; survives the namespace\'s processes; SIGKILL', opts, async (t) => {
    // RootlessKit's child: its own user+net namespace with tap0 made by `ip tuntap add`.
    const child = track(spawn('unshare', ['--user', '--map-root-user', '--net', '--', '/bin/sh', '-c',
      'ip tuntap add name tap0 mode tap && echo ready && exec sleep 1000000'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await waitForLine(child, (l) => l === 'ready');
    const pid = child.pid as number;
    const api = apiPath();
    const s = startSlirp4netns(BIN, ['--mtu', '65520', '-r', '3', '--disable-host-loopback', '--api-socket', api, String(pid), 'tap0'],
      { readyFd: 3 }, { ...process.env, TAPSWITCH_LOG_LEVEL: 'info' });
    assert.equal(await s.ready, '1', s.stderr());
    // Kernels differ: some refuse IFF_VNET_HDR on a TAP created without it (we then fall back to
    // plain frames, with a warning), others accept it. Either way it must attach and work.
    const plain = /refuses the virtio-net header .*attached without it/.test(s.stderr());
    assert.match(s.stderr(), /vnet header (true|false)\)/);
    const inNs = ['nsenter', '-t', String(pid), '-U', '-n', '--preserve-credentials'];
    const link = sh(inNs[0]!, [...inNs.slice(1), 'ip', '-o', 'link', 'show', 'tap0']);
    assert.doesNotMatch(link, /[<,]UP[,>]/, 'without -c the TAP stays down');
    assert.equal(sh(inNs[0]!, [...inNs.slice(1), 'ip', '-o', '-4', 'addr', 'show', 'tap0']).trim(), '');
    // RootlessKit's child configures the link itself; then traffic flows (plain frames, no header).
    for (const args of [['link', 'set', 'tap0', 'mtu', '65520'], ['addr', 'add', '10.0.2.100/24', 'dev', 'tap0'],
      ['link', 'set', 'tap0', 'up'], ['route', 'add', 'default', 'via', '10.0.2.2']]) {
      sh(inNs[0]!, [...inNs.slice(1), 'ip', ...args]);
    }
    const place: Place = { prefix: inNs, name: 'rk-child' };
    const srv = await startServer(place, 'tcp-server', ['--port', '80', '--mode', 'sha256']);
    const add = await apiCall(api, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '0.0.0.0', host_port: 18080, guest_addr: '10.0.2.100', guest_port: 80 } });
    assert.deepEqual(add, { return: { id: 1 } });
    const up = await probe(HOST, ['tcp-sha', '127.0.0.1', '18080', String(4 * 1024 * 1024)]);
    assert.match(String(up.data), /^you are 10\.0\.2\.2:\d+\nsha256 [0-9a-f]{64} 4194304\n$/);
    srv.stop();
    // The namespace's last process dies: slirp4netns keeps running (RootlessKit decides when).
    child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(s.proc.exitCode, null, 'still running after the namespace emptied');
    s.proc.kill('SIGKILL');
    const e = await s.exited;
    assert.equal(e.signal, 'SIGKILL');
    t.diagnostic(`tap0 made by ip tuntap add: ${plain ? 'vnet header refused, plain frames' : 'vnet header accepted on attach'}; link left to the client`);
  });

  test('forwards through the API: TCP 20 MB each way (SHA-256), UDP, source addresses, 127.0.0.1-only, removal', opts, async (t) => {
    const outside = await getOutside();
    const c = await netnsOnly();
    const api = apiPath();
    const s = startSlirp4netns(BIN, ['-c', '-e', '3', '-r', '4', '--api-socket', api, '--netns-type=path', c.netns, 'tap0'],
      { readyFd: 4, exitFd: 3 });
    assert.equal(await s.ready, '1', s.stderr());
    const sha = await startServer(c.at, 'tcp-server', ['--port', '80', '--mode', 'sha256']);
    const send = await startServer(c.at, 'tcp-server', ['--port', '81', '--mode', `send:${MB20}`]);
    const udp = await startServer(c.at, 'udp-echo-server', ['--port', '53']);
    const add = (proto: string, hostAddr: string, hostPort: number, guestPort: number) =>
      apiCall(api, { execute: 'add_hostfwd', arguments: { proto, host_addr: hostAddr, host_port: hostPort, guest_addr: '', guest_port: guestPort } });
    assert.deepEqual(await add('tcp', '0.0.0.0', 8080, 80), { return: { id: 1 } });
    assert.deepEqual(await add('tcp', '0.0.0.0', 8081, 81), { return: { id: 2 } });
    assert.deepEqual(await add('udp', '0.0.0.0', 5353, 53), { return: { id: 3 } });
    assert.deepEqual(await add('tcp', '127.0.0.1', 8082, 80), { return: { id: 4 } });
    assert.deepEqual(await add('tcp', '0.0.0.0', 8080, 80), { error: { desc: 'bad request: add_hostfwd: slirp_add_hostfwd failed' } });

    // Upload 20 MB from the host's loopback: the guest sees the gateway; the digest matches.
    const expected = sh('sh', ['-c', `node -e 'const {deterministicBytes}=require(${JSON.stringify(path.join(ROOT, 'dist', 'test', 'helpers', 'servers', 'common.js'))});const h=require("crypto").createHash("sha256");for(let o=0;o<${MB20};o+=1<<20)h.update(deterministicBytes(o,1<<20));console.log(h.digest("hex"))'`]).trim();
    const up = await probe(HOST, ['tcp-sha', '127.0.0.1', '8080', String(MB20)], 120_000);
    assert.equal(up.data, `you are 10.0.2.2:${(String(up.data).match(/:(\d+)\n/) ?? [])[1]}\nsha256 ${expected} ${MB20}\n`);
    // Download 20 MB from the outside: the guest sees the client's own address.
    const down = await download(outside, HOST_ADDR, 8081);
    assert.match(down.greeting, new RegExp(`^you are ${OUTSIDE_ADDR.replace(/\./g, '\\.')}:\\d+$`));
    assert.equal(down.bytes, MB20);
    assert.equal(down.sha256, expected);
    // UDP: loopback client -> gateway; outside client keeps its address; replies come back.
    const u1 = await probe(HOST, ['udp', '127.0.0.1', '5353', 'ping']);
    assert.match(String(u1.data), /^you are 10\.0\.2\.2:\d+\nping$/);
    const u2 = await probe(outside, ['udp', HOST_ADDR, '5353', 'pong']);
    assert.match(String(u2.data), new RegExp(`^you are ${OUTSIDE_ADDR.replace(/\./g, '\\.')}:\\d+\\npong$`));
    // 127.0.0.1-only: reachable here, not from another host.
    const local = await probe(HOST, ['tcp', '127.0.0.1', '8082', '']);
    assert.match(String(local.data), /^you are 10\.0\.2\.2:/);
    const remote = await probe(outside, ['tcp', HOST_ADDR, '8082', '']);
    assert.equal(remote.error, 'ECONNREFUSED');
    // Removal closes the listener.
    assert.deepEqual(await apiCall(api, { execute: 'remove_hostfwd', arguments: { id: 1 } }), { return: {} });
    assert.equal((await probe(HOST, ['tcp', '127.0.0.1', '8080', ''])).error, 'ECONNREFUSED');
    const list = await apiCall(api, { execute: 'list_hostfwd' }) as { entries: Array<{ id: number }> };
    assert.deepEqual(list.entries.map((e) => e.id), [2, 3, 4]);
    t.diagnostic(`20 MB up/down intact; UDP sources ${String(u1.data).split('\n')[0]} / ${String(u2.data).split('\n')[0]}`);
    sha.stop(); send.stop(); udp.stop();
    s.closeExitFd?.();
    assert.equal((await s.exited).code, 0);
  });

  test('malformed API requests over the real socket get slirp4netns\'s errors and the socket lives on', opts, async () => {
    const c = await netnsOnly();
    const api = apiPath();
    const s = startSlirp4netns(BIN, ['-c', '-e', '3', '-r', '4', '--api-socket', api, '--netns-type=path', c.netns], { readyFd: 4, exitFd: 3 });
    assert.equal(await s.ready, '1', s.stderr());
    const cases: Array<[unknown, string]> = [
      ['not json', 'cannot parse JSON'],
      ['[1]', 'json_object() failed'],
      [{ arguments: {} }, 'no execute found'],
      [{ execute: 'frobnicate' }, 'unknown execute'],
      [{ execute: 'add_hostfwd', arguments: { host_port: 1, guest_port: 1 } }, 'add_hostfwd: bad arguments.proto'],
      [{ execute: 'add_hostfwd', arguments: { proto: 'tcp', host_port: 70000, guest_port: 1 } }, 'add_hostfwd: bad arguments.host_port'],
      [{ execute: 'add_hostfwd', arguments: { proto: 'tcp', host_port: 1, guest_addr: '192.0.2.1', guest_port: 1 } }, 'add_hostfwd: bad arguments.guest_addr'],
      [{ execute: 'remove_hostfwd', arguments: { id: 42 } }, 'remove_hostfwd: bad arguments.id'],
      [`{"execute":"list_hostfwd","pad":"${'x'.repeat(5000)}"}`, 'too large message'],
    ];
    for (const [req, reason] of cases) {
      assert.deepEqual(await apiCall(api, req), { error: { desc: `bad request: ${reason}` } }, JSON.stringify(req).slice(0, 80));
    }
    assert.deepEqual(await apiCall(api, `${JSON.stringify({ execute: 'list_hostfwd' })}\n`), { entries: [] });
    s.closeExitFd?.();
    assert.equal((await s.exited).code, 0);
  });

  test('tapswitch run -p: published ports answer; 127.0.0.1-only stays local; a taken port fails before CMD', opts, async () => {
    const outside = await getOutside();
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-pub-')), 'ran');
    const server = path.join(ROOT, 'dist', 'test', 'helpers', 'servers', 'tcp-server.js');
    const udpServer = path.join(ROOT, 'dist', 'test', 'helpers', 'servers', 'udp-echo-server.js');
    const runProc = track(spawn(process.execPath, [CLI, 'run', '--network', 'userspace', '-p', '9080:80', '-p', '127.0.0.1:9081:80', '-p', '9053:53/udp', '--', 'sh', '-c',
      `"${process.execPath}" "${udpServer}" --port 53 >/dev/null & exec "${process.execPath}" "${server}" --port 80`], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitForLine(runProc, (l) => l.startsWith('{"ready":true'), 30_000);
    await new Promise((r) => setTimeout(r, 300)); // the UDP server too
    assert.match(String((await probe(HOST, ['tcp', '127.0.0.1', '9080', ''])).data), /^you are 10\.0\.2\.2:/);
    assert.match(String((await probe(outside, ['tcp', HOST_ADDR, '9080', ''])).data), new RegExp(`^you are ${OUTSIDE_ADDR.replace(/\./g, '\\.')}:`));
    assert.match(String((await probe(HOST, ['tcp', '127.0.0.1', '9081', ''])).data), /^you are 10\.0\.2\.2:/);
    assert.equal((await probe(outside, ['tcp', HOST_ADDR, '9081', ''])).error, 'ECONNREFUSED');
    assert.match(String((await probe(outside, ['udp', HOST_ADDR, '9053', 'x'])).data), new RegExp(`^you are ${OUTSIDE_ADDR.replace(/\./g, '\\.')}:\\d+\\nx$`));
    // 9080 is taken now: a second run must fail before its CMD runs.
    const r = await runCli(['run', '--network', 'userspace', '-p', '9080:80', '--', 'touch', marker]);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /^tapswitch: cannot publish 0\.0\.0\.0:9080 -> 10\.0\.2\.100:80\/tcp: host port 9080\/tcp is already in use: /);
    assert.equal(fs.existsSync(marker), false, 'CMD must not have run');
    // Let tapswitch pass SIGTERM on and reap what CMD left in the namespace (the background UDP
    // server): killed before that, the orphan would keep this file's pipes, and the file, alive.
    const exited = new Promise<number | null>((resolve) => runProc.once('exit', (code) => resolve(code)));
    runProc.kill('SIGTERM');
    assert.equal(await exited, 143, 'CMD died of the SIGTERM passed on to it');
  });
}
