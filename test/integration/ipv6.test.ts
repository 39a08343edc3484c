// IPv6 as slirp4netns -6 offers it, against the real kernel of a container namespace, in a throwaway
// sandbox (test/helpers/sandbox.ts). tapswitch-slirp4netns is started the way Podman starts it
// (`-6 -c -r FD --netns-type=path NETNS tap0`, a network namespace without a user namespace), and
// then the guest's own kernel must:
//
//   - configure itself from our router advertisements: a SLAAC address in fd00::/64 (after DAD), a
//     default route via fe80::2;
//   - reach fd00::2, fd00::3 and fe80::2 with ping, and hold fd00::2 and fe80::2 as REACHABLE
//     neighbours with the gateway's MAC (our NAs answered its solicitations);
//   - receive an RA whose bytes, captured from the namespace's own AF_PACKET socket and parsed with
//     tapswitch's wire views, carry the prefix (on-link, autonomous), the MTU and RDNSS fd00::3;
//   - connect over TCP and UDP to fd00::2 (the host's ::1: the server sees ::1) and to an outside
//     IPv6 address (2001:db8::1, reached from the sandbox host's 2001:db8::2: the server sees that),
//     ping the outside address, resolve a name through fd00::3 (the host's resolver), appear from
//     the --outbound-addr6 address (given as an address or an interface), and with
//     --disable-host-loopback fail to connect to fd00::2 as unreachable. These need the IPv6 translators (src/translate onPacket6) as well.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import {
  HOST, HOST_ADDR6, OUTSIDE_ADDR6, ROOT, SERVERS, addOutsideIpv6, dataPlaneMissing, ensureSandbox, makeOutside, probe,
  runCli, sh, spawnIn, startServer, track, useResolvConf, waitForLine, type Outside, type Place,
} from '../helpers/sandbox';
import { startSlirp4netns, type Slirp4netnsProc } from '../helpers/slirp4netns-client';
import { parseHex } from '../fixtures/load';
import {
  EtherType, EthernetView, Icmpv6Type, Icmpv6View, Ipv6View, MtuOptionView, NdpOptionReader, NdpOptionType,
  PrefixInfoView, RdnssView, RouterAdvertView, ipv6ToString, macToString,
} from '../../src/wire';

const BIN = path.join(ROOT, 'dist', 'src', 'cli', 'slirp4netns.js');
const GW_MAC = '52:55:0a:00:02:02';
const OUTSIDE6 = OUTSIDE_ADDR6;
const HOST6 = HOST_ADDR6;

// Captures the first Router Advertisement seen on any interface of the namespace it runs in, as hex
// of the whole Ethernet frame. An AF_PACKET socket bound to no interface also sees interfaces made
// after it opened (tap0 does not exist yet when it starts). Node has no packet sockets; tcpdump
// cannot run here (it insists on changing user, which a one-id user namespace refuses).
const CAPTURE_RA = `
import socket, binascii, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
print("ready", flush=True)
while True:
    f = s.recv(65535)
    if len(f) > 54 and f[12:14] == b"\\x86\\xdd" and f[20] == 58 and f[54] == 134:
        print(binascii.hexlify(f).decode(), flush=True)
        sys.exit(0)
`;

