// Multi-queue flow ownership against the kernel: with --queues 2 the container's kernel spreads flows
// over both TAP queues, and every frame of a flow must reach the worker that owns the flow's host
// socket (the kernel steers a flow to the queue that last wrote it). A frame landing on the wrong
// worker would find no flow there and be answered with RST (tcp_no_flow_rst), breaking the transfer.
// Ownership is also checked byte by byte: every upload's bytes were accepted by exactly one worker,
// every download's bytes read by exactly one. Outbound flows pass even without any steering by the
// kernel (the guest's SYN picks the queue by a symmetric flow hash, and the owner answers on it).
// The second test is the real steering test: port forwards (inbound flows, owned by the worker
// whose listener accepted them, not by the flow's hash queue), including an idle gap longer than
// the kernel keeps a flow -> queue entry (3 s) after which the guest speaks first. It is marked
// The kernel learns a flow's queue from our write only after the written frame went through the
// guest's stack, and the guest answers a SYN inside that call: without help, a SYN written on queue
// 0 got its SYN-ACK on the hash queue (measured 26/14 over 40 flows) and about half of the
// port-forwarded connections were reset by the other worker. The translator writes a bare RST
// first (discarded by the guest) so the SYN-ACK is steered back: this test proves it.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { HOST_ADDR, OUTSIDE_ADDR, cleanup, dataPlaneMissing, ensureSandbox, makeOutside, runCli, startServer, type Server } from '../helpers/sandbox';

const CLIENT = path.join(__dirname, '..', 'helpers', 'container-client.js');
const MB = 1000 * 1000;

/** Parse the `--stats` table: counter -> per-column values (queue0, queue1, ..., total). */
function parseStats(stderr: string): { columns: string[]; rows: Map<string, number[]> } {
  const lines = stderr.split('\n');
  const at = lines.findIndex((l) => /^\s*counter\s+queue0/.test(l));
  assert.ok(at >= 0, `no per-queue stats table in:\n${stderr}`);
  const columns = lines[at]!.trim().split(/\s+/).slice(1);
  const rows = new Map<string, number[]>();
  for (const l of lines.slice(at + 1)) {
    const m = /^\s+(\S+)((?:\s+\d+)+)\s*$/.exec(l);
    if (!m) continue;
    rows.set(m[1]!, m[2]!.trim().split(/\s+/).map(Number));
  }
  return { columns, rows };
}

