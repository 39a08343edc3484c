// The TCP translator against the reference peer: the Linux kernel's own TCP stack in a container
// namespace (nested user+net namespace, the rootless case) on a TAP with the virtio-net header and
// CSUM/TSO offloads, served in this process by Switch + Router + TcpTranslator. Inside the
// container a node client connects to the gateway (-> host loopback) and to an "outside" server,
// moves tens of MB both ways (SHA-256 checked end to end, superframes in both directions), and
// checks the errors a real network gives: refused -> ECONNREFUSED, no route -> ENETUNREACH.
// Servers report the source they saw, so the test proves the NAT. Runs in test/helpers/sandbox.ts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureSandbox, HOST, HOST_ADDR, makeOutside, OUTSIDE_ADDR, startServer, tapMissing, waitForLine } from '../helpers/sandbox';
import { guestSnmp, run, serveTap, startContainer, testConfig } from '../helpers/container-ns';

const MB = 1 << 20;

// Runs inside the container. Prints one JSON line per check.
const CLIENT = `
const net = require('node:net');
const crypto = require('node:crypto');
const [gwPort, sendPort, echoPort, closedPort] = process.argv.slice(2).map(Number);
const UP = ${24 * MB}, DOWN = ${24 * MB};
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
  // gateway -> host loopback; sha256 server answers the digest of what it got after our FIN
  const s = await connect('10.0.2.2', gwPort);
  const next = lines(s);
  const hello = await next();
  const h = crypto.createHash('sha256');
  const t0 = process.hrtime.bigint();
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
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  out({ check: 'upload', hello, reply, want: 'sha256 ' + h.digest('hex') + ' ' + UP, gbps: (UP * 8 / ms / 1e6).toFixed(2) });
  s.destroy();
}
async function download() {
  const s = await connect('${OUTSIDE_ADDR}', sendPort);
  const h = crypto.createHash('sha256');
  let first = null; let n = 0; let pre = Buffer.alloc(0);
  const t0 = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    s.on('data', (d) => {
      if (first === null) { pre = Buffer.concat([pre, d]); const i = pre.indexOf(10); if (i < 0) return; first = pre.subarray(0, i).toString(); d = pre.subarray(i + 1); }
      h.update(d); n += d.length;
    });
    s.on('end', resolve); s.on('error', reject);
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const w = crypto.createHash('sha256'); for (let o = 0; o < DOWN; o += MB) w.update(det(o, Math.min(${MB}, DOWN - o)));
  out({ check: 'download', hello: first, n, got: h.digest('hex'), want: w.digest('hex'), gbps: (DOWN * 8 / ms / 1e6).toFixed(2) });
}
const MB = ${MB};
async function echo() {
  // many small request/response round trips (interactive traffic, PSH, delayed ACK paths)
  const s = await connect('10.0.2.2', echoPort);
  const next = lines(s);
  const hello = await next();
  const t0 = process.hrtime.bigint();
  let ok = 0;
  for (let i = 0; i < 200; i++) { s.write('ping ' + i + '\\n'); if ((await next()) === 'ping ' + i) ok++; }
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / 200;
  out({ check: 'echo', hello, ok, rttUs: us.toFixed(0) });
  s.end();
}
async function slowReader() {
  // Stop reading for a while: the guest kernel's window closes (zero window, persist probes),
  // then reopens when the application reads again.
  const s = await connect('${OUTSIDE_ADDR}', sendPort);
  const h = crypto.createHash('sha256');
  let n = 0; let pre = Buffer.alloc(0); let first = null;
  s.pause();
  await new Promise((r) => setTimeout(r, 1500));
  s.resume();
  await new Promise((resolve, reject) => {
    s.on('data', (d) => {
      if (first === null) { pre = Buffer.concat([pre, d]); const i = pre.indexOf(10); if (i < 0) return; first = 1; d = pre.subarray(i + 1); }
      h.update(d); n += d.length;
    });
    s.on('end', resolve); s.on('error', reject);
  });
  const w = crypto.createHash('sha256'); for (let o = 0; o < DOWN; o += MB) w.update(det(o, Math.min(MB, DOWN - o)));
  out({ check: 'slow', n, ok: h.digest('hex') === w.digest('hex') });
}
async function refused() {
  try { await connect('10.0.2.2', closedPort); out({ check: 'refused', code: 'connected?!' }); }
  catch (e) { out({ check: 'refused', code: e.code }); }
}
async function unreachable() {
  const t0 = Date.now();
  try { await connect('203.0.113.7', 80); out({ check: 'unreachable', code: 'connected?!' }); }
  catch (e) { out({ check: 'unreachable', code: e.code, ms: Date.now() - t0 }); }
}
async function parallel() {
  // 20 concurrent connections with data both ways
  const one = async (i) => {
    const s = await connect('10.0.2.2', echoPort);
    const next = lines(s); await next();
    const msg = 'x'.repeat(1000 + i * 500);
    s.write(msg + '\\n');
    const back = await next();
    s.end();
    return back === msg;
  };
  const r = await Promise.all(Array.from({ length: 20 }, (_, i) => one(i)));
  out({ check: 'parallel', ok: r.filter(Boolean).length });
}
(async () => {
  await Promise.all([upload(), download()]);
  await echo();
  await slowReader();
  await refused();
  await unreachable();
  await parallel();
})().catch((e) => { out({ error: String(e && e.stack || e) }); process.exit(1); });
`;

