// The IPv6 translators against the reference peer: the Linux kernel of a container namespace
// (nested user+net namespace, the rootless case) on a TAP with the virtio-net header and CSUM/TSO
// offloads, served in this process by Switch + Router (NDP for fd00::2) + the TCP, UDP and ICMP
// translators through onPacket6. The guest gets fd00::100/64 statically (no DAD wait) and a
// default route via fd00::2; an "outside" namespace has 2001:db8::1, reached from the sandbox
// host's 2001:db8::2. Inside the container a node client moves 20 MB each way over IPv6
// (SHA-256 checked end to end; TSO superframes both ways, gso TCPV6), and checks what a real
// network says: refused -> ECONNREFUSED, no route -> ENETUNREACH; UDP echo to the outside;
// `ping -6` to the outside. Servers report the source they saw, so the test proves the NAT.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { addOutsideIpv6, ensureSandbox, HOST, HOST_ADDR6, makeOutside, OUTSIDE_ADDR6, spawnIn, startServer, tapMissing, waitForLine, type Place } from '../helpers/sandbox';
import { guestSnmp, run, startContainer, testConfig } from '../helpers/container-ns';

const MB = 1 << 20;
const OUTSIDE6 = OUTSIDE_ADDR6;
const HOST6 = HOST_ADDR6;
const GUEST6 = 'fd00::100';

// Runs inside the container. Prints one JSON line per check.
const CLIENT = `
const net = require('node:net');
const dgram = require('node:dgram');
const crypto = require('node:crypto');
const [gwPort, sendPort, closedPort, udpPort] = process.argv.slice(2).map(Number);
const UP = ${20 * MB}, DOWN = ${20 * MB}, MB = ${MB};
function det(off, len) { const b = Buffer.allocUnsafe(len); for (let i = 0; i < len; i++) b[i] = ((off + i) * 7) % 251; return b; }
const out = (o) => console.log(JSON.stringify(o));
function connect(host, port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}
function lines(s) { let buf = ''; const q = []; let w = null;
  s.on('data', (d) => { buf += d.toString('latin1'); let i; while ((i = buf.indexOf('\\n')) >= 0) { q.push(buf.slice(0, i)); buf = buf.slice(i + 1); } if (w && q.length) { const f = w; w = null; f(q.shift()); } });
  return () => new Promise((r) => { if (q.length) r(q.shift()); else w = r; });
}
async function upload() {
  // fd00::2 -> the host's ::1; the sha256 server answers the digest of what it got after our FIN
  const s = await connect('fd00::2', gwPort);
  const next = lines(s);
  const hello = await next();
  const h = crypto.createHash('sha256');
  let sent = 0;
  await new Promise((resolve) => {
    const pump = () => {
      while (sent < UP) {
        const b = det(sent, Math.min(256 * 1024, UP - sent));
        h.update(b); sent += b.length;
        if (!s.write(b)) return void s.once('drain', pump);
      }
      s.end(); resolve();
    };
    pump();
  });
  const reply = await next();
  out({ check: 'upload', hello, reply, want: 'sha256 ' + h.digest('hex') + ' ' + UP });
  s.destroy();
}
async function download() {
  const s = await connect('${OUTSIDE6}', sendPort);
  const h = crypto.createHash('sha256');
  let first = null; let n = 0; let pre = Buffer.alloc(0);
  await new Promise((resolve, reject) => {
    s.on('data', (d) => {
      if (first === null) { pre = Buffer.concat([pre, d]); const i = pre.indexOf(10); if (i < 0) return; first = pre.subarray(0, i).toString(); d = pre.subarray(i + 1); }
      h.update(d); n += d.length;
    });
    s.on('end', resolve); s.on('error', reject);
  });
  const w = crypto.createHash('sha256'); for (let o = 0; o < DOWN; o += MB) w.update(det(o, Math.min(MB, DOWN - o)));
  out({ check: 'download', hello: first, n, got: h.digest('hex'), want: w.digest('hex') });
}
async function refused() {
  try { await connect('fd00::2', closedPort); out({ check: 'refused', code: 'connected?!' }); }
  catch (e) { out({ check: 'refused', code: e.code }); }
}
async function unreachable() {
  try { await connect('2001:db8:ffff::7', 80); out({ check: 'unreachable', code: 'connected?!' }); }
  catch (e) { out({ check: 'unreachable', code: e.code }); }
}
function udp() {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp6');
    const got = [];
    const timer = setInterval(() => s.send('hello-' + got.length, udpPort, '${OUTSIDE6}'), 300);
    s.on('message', (m, r) => {
      got.push({ text: m.toString(), from: r.address + ':' + r.port });
      if (got.length === 3) { clearInterval(timer); s.close(); out({ check: 'udp', got }); resolve(); }
    });
    s.send('hello-0', udpPort, '${OUTSIDE6}');
  });
}
(async () => {
  await Promise.all([upload(), download()]);
  await refused();
  await unreachable();
  await udp();
})().catch((e) => { out({ error: String(e && e.stack || e) }); process.exit(1); });
`;