if (ensureSandbox(__filename)) {
  const missing = dataPlaneMissing();
  const opts = { skip: missing ?? false, timeout: 180_000 };
  const python = spawnSync('python3', ['-c', 'import socket; socket.AF_PACKET'], { encoding: 'utf8' }).status === 0;

  /** A network namespace to serve (no user namespace: Podman's case) and its holder. */
  async function netnsOnly(): Promise<{ netns: string; at: Place }> {
    const holder = track(spawn('unshare', ['--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000000'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await waitForLine(holder, (l) => l === 'ready');
    const netns = `/proc/${holder.pid as number}/ns/net`;
    return { netns, at: { prefix: ['nsenter', `--net=${netns}`], name: 'container' } };
  }

  const inNs = (netns: string, args: string[]): { code: number | null; out: string } => {
    const r = spawnSync('nsenter', [`--net=${netns}`, ...args], { encoding: 'utf8' });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  /** Call `probeFn` until it returns non-null, at most `ms`; fails with `what` and the last state seen. */
  async function waitFor<T>(what: string, ms: number, probeFn: () => { value: T | null; state: string }): Promise<T> {
    const deadline = Date.now() + ms;
    let state = '';
    for (;;) {
      const r = probeFn();
      if (r.value !== null) return r.value;
      state = r.state;
      if (Date.now() > deadline) assert.fail(`${what}: not seen; last state:\n${state}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  /** The guest's SLAAC address in fd00::/64 once DAD has finished (no "tentative"). */
  function slaacAddress(netns: string): Promise<string> {
    return waitFor('a SLAAC address in fd00::/64 after DAD', 30_000, () => {
      const r = inNs(netns, ['ip', '-6', '-o', 'addr', 'show', 'dev', 'tap0', 'scope', 'global']);
      const m = /inet6 (fd00::[0-9a-f:]+)\/64 (.*)$/m.exec(r.out);
      return { value: m && !/tentative/.test(m[2]!) ? m[1]! : null, state: r.out };
    });
  }

  let outsideOnce: Promise<Outside> | undefined;
  /** One "outside" per file, with 2001:db8::1/64 there and 2001:db8::2/64 on the sandbox host's side. */
  const getOutside = () => (outsideOnce ??= makeOutside().then(addOutsideIpv6));

  /** Start tapswitch-slirp4netns -6 -c on a fresh namespace; resolves once the guest has its address. */
  async function startV6(extra: string[] = []): Promise<{ s: Slirp4netnsProc; netns: string; at: Place; addr: string }> {
    const c = await netnsOnly();
    const s = startSlirp4netns(BIN, ['-6', '-c', '-r', '3', ...extra, '--netns-type=path', c.netns, 'tap0'], { readyFd: 3 },
      { ...process.env, TAPSWITCH_STATS: '1' });
    assert.equal(await s.ready, '1', s.stderr());
    const addr = await slaacAddress(c.netns);
    return { s, netns: c.netns, at: c.at, addr };
  }

  /** A UDP echo server on an IPv6 address (servers/udp-echo-server.js is IPv4-only): `you are ADDR:PORT\n` + payload. */
  async function startUdp6Echo(place: Place, host: string): Promise<{ port: number; stop: () => void }> {
    const script = `const s=require('node:dgram').createSocket('udp6');`
      + `s.on('message',(m,r)=>s.send(Buffer.concat([Buffer.from('you are '+r.address+':'+r.port+'\\n'),m]),r.port,r.address));`
      + `s.bind(0,'${host}',()=>console.log(JSON.stringify({ready:true,port:s.address().port})));`;
    const proc = spawnIn(place, process.execPath, ['-e', script]);
    const line = await waitForLine(proc, (l) => l.startsWith('{"ready":true'));
    return { port: (JSON.parse(line) as { port: number }).port, stop: () => proc.kill('SIGKILL') };
  }

  async function stop(s: Slirp4netnsProc): Promise<string> {
    s.proc.kill('SIGTERM');
    assert.deepEqual(await s.exited, { code: 0, signal: null }, s.stderr());
    return s.stderr();
  }

  test('-6 -c: SLAAC address in fd00::/64, default route via fe80::2, ping fd00::2 / fd00::3 / fe80::2, neighbours REACHABLE', opts, async (t) => {
    const { s, netns, addr } = await startV6();
    assert.match(s.stdout(), /^WARNING: Support for IPv6 is experimental$/m);
    assert.match(s.stdout(), /^\* IPv6 gateway: +fd00::2$/m);
    // SLAAC: the interface id comes from the TAP's MAC (EUI-64) or is stable-private; either way
    // inside the advertised /64 and not one of ours.
    assert.ok(!['fd00::2', 'fd00::3'].includes(addr), addr);
    const route = inNs(netns, ['ip', '-6', 'route', 'show', 'default']).out;
    assert.match(route, /^default via fe80::2 dev tap0 proto ra /m, route);
    assert.match(inNs(netns, ['ip', '-6', 'route', 'show', 'fd00::/64']).out, /^fd00::\/64 dev tap0 proto kernel/m, 'prefix on-link');
    for (const [target, args] of [['fd00::2', []], ['fd00::3', []], ['fe80::2', ['-I', 'tap0']]] as const) {
      const r = inNs(netns, ['busybox', 'ping6', '-c', '2', '-W', '5', ...args, target]);
      assert.equal(r.code, 0, `ping6 ${target}: ${r.out}`);
      assert.match(r.out, /2 packets transmitted, 2 packets received/);
    }
    // fd00::2 was resolved by our NA (solicited: REACHABLE at once); fe80::2 came STALE from the RA's
    // SLLA and is confirmed by the kernel's unicast probe after its delay (RFC 4861 §7.3.3).
    const neigh = await waitFor('fd00::2 and fe80::2 REACHABLE with the gateway MAC', 30_000, () => {
      inNs(netns, ['busybox', 'ping6', '-c', '1', '-W', '2', '-I', 'tap0', 'fe80::2']);
      const out = inNs(netns, ['ip', '-6', 'neigh', 'show', 'dev', 'tap0']).out;
      const ok = ['fd00::2', 'fe80::2'].every((a) => new RegExp(`^${a} lladdr ${GW_MAC}( router)? REACHABLE`, 'm').test(out));
      return { value: ok ? out : null, state: out };
    });
    assert.match(neigh, new RegExp(`^fe80::2 lladdr ${GW_MAC} router `, 'm'), 'the RA made fe80::2 a router');
    const stats = await stop(s);
    t.diagnostic(`guest ${addr}; neighbours:\n${neigh.trim()}`);
    // The counters printed at exit: solicitations answered, RAs sent, nothing thrown.
    assert.match(stats, /ndp_na_sent\s+[1-9]/);
    assert.match(stats, /ndp_ra_sent\s+[1-9]/);
    assert.match(stats, /icmpv6_echo_reply_sent\s+[1-9]/);
    assert.doesNotMatch(stats, /packet_loop_exceptions/);
  });

  test('the RA on the wire (captured in the namespace, parsed with tapswitch\'s views): prefix, MTU, RDNSS fd00::3', {
    ...opts, skip: missing ?? (python ? false : 'python3 with AF_PACKET not available to capture frames'),
  }, async () => {
    const c = await netnsOnly();
    const cap = spawnIn(c.at, 'python3', ['-c', CAPTURE_RA]);
    await waitForLine(cap, (l) => l === 'ready');
    const hexLine = waitForLine(cap, (l) => /^[0-9a-f]+$/.test(l), 60_000);
    const s = startSlirp4netns(BIN, ['-6', '-c', '-r', '3', '--mtu=9000', '--netns-type=path', c.netns, 'tap0'], { readyFd: 3 });
    assert.equal(await s.ready, '1', s.stderr());
    const f = parseHex(await hexLine);
    const eth = new EthernetView();
    assert.ok(eth.bind(f, 0, f.length));
    assert.equal(eth.etherType, EtherType.IPV6);
    assert.equal(macToString(f, eth.srcOffset), GW_MAC);
    const ip = new Ipv6View();
    assert.ok(ip.bind(f, eth.payloadOffset, eth.payloadLength));
    assert.equal(ipv6ToString(f, ip.srcAddrOffset), 'fe80::2');
    assert.equal(ip.hopLimit, 255);
    const icmp = new Icmpv6View();
    assert.ok(icmp.bind(f, ip.payloadOffset, ip.payloadLength));
    assert.equal(icmp.type, Icmpv6Type.ROUTER_ADVERT);
    assert.equal(icmp.checksumValid(f, ip.srcAddrOffset, ip.dstAddrOffset), true);
    const ra = new RouterAdvertView();
    assert.ok(ra.bind(f, icmp.o, icmp.n));
    assert.deepEqual([ra.managedAddrConfig, ra.otherConfig, ra.routerLifetime], [false, false, 1800]);
    const r = new NdpOptionReader();
    r.reset(f, ra.optionsOffset, ra.optionsLength);
    const seen: Record<string, unknown> = {};
    while (r.next()) {
      if (r.type === NdpOptionType.SOURCE_LL_ADDR) seen.slla = macToString(f, r.offset + 2);
      if (r.type === NdpOptionType.MTU) { const m = new MtuOptionView(); if (m.bind(f, r.offset, r.length)) seen.mtu = m.mtu; }
      if (r.type === NdpOptionType.PREFIX_INFO) {
        const p = new PrefixInfoView();
        if (p.bind(f, r.offset, r.length)) seen.prefix = { prefix: `${ipv6ToString(f, p.prefixOffset)}/${p.prefixLength}`, onLink: p.onLink, autonomous: p.autonomous, valid: p.validLifetime > 0 };
      }
      if (r.type === NdpOptionType.RDNSS) {
        const d = new RdnssView();
        if (d.bind(f, r.offset, r.length)) seen.rdnss = { servers: Array.from({ length: d.addressCount }, (_, i) => ipv6ToString(f, d.addressOffset(i))), live: d.lifetime > 0 };
      }
    }
    assert.equal(r.malformed, false);
    assert.deepEqual(seen, {
      slla: GW_MAC, mtu: 9000, prefix: { prefix: 'fd00::/64', onLink: true, autonomous: true, valid: true },
      rdnss: { servers: ['fd00::3'], live: true },
    });
    await stop(s);
  });

  // ---- outbound over IPv6: needs the IPv6 translators (TCP/UDP/ICMP onPacket6) ----

  test('--disable-host-loopback: ping fd00::2 still answers; TCP to fd00::2 is refused as unreachable', opts, async () => {
    const { s, netns } = await startV6(['--disable-host-loopback']);
    assert.equal(inNs(netns, ['busybox', 'ping6', '-c', '1', '-W', '5', 'fd00::2']).code, 0);
    const srv = await startServer(HOST, 'tcp-server', ['--host', '::1', '--port', '0']);
    const r = await probe({ prefix: ['nsenter', `--net=${netns}`], name: 'container' }, ['tcp', 'fd00::2', String(srv.port), '']);
    assert.ok(r.error === 'ENETUNREACH' || r.error === 'EHOSTUNREACH', `expected unreachable, got ${JSON.stringify(r)}`);
    srv.stop();
    await stop(s);
  });

  test('outbound TCP over IPv6: fd00::2 reaches the host\'s ::1 (seen from ::1); an outside address is seen from the host\'s address', opts, async () => {
    const outside = await getOutside();
    const { s, at, addr } = await startV6();
    const local = await startServer(HOST, 'tcp-server', ['--host', '::1', '--port', '0']);
    const far = await startServer(outside, 'tcp-server', ['--host', OUTSIDE6, '--port', '0']);
    const r1 = await probe(at, ['tcp', 'fd00::2', String(local.port), 'hello']);
    assert.match(String(r1.data), /^you are ::1:\d+\n/, JSON.stringify(r1));
    assert.equal(String(r1.local).replace(/:\d+$/, ''), addr, 'the guest used its SLAAC address');
    const r2 = await probe(at, ['tcp', OUTSIDE6, String(far.port), 'hello']);
    assert.match(String(r2.data), new RegExp(`^you are ${HOST6}:\\d+\\n`), JSON.stringify(r2));
    // 8 MB up through the translator, digest checked by the server.
    const sha = await startServer(outside, 'tcp-server', ['--host', OUTSIDE6, '--port', '0', '--mode', 'sha256']);
    const r3 = await probe(at, ['tcp-sha', OUTSIDE6, String(sha.port), String(8 * 1024 * 1024)], 120_000);
    const expected = sh(process.execPath, ['-e', `const {deterministicBytes}=require(${JSON.stringify(path.join(ROOT, 'dist', 'test', 'helpers', 'servers', 'common.js'))});`
      + `const h=require('crypto').createHash('sha256');for(let o=0;o<${8 << 20};o+=1<<20)h.update(deterministicBytes(o,1<<20));console.log(h.digest('hex'))`]).trim();
    assert.match(String(r3.data), new RegExp(`sha256 ${expected} ${8 << 20}\\n$`), JSON.stringify(r3).slice(0, 300));
    local.stop(); far.stop(); sha.stop();
    await stop(s);
  });

  test('outbound UDP over IPv6 from one socket: fd00::2 (-> ::1) and an outside address; replies come back', opts, async () => {
    const outside = await getOutside();
    const { s, netns } = await startV6();
    const local = await startUdp6Echo(HOST, '::1');
    const far = await startUdp6Echo(outside, OUTSIDE6);
    const client = `
const s = require('node:dgram').createSocket('udp6');
const out = []; const t = setTimeout(() => { console.log(JSON.stringify({ timeout: true, out })); process.exit(2); }, 8000);
s.on('message', (m, r) => { out.push({ from: r.address + ':' + r.port, text: m.toString() }); if (out.length === 2) { clearTimeout(t); console.log(JSON.stringify({ out })); s.close(); } });
s.bind(0, () => { s.send('to-gw', ${local.port}, 'fd00::2'); s.send('to-far', ${far.port}, '${OUTSIDE6}'); });`;
    const r = spawnSync('nsenter', [`--net=${netns}`, process.execPath, '-e', client], { encoding: 'utf8', timeout: 20_000 });
    const got = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { out?: Array<{ from: string; text: string }>; timeout?: boolean };
    assert.ok(!got.timeout && got.out?.length === 2, `UDP replies: ${r.stdout} ${r.stderr}`);
    const byFrom = Object.fromEntries(got.out.map((x) => [x.from.replace(/:\d+$/, ''), x.text]));
    assert.match(byFrom['fd00::2'] ?? '', /^you are ::1:\d+\nto-gw$/);
    assert.match(byFrom[OUTSIDE6] ?? '', new RegExp(`^you are ${HOST6}:\\d+\\nto-far$`));
    local.stop(); far.stop();
    await stop(s);
  });

  test('--outbound-addr6 (an address, or an interface\'s address): outside servers see that source', opts, async () => {
    const outside = await getOutside();
    // A host address that is not the default source toward the outside: alone on an interface of
    // its own (one end of a spare veth pair: no dummy driver here), with the outside routing its /64
    // back through the host.
    const SRC6 = '2001:db8:5::7';
    sh('ip', ['link', 'add', 'tswob6', 'type', 'veth', 'peer', 'name', 'tswob6p']);
    sh('ip', ['-6', 'addr', 'add', `${SRC6}/128`, 'dev', 'tswob6', 'nodad']);
    sh('ip', ['link', 'set', 'tswob6', 'up']);
    sh('ip', ['link', 'set', 'tswob6p', 'up']);
    sh('nsenter', [`--net=${outside.netnsPath}`, 'ip', '-6', 'route', 'add', '2001:db8:5::/64', 'via', HOST6]);
    const far = await startServer(outside, 'tcp-server', ['--host', OUTSIDE6, '--port', '0']);
    const farUdp = await startUdp6Echo(outside, OUTSIDE6);
    for (const spec of [SRC6, 'tswob6']) {
      const { s, at, netns } = await startV6([`--outbound-addr6=${spec}`]);
      assert.match(s.stdout(), new RegExp(`^\\* Outbound IPv6: +${SRC6}$`, 'm'));
      const r = await probe(at, ['tcp', OUTSIDE6, String(far.port), '']);
      assert.match(String(r.data), new RegExp(`^you are ${SRC6}:\\d+\\n`), `${spec}: ${JSON.stringify(r)}`);
      const client = `const s=require('node:dgram').createSocket('udp6');setTimeout(()=>process.exit(2),5000);`
        + `s.on('message',m=>{console.log(m.toString().split('\\n')[0]);process.exit(0)});s.send('x',${farUdp.port},'${OUTSIDE6}');`;
      const u = spawnSync('nsenter', [`--net=${netns}`, process.execPath, '-e', client], { encoding: 'utf8', timeout: 15_000 });
      assert.match(u.stdout, new RegExp(`^you are ${SRC6}:\\d+$`, 'm'), `${spec} UDP: ${u.stdout} ${u.stderr}`);
      await stop(s);
    }
    far.stop(); farUdp.stop();
    sh('ip', ['link', 'del', 'tswob6']);
  });

  test('DNS over IPv6: a query to fd00::3 reaches the host\'s resolver (127.0.0.53 from resolv.conf) and the answer comes back', opts, async () => {
    const dnsServer = await startServer(HOST, 'dns-server', ['--host', '127.0.0.53', '--port', '53']);
    useResolvConf('nameserver 127.0.0.53\n');
    const { s, netns } = await startV6();
    const client = `const r=new (require('node:dns').promises.Resolver)({timeout:3000,tries:2});r.setServers(['fd00::3']);`
      + `r.resolve4('tapswitch.test').then(a=>console.log(JSON.stringify({a})),e=>console.log(JSON.stringify({e:e.code})));`;
    const r = spawnSync('nsenter', [`--net=${netns}`, process.execPath, '-e', client], { encoding: 'utf8', timeout: 20_000 });
    assert.deepEqual(JSON.parse(r.stdout.trim() || '{}'), { a: ['198.51.100.7'] }, r.stderr);
    // The server's log line may still be in flight.
    await waitFor('the query in the DNS server\'s log', 5_000, () => ({
      value: dnsServer.lines.some((l) => l.includes('"query":"tapswitch.test"')) ? true : null, state: dnsServer.lines.join('\n'),
    }));
    dnsServer.stop();
    await stop(s);
  });

  test('outbound ICMPv6 echo to an outside address (ping sockets)', opts, async () => {
    await getOutside();
    // Ping sockets (ICMPv6 ones too) are allowed for our group by the sandbox (test/helpers/sandbox.ts).
    const { s, netns } = await startV6();
    const r = inNs(netns, ['busybox', 'ping6', '-c', '2', '-W', '5', OUTSIDE6]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /2 packets transmitted, 2 packets received/);
    await stop(s);
  });

  test('tapswitch run --ipv6 (the userspace run, not only the slirp4netns drop-in): SLAAC, then TCP to an outside IPv6 server', opts, async () => {
    const outside = await getOutside();
    const far = await startServer(outside, 'tcp-server', ['--host', OUTSIDE6, '--port', '0']);
    // Wait out DAD (a tentative address is not used as a source) and for the RA's default route.
    const script = 'i=0; while [ $i -lt 100 ] && { [ -z "$(ip -6 -o addr show dev tap0 scope global | grep -v tentative)" ] '
      + '|| [ -z "$(ip -6 route show default)" ]; }; do sleep 0.1; i=$((i+1)); done; ip -6 -o addr show dev tap0 scope global; '
      + `exec "${process.execPath}" "${path.join(SERVERS, 'probe.js')}" tcp ${OUTSIDE6} ${far.port} hello`;
    const r = await runCli(['run', '--network', 'userspace', '--ipv6', '--', 'sh', '-c', script], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /inet6 fd00::[0-9a-f:]+\/64 scope global/, r.stdout);
    const probed = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { data?: string };
    assert.match(probed.data ?? '', new RegExp(`^you are ${HOST6}:\\d+\\n`), r.stdout);
    // Without --ipv6 the container's kernel gets no RA, so no global IPv6 address.
    const none = await runCli(['run', '--network', 'userspace', '--', 'sh', '-c', 'sleep 1.5; ip -6 -o addr show dev tap0 scope global; echo done'], { timeoutMs: 30_000 });
    assert.equal(none.code, 0, none.stderr);
    assert.doesNotMatch(none.stdout, /inet6 fd00:/);
    far.stop();
  });
}