// Runs inside the container: the port-forward target. Greets with the source it sees, replies
// with the SHA-256 of what it got after the client's FIN.
const GUEST_SERVER = `
const net = require('node:net');
const crypto = require('node:crypto');
const srv = net.createServer({ allowHalfOpen: true }, (s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.write('you are ' + s.remoteAddress + '\\n');
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => s.end('sha256 ' + h.digest('hex') + ' ' + n + '\\n'));
});
srv.listen(8080, '0.0.0.0', () => console.log('ready'));
`;

if (ensureSandbox(__filename)) {
  const skip = tapMissing();
  test('guest kernel TCP <-> TcpTranslator: NAT, 24 MB both ways with SHA-256, echo, refused, unreachable, parallel, port forward', { skip: skip ?? false, timeout: 120_000 }, async (t) => {
    const { TcpTranslator } = await import('../../src/translate/tcp');

    const outside = await makeOutside();
    const sendSrv = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', `send:${24 * MB}`]);
    const shaSrv = await startServer(HOST, 'tcp-server', ['--host', '127.0.0.1', '--mode', 'sha256']);
    const echoSrv = await startServer(HOST, 'tcp-server', ['--host', '127.0.0.1', '--mode', 'echo']);
    const closed = await startServer(HOST, 'tcp-server', ['--host', '127.0.0.1', '--mode', 'echo']);
    closed.stop();

    const { pid, inContainer } = await startContainer();
    const cfg = testConfig();
    let tcp: InstanceType<typeof TcpTranslator> | null = null;
    const { dev, counters, sw, port, router } = await serveTap(pid, cfg, 'configured',
      (f, e, ip) => { if (ip.protocol === 6) tcp?.onPacket(f, e, ip); });
    const logs: string[] = [];
    const log = { enabled: (l: string) => l !== 'trace' && l !== 'debug', log: (level: string, msg: string) => { logs.push(`${level}: ${msg}`); } };
    tcp = new TcpTranslator({ config: cfg, sink: router, counters, log });
    port.start(sw);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-tcp-'));
    const client = path.join(dir, 'client.js');
    fs.writeFileSync(client, CLIENT);
    try {
      const r = await run(inContainer([process.execPath, client, String(shaSrv.port), String(sendSrv.port), String(echoSrv.port), String(closed.port)]), 90_000);
      t.diagnostic(`client: ${r.out.trim()} ${r.err.trim()}`);
      const tcpStats = guestSnmp(pid, 'Tcp');
      t.diagnostic(`guest Tcp: ${JSON.stringify(tcpStats)}`);
      t.diagnostic(`counters: ${JSON.stringify(Object.fromEntries(Object.entries(counters).filter(([k]) => k.startsWith('tcp'))))}`);
      assert.equal(r.code, 0, `client failed: ${r.out} ${r.err}`);
      const res = new Map<string, Record<string, unknown>>();
      for (const l of r.out.trim().split('\n')) { const o = JSON.parse(l) as Record<string, unknown>; res.set(String(o.check), o); }
      const up = res.get('upload')!;
      assert.equal(up.hello, 'you are 127.0.0.1:' + String(up.hello).split(':')[1], 'gateway maps to host loopback');
      assert.equal(up.reply, up.want, 'upload SHA-256');
      const down = res.get('download')!;
      assert.match(String(down.hello), new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:`), 'outside sees the host address');
      assert.equal(down.n, 24 * MB);
      assert.equal(down.got, down.want, 'download SHA-256');
      assert.equal(res.get('echo')!.ok, 200);
      assert.equal(res.get('slow')!.ok, true, 'a reader that stalls and resumes gets every byte');
      assert.ok((counters.tcp_zero_window_probe ?? 0) + (counters.tcp_host_paused ?? 0) > 0);
      assert.equal(res.get('refused')!.code, 'ECONNREFUSED');
      assert.equal(res.get('unreachable')!.code, 'ENETUNREACH');
      assert.equal(res.get('parallel')!.ok, 20);
      assert.equal(tcpStats.InCsumErrors ?? 0, 0, 'guest saw no bad checksums');
      assert.equal(tcpStats.RetransSegs ?? 0, 0, 'the guest never had to retransmit');
      assert.equal(tcpStats.InErrs ?? 0, 0, 'guest saw no bad segments');
      assert.equal(counters.tcp_internal_error ?? 0, 0);
      assert.equal(logs.filter((l) => l.startsWith('warn') || l.startsWith('error')).length, 0, logs.join('\n'));
      // Port forwarding: a host client -> host listener -> openInbound -> the guest's server.
      fs.writeFileSync(path.join(dir, 'server.js'), GUEST_SERVER);
      const gsrv = inContainer([process.execPath, path.join(dir, 'server.js')]);
      await waitForLine(gsrv, (l) => l === 'ready');
      const net = await import('node:net');
      const { createHash, randomBytes } = await import('node:crypto');
      const fwd = net.createServer({ allowHalfOpen: true }, (sock) => {
        const guestPort = Number(process.env.FWD_PORT_OVERRIDE ?? 0) || fwdTarget;
        if (!tcp!.openInbound(sock, cfg.guest, guestPort, cfg.gateway, sock.remotePort!)) sock.destroy();
      });
      let fwdTarget = 8080;
      await new Promise<void>((r) => fwd.listen(0, '127.0.0.1', () => r()));
      const fwdPort = (fwd.address() as import('node:net').AddressInfo).port;
      const payload = randomBytes(16 * MB);
      const reply = await new Promise<string>((resolve, reject) => {
        const c = net.connect({ host: '127.0.0.1', port: fwdPort, allowHalfOpen: true });
        let text = '';
        c.on('data', (d) => { text += d.toString(); });
        c.on('end', () => resolve(text));
        c.on('error', reject);
        c.end(payload);
      });
      t.diagnostic(`port forward reply: ${reply.trim()}`);
      const [hello, digest] = reply.trim().split('\n');
      assert.equal(hello, `you are 10.0.2.2`, 'a loopback client appears as the gateway');
      assert.equal(digest, `sha256 ${createHash('sha256').update(payload).digest('hex')} ${payload.length}`);
      // Nothing listens on 8081 in the container: its kernel answers RST, the host client is reset.
      fwdTarget = 8081;
      const refusedCode = await new Promise<string>((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port: fwdPort });
        c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        c.on('close', () => resolve('closed'));
      });
      assert.equal(refusedCode, 'ECONNRESET');
      assert.ok((counters.tcp_inbound_refused ?? 0) >= 1);
      fwd.close();
      gsrv.kill();

      // Everything closes cleanly: flows drain to zero once lingering ends.
      await new Promise((res2) => setTimeout(res2, 200));
      t.diagnostic(`flows left: ${JSON.stringify(tcp.flows())}`);
    } finally {
      tcp.close();
      dev.close();
      fs.rmSync(dir, { recursive: true, force: true });
      sendSrv.stop(); shaSrv.stop(); echoSrv.stop();
    }
  });
}