// A UDP echo server on an IPv6 address (servers/udp-echo-server is IPv4-only): answers
// `you are ADDR:PORT` so the test sees the source the NAT produced.
const UDP6_ECHO = `const s=require('node:dgram').createSocket('udp6');`
  + `s.on('message',(m,r)=>s.send('you are '+r.address+' '+m.toString(),r.port,r.address));`
  + `s.bind(0,process.argv[1],()=>console.log(JSON.stringify({ready:true,port:s.address().port})));`;

if (ensureSandbox(__filename)) {
  const skip = tapMissing();
  test('guest kernel over IPv6 <-> translators: 20 MB both ways (SHA-256, TSO6), refused, unreachable, UDP, ping -6', { skip: skip ?? false, timeout: 150_000 }, async (t) => {
    const { TcpTranslator } = await import('../../src/translate/tcp');
    const { UdpTranslator } = await import('../../src/translate/udp');
    const { IcmpTranslator } = await import('../../src/translate/icmp');
    const { native } = await import('../../src/link/native');
    const { TapDevice } = await import('../../src/link/tap');
    const { Switch, TapPort } = await import('../../src/switch/switch');
    const { Router } = await import('../../src/gateway/router');

    // Ping sockets are allowed for our group by the sandbox (test/helpers/sandbox.ts).
    const outside = addOutsideIpv6(await makeOutside());
    const sendSrv = await startServer(outside, 'tcp-server', ['--host', OUTSIDE6, '--mode', `send:${20 * MB}`]);
    const shaSrv = await startServer(HOST, 'tcp-server', ['--host', '::1', '--mode', 'sha256']);
    const closed = await startServer(HOST, 'tcp-server', ['--host', '::1', '--mode', 'echo']);
    closed.stop();
    const udpProc = spawnIn(outside as Place, process.execPath, ['-e', UDP6_ECHO, OUTSIDE6]);
    const udpPort = (JSON.parse(await waitForLine(udpProc, (l) => l.startsWith('{"ready":true'))) as { port: number }).port;

    const { pid, inContainer } = await startContainer();
    const cfg = testConfig({
      ipv6: { prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2' },
    });
    const tap = native.openTap({
      netns: `/proc/${pid}/ns/net`, userns: `/proc/${pid}/ns/user`, name: 'tap0', queues: 1, vnetHdr: true,
      offloads: native.TUN_F.CSUM | native.TUN_F.TSO4 | native.TUN_F.TSO6, loopbackUp: true,
      link: { mtu: cfg.mtu, address: cfg.guest, prefixLength: cfg.prefixLength, gateway: cfg.gateway },
    });
    const dev = new TapDevice(tap.fds[0]!, { vnetHdr: tap.vnetHdr, name: 'tap0' });
    const counters: Record<string, number> = {};
    const sw = new Switch({ counters });
    const port = new TapPort(1, dev);
    sw.addPort(port);
    type T = { tcp: InstanceType<typeof TcpTranslator>; udp: InstanceType<typeof UdpTranslator>; icmp: InstanceType<typeof IcmpTranslator> };
    let tr: T | null = null;
    const router = new Router(cfg, {
      switch: sw, counters, offloads: tap.vnetHdr, onForward: () => {},
      onForward6: (f, e, ip) => {
        if (tr === null) return;
        if (ip.nextHeader === 6) tr.tcp.onPacket6(f, e, ip);
        else if (ip.nextHeader === 17) tr.udp.onPacket6(f, e, ip);
        else if (ip.nextHeader === 58) tr.icmp.onPacket6(f, e, ip);
      },
    });
    const logs: string[] = [];
    const log = { enabled: (l: string) => l !== 'trace' && l !== 'debug', log: (level: string, msg: string) => { logs.push(`${level}: ${msg}`); } };
    const ctx = { config: cfg, sink: router, counters, log };
    tr = { tcp: new TcpTranslator(ctx), udp: new UdpTranslator(ctx), icmp: new IcmpTranslator(ctx) };
    port.start(sw);
    const tick = setInterval(() => router.tick(), 1000);

    const inNs = (args: string[]) => spawnSync('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', ...args], { encoding: 'utf8' });
    for (const args of [['ip', '-6', 'addr', 'add', `${GUEST6}/64`, 'dev', 'tap0', 'nodad'],
      ['ip', '-6', 'route', 'add', 'default', 'via', 'fd00::2', 'dev', 'tap0', 'metric', '1']]) {
      const r = inNs(args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    }

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-tcp6-'));
    const client = path.join(dir, 'client.js');
    fs.writeFileSync(client, CLIENT);
    try {
      const r = await run(inContainer([process.execPath, client, String(shaSrv.port), String(sendSrv.port), String(closed.port), String(udpPort)]), 100_000);
      t.diagnostic(`client: ${r.out.trim()} ${r.err.trim()}`);
      const tcpStats = guestSnmp(pid, 'Tcp');
      t.diagnostic(`guest Tcp: ${JSON.stringify(tcpStats)}`);
      t.diagnostic(`counters: ${JSON.stringify(counters)}`);
      assert.equal(r.code, 0, `client failed: ${r.out} ${r.err}`);
      const res = new Map<string, Record<string, unknown>>();
      for (const l of r.out.trim().split('\n')) { const o = JSON.parse(l) as Record<string, unknown>; res.set(String(o.check), o); }
      const up = res.get('upload')!;
      assert.match(String(up.hello), /^you are ::1:\d+$/, 'fd00::2 maps to the host\'s ::1');
      assert.equal(up.reply, up.want, 'upload SHA-256');
      const down = res.get('download')!;
      assert.match(String(down.hello), new RegExp(`^you are ${HOST6}:\\d+$`), 'the outside sees the host\'s IPv6 address');
      assert.equal(down.n, 20 * MB);
      assert.equal(down.got, down.want, 'download SHA-256');
      assert.equal(res.get('refused')!.code, 'ECONNREFUSED');
      assert.equal(res.get('unreachable')!.code, 'ENETUNREACH', 'no route on the host -> ICMPv6 no route');
      const udp = res.get('udp')! as { got: Array<{ text: string; from: string }> };
      assert.equal(udp.got.length, 3);
      assert.ok(udp.got.every((g) => g.text.startsWith(`you are ${HOST6} hello-`) && g.from.startsWith(`${OUTSIDE6}:`)), JSON.stringify(udp.got));
      // TSO both ways: 40 MB in far fewer frames than 1500-byte packets would take (the guest's
      // superframes arrive with gso TCPV6; ours go out as TCPV6 superframes).
      const d = dev.counters;
      t.diagnostic(`TAP: rx ${d.rxFrames} frames ${d.rxBytes} B, tx ${d.txFrames} frames ${d.txBytes} B`);
      assert.ok(d.rxBytes / d.rxFrames > 8000, 'the guest sent superframes');
      assert.ok(d.txBytes / d.txFrames > 8000, 'we sent superframes');
      assert.ok((counters.tcp_flows6_opened ?? 0) >= 4);
      assert.equal(tcpStats.InCsumErrors ?? 0, 0, 'guest saw no bad checksums');
      assert.equal(tcpStats.InErrs ?? 0, 0, 'guest saw no bad segments');
      assert.equal(counters.tcp_internal_error ?? 0, 0);

      // ping -6 to the outside, through an AF_INET6 ping socket on the host (the sandbox allows them).
      const ping = await run(inContainer(['busybox', 'ping6', '-c', '3', '-W', '5', OUTSIDE6]), 30_000);
      t.diagnostic(`ping6: ${ping.out.trim()} ${ping.err.trim()}`);
      t.diagnostic(`icmp counters: ${JSON.stringify(Object.fromEntries(Object.entries(counters).filter(([k]) => k.startsWith('icmp'))))}`);
      assert.equal(ping.code, 0, ping.out + ping.err);
      assert.match(ping.out, /3 packets transmitted, 3 packets received/);
      // (One flow per guest source and identifier: the guest may also have taken a SLAAC address
      // from our RAs by now, so the flows are not counted exactly.)
      assert.ok((counters['icmp.flows6.created'] ?? 0) >= 1, 'through ICMPv6 echo flows');
      assert.equal(counters['icmp.rx.echo_replies'], counters['icmp.tx.echo_requests'], 'every request answered');
      assert.equal(logs.filter((l) => l.startsWith('warn') || l.startsWith('error')).length, 0, logs.join('\n'));
    } finally {
      clearInterval(tick);
      tr.tcp.close(); tr.udp.close(); tr.icmp.close();
      dev.close();
      fs.rmSync(dir, { recursive: true, force: true });
      sendSrv.stop(); shaSrv.stop(); udpProc.kill('SIGKILL');
    }
  });
}