if (ensureSandbox(__filename)) {
  const missing = dataPlaneMissing();
  const servers: Record<string, Server> = {};
  before(async () => {
    if (missing) return;
    const outside = await makeOutside();
    servers.sha = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', 'sha256']);
    servers.send = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', `send:${5 * MB}`]);
  });
  after(() => cleanup());

  test('--queues 2: flows spread over both workers, each flow stays with its owner, data intact', { skip: missing ?? false, timeout: 120_000 }, async (t) => {
    const probes: object[] = [];
    for (let i = 0; i < 6; i++) {
      probes.push({ kind: 'tcp-upload', host: OUTSIDE_ADDR, port: servers.sha!.port, bytes: 5 * MB });
      probes.push({ kind: 'tcp-download', host: OUTSIDE_ADDR, port: servers.send!.port, bytes: 5 * MB });
    }
    const r = await runCli(['run', '--network', 'userspace', '--queues', '2', '--stats', '--', process.execPath, CLIENT, JSON.stringify({ probes, parallel: true })], { timeoutMs: 100_000 });
    assert.equal(r.code, 0, r.stderr);
    const results = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: Array<Record<string, unknown>> }).results;
    assert.equal(results.length, probes.length);
    for (const [i, res] of results.entries()) {
      assert.match(String(res.greeting), new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:`), `probe ${i}: ${JSON.stringify(res)}`);
      if (i % 2 === 0) assert.equal(res.restText, `sha256 ${String(res.sentSha256)} ${5 * MB}\n`, `upload ${i}`);
      else assert.equal(res.restSha256, res.expectSha256, `download ${i}`);
    }
    const { columns, rows } = parseStats(r.stderr);
    assert.deepEqual(columns, ['queue0', 'queue1', 'total']);
    const opened = rows.get('tcp_flows_opened') ?? [0, 0, 0];
    t.diagnostic(`flows opened per queue: ${opened.join(' / ')}`);
    assert.equal(opened[2], 12, 'twelve flows in all');
    assert.ok(opened[0]! > 0 && opened[1]! > 0, `both workers own flows: ${opened.join(' / ')}`);
    assert.equal(rows.get('tcp_no_flow_rst')?.[2] ?? 0, 0, 'no frame reached a worker that does not own its flow');
    assert.equal(rows.get('tcp_no_flow_rst_ignored')?.[2] ?? 0, 0, 'no RST from the guest reached a worker that does not own its flow');
    // Byte-level ownership: each upload's 5 MB were accepted by one worker (a flow whose frames
    // went to both would split them), each download's 5 MB read from the host by one worker.
    const rx = rows.get('tcp_rx_bytes') ?? [0, 0, 0];
    t.diagnostic(`guest bytes accepted per queue: ${rx.join(' / ')}`);
    assert.equal(rx[2], 6 * 5 * MB, 'every upload byte accepted exactly once');
    for (const q of [0, 1]) assert.equal(rx[q]! % (5 * MB), 0, `queue ${q} accepted whole uploads only (${rx[q]})`);
    const hostRx = rows.get('tcp_host_rx_bytes') ?? [0, 0, 0];
    // Besides the downloads, the host sockets carried the servers' greetings and the SHA-256 replies.
    let small = 0;
    for (const [i, res] of results.entries()) small += String(res.greeting).length + 1 + (i % 2 === 0 ? String(res.restText).length : 0);
    assert.equal(hostRx[2], 6 * 5 * MB + small, 'every host byte read exactly once');
    assert.equal((hostRx[0]! % (5 * MB)) + (hostRx[1]! % (5 * MB)), small, `each download read whole by one worker: ${hostRx.join(' / ')}`);
  });

  test('--queues 2 with a port forward: inbound flows stay with their owner across an idle gap the kernel forgets, the guest speaking first', { skip: missing ?? false, timeout: 60_000 }, async (t) => {
    const FLOWS = 6;
    const PART = 1 * MB;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-mq-'));
    const serverJs = path.join(dir, 'server.js');
    // In the container: greet, read PART bytes, stay silent 3.5 s (the kernel's flow -> queue entry
    // lasts 3 s), then send PART bytes first; after the client's FIN, answer with the SHA-256 of
    // everything received. Exits after FLOWS connections.
    fs.writeFileSync(serverJs, `
const net = require('node:net'); const crypto = require('node:crypto');
const det = (seed, len) => { const b = Buffer.allocUnsafe(len); for (let i = 0; i < len; i++) b[i] = (i * 7 + seed) % 251; return b; };
let left = ${FLOWS};
const srv = net.createServer({ allowHalfOpen: true }, (s) => {
  const h = crypto.createHash('sha256'); let n = 0; let sent = false;
  s.write('you are ' + s.remoteAddress + '\\n');
  s.on('data', (d) => {
    h.update(d); n += d.length;
    if (n >= ${PART} && !sent) { sent = true; setTimeout(() => s.write(det(s.remotePort % 251, ${PART})), 3500); }
  });
  s.on('end', () => s.end('sha256 ' + h.digest('hex') + ' ' + n + '\\n'));
  s.on('close', () => { if (--left === 0) srv.close(); });
});
srv.listen(8080, '0.0.0.0', () => console.log('ready'));
setTimeout(() => process.exit(3), 40000).unref(); // never outlive the test, even if flows hang
`);
    const hostPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    let child: ChildProcess | null = null;
    let readyResolve: () => void = () => {};
    const ready = new Promise<void>((r) => { readyResolve = r; });
    const run = runCli(['run', '--network', 'userspace', '--queues', '2', '--stats', '-p', `127.0.0.1:${hostPort}:8080`, '--',
      process.execPath, serverJs], {
      timeoutMs: 50_000,
      onSpawn: (c) => { child = c; c.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('ready')) readyResolve(); }); },
    });
    try {
      await Promise.race([ready, run.then((r) => { throw new Error(`run exited early: ${r.stderr}`); })]);
      const one = (): Promise<{ ok: boolean; why: string }> => new Promise((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port: hostPort, allowHalfOpen: true });
        const payload = Buffer.alloc(PART, 0x5a);
        let buf = Buffer.alloc(0);
        let ended = false;
        c.on('connect', () => c.write(payload));
        c.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          const nl = buf.indexOf(10);
          if (!ended && nl >= 0 && buf.length >= nl + 1 + PART) { ended = true; c.end(); }
        });
        c.on('error', (e) => resolve({ ok: false, why: e.message }));
        // The legitimate silence is 3.5 s; a flow whose frames went astray stalls or is reset.
        c.setTimeout(8_000, () => { c.destroy(); resolve({ ok: false, why: `stalled after ${buf.length} bytes` }); });
        c.on('end', () => {
          const nl = buf.indexOf(10);
          const greeting = buf.subarray(0, nl).toString();
          const fromGuest = buf.subarray(nl + 1, nl + 1 + PART);
          const last = buf.subarray(nl + 1 + PART).toString();
          const seed = c.localPort! % 251;
          const want = Buffer.allocUnsafe(PART);
          for (let i = 0; i < PART; i++) want[i] = (i * 7 + seed) % 251;
          const wantLast = `sha256 ${createHash('sha256').update(payload).digest('hex')} ${PART}\n`;
          const ok = greeting === 'you are 10.0.2.2' && fromGuest.equals(want) && last === wantLast;
          resolve({ ok, why: `${greeting} | ${fromGuest.length} bytes from the guest, match ${fromGuest.equals(want)} | ${JSON.stringify(last)}` });
        });
      });
      const outcomes = await Promise.all(Array.from({ length: FLOWS }, one));
      assert.ok(outcomes.every((o) => o.ok), outcomes.map((o, i) => `flow ${i}: ${o.ok ? 'ok' : o.why}`).join('\n'));
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      const { rows } = parseStats(r.stderr);
      const get = (k: string) => rows.get(k) ?? [0, 0, 0];
      t.diagnostic(`inbound opened ${get('tcp_inbound_opened').join(' / ')}, queue-pin ACKs ${get('tcp_queue_pin_ack').join(' / ')}, host bytes ${get('tcp_host_rx_bytes').join(' / ')}`);
      assert.equal(get('tcp_inbound_opened')[2], FLOWS);
      assert.ok(get('tcp_queue_pin_ack')[2]! > 0, 'idle inbound flows kept their queue with bare ACKs');
      assert.equal(get('tcp_no_flow_rst')[2], 0, 'no frame of an inbound flow reached the other worker');
      assert.equal(get('tcp_no_flow_rst_ignored')[2], 0);
      const hostRx = get('tcp_host_rx_bytes');
      assert.equal(hostRx[2], FLOWS * PART, 'every host byte read once');
      for (const q of [0, 1]) assert.equal(hostRx[q]! % PART, 0, `queue ${q} read whole flows only`);
    } finally {
      // SIGTERM first: tapswitch run stops CMD (the server) with it; SIGKILL would orphan it.
      const ch = child as ChildProcess | null;
      if (ch && ch.exitCode === null && ch.signalCode === null) {
        ch.kill('SIGTERM');
        setTimeout(() => ch.kill('SIGKILL'), 3000).unref();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
