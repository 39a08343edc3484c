// GSO framing of the TCP translator against the reference peer: the Linux kernel's own TCP in a
// container namespace (nested user+net namespace, the rootless case) on a TAP with the virtio-net
// header and CSUM/TSO offloads. The TAP is served in this process by TapDevice -> ObservedDevice
// (records every TCP frame exactly as it crosses the TAP, and injects single losses) -> Switch +
// Router + TcpTranslator. The host ends of every transfer are servers/clients in this process on
// 127.0.0.1, reached through the gateway (10.0.2.2) or a port forward.
//
// What this file proves (issue 4: "superframe split/merge boundaries, window full, retransmit of a
// superframe's tail, against the kernel"):
//  1. superframes both ways: the guest kernel sends TCPV4 GSO frames of ~64 KiB and accepts ours
//     (data intact, no checksum errors, no retransmissions);
//  2. split/merge boundaries: transfers of 1, MSS-1, MSS, MSS+1, 65495, 64 KiB, 64 KiB+1,
//     3x64 KiB+7 bytes and 3000 tiny writes arrive exactly both ways (count + SHA-256, and the
//     frames cover exactly those bytes), every frame's IP total length matches its real length,
//     gso_size is the negotiated MSS, small writes merge into few frames; at MTU 65520 the same
//     with no GSO at all;
//  3. window full: a guest server that does not read; the host writer is throttled (bytes its
//     socket accepts plateau), the flow's queue stays within the guest's window + one read, the
//     guest advertises zero window and tapswitch probes it; then everything arrives intact;
//  4. loss: a superframe to the guest dropped by nftables in the guest (counter = 1), the tail of
//     a superframe to the guest cut off, one of the guest's superframes dropped, and the tail of
//     one cut off: the missing bytes are retransmitted (seen on the wire, counted by tapswitch or
//     by the guest kernel) and every stream ends intact.
// Runs in test/helpers/sandbox.ts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { ensureSandbox, tapMissing, track, waitForLine } from '../helpers/sandbox';
import { run, startContainer, testConfig, type Container } from '../helpers/container-ns';
import {
  GUEST_CLIENT, GUEST_LAZY_SERVER, HostEnds, det, detSha, guestNetstat, netstatDelta, serveObserved, specBytes,
  type ObservedTap, type WriteSpec,
} from '../helpers/gso-harness';
import { streamOf, type TcpFrameRecord } from '../helpers/observed-tap';

const MB = 1 << 20;
const GSO_TCPV4 = 1;
const FIN = 0x01;
const SYN = 0x02;
/** Largest TCP payload in one IPv4 packet without options. */
const MAX_PAYLOAD = 65535 - 40;
/** Host bytes one socket read can add beyond the pause threshold (Node reads up to 64 KiB). */
const READ_CHUNK = 65536;

interface Transfer extends WriteSpec { id: string; kind: 'down' | 'up'; port: number }
interface GuestResult { id: string; port: number; n?: number; sha?: string; reply?: string; error?: string }

function nftMissing(): string | null {
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
  return r.error ? 'nft not installed (Debian package nftables): cannot drop a frame inside the guest namespace' : null;
}

/** Run GUEST_CLIENT in the container; one result per transfer. */
async function guestRun(c: Container, script: string, transfers: Transfer[], parallel = false): Promise<Map<string, GuestResult>> {
  const spec = { host: '10.0.2.2', parallel, transfers: transfers.map(({ id, kind, port, seed, writes, bulk, tail }) => ({ id, kind, port, seed, writes, bulk, tail })) };
  const r = await run(c.inContainer([process.execPath, script, JSON.stringify(spec)]), 60_000);
  assert.equal(r.code, 0, `guest client failed: ${r.out} ${r.err}`);
  const res = new Map<string, GuestResult>();
  for (const l of r.out.trim().split('\n')) {
    const o = JSON.parse(l) as GuestResult;
    res.set(o.id, o);
  }
  return res;
}

/** Every byte of every transfer arrived exactly, both ends agree, and the frames carried exactly them. */
function checkTransfers(transfers: Transfer[], res: Map<string, GuestResult>, ends: HostEnds, srv: ObservedTap, from: number): Map<string, TcpFrameRecord[]> {
  const flows = new Map<string, TcpFrameRecord[]>();
  for (const tr of transfers) {
    const r = res.get(tr.id);
    assert.ok(r && !r.error, `${tr.id}: ${JSON.stringify(r)}`);
    const n = specBytes(tr);
    const recs = srv.obs.records.slice(from).filter((x) => x.guestPort === r.port);
    flows.set(tr.id, recs);
    if (tr.kind === 'down') {
      assert.equal(r.n, n, `${tr.id}: the guest got every byte`);
      assert.equal(r.sha, detSha(tr.seed, n), `${tr.id}: SHA-256 in the guest`);
      const s = streamOf(recs, 'tx');
      assert.notEqual(s.isn, null, `${tr.id}: SYN-ACK seen`);
      assert.equal(s.covered, n, `${tr.id}: our frames carried exactly ${n} bytes`);
      assert.equal(s.end, n, `${tr.id}: and nothing beyond`);
    } else {
      assert.equal(r.reply, 'ok\n', `${tr.id}: host answered after the guest's FIN`);
      const got = ends.upResults.get(tr.id);
      assert.deepEqual(got, { n, sha: detSha(tr.seed, n) }, `${tr.id}: count and SHA-256 on the host`);
      const s = streamOf(recs, 'rx');
      const idLine = tr.id.length + 1;
      assert.equal(s.covered, n + idLine, `${tr.id}: the guest's frames carried exactly its bytes`);
    }
  }
  return flows;
}

/** Frame-level rules for every data frame of `recs` (both directions). */
function checkFraming(recs: TcpFrameRecord[], ourMss: number, what: string): void {
  const guestSyn = recs.find((r) => r.dir === 'rx' && (r.flags & SYN) !== 0);
  const synAck = recs.find((r) => r.dir === 'tx' && (r.flags & SYN) !== 0);
  const mss = Math.min(ourMss, guestSyn?.synMss || ourMss);
  if (synAck) assert.equal(synAck.synMss, ourMss, `${what}: we announce MTU - 40`);
  for (const r of recs) {
    assert.equal(r.frameLength, 24 + r.ipTotalLength, `${what}: ${r.dir} frame length matches its IP total length (no wrap past 64 KiB)`);
    if (r.payload <= 0) continue;
    assert.ok(r.payload <= MAX_PAYLOAD, `${what}: ${r.dir} payload ${r.payload} fits one IPv4 packet`);
    if (r.dir === 'tx') {
      assert.equal(r.vnetFlags & 1, 1, `${what}: NEEDS_CSUM on our frames`);
      if (r.payload > mss) {
        assert.equal(r.gsoType, GSO_TCPV4, `${what}: our ${r.payload}-byte frame is a TCPV4 superframe`);
        assert.equal(r.gsoSize, mss, `${what}: our gso_size = the guest's MSS`);
      } else {
        assert.equal(r.gsoType, 0, `${what}: no GSO for ${r.payload} bytes`);
      }
    } else if (r.gsoType !== 0) {
      assert.equal(r.gsoType & 0x7f, GSO_TCPV4, `${what}: the guest's superframes are TCPV4`);
      assert.equal(r.gsoSize, mss, `${what}: the guest's gso_size = the negotiated MSS ${mss}`);
      assert.ok(r.payload > r.gsoSize, `${what}: a guest GSO frame carries more than one segment`);
    } else {
      assert.ok(r.payload <= mss, `${what}: a non-GSO guest frame fits the MSS`);
    }
  }
}

/** Boundary transfers for MSS `mss`, both ways (seeds distinct per transfer). */
function boundaryTransfers(mss: number, ports: { down: number; up: number }, tag: string): Transfer[] {
  const sizes: Array<[string, number[]]> = [
    ['1', [1]], ['mss-1', [mss - 1]], ['mss', [mss]], ['mss+1', [mss + 1]], ['65495', [MAX_PAYLOAD]],
    ['64k', [65536]], ['64k+1', [65537]], ['3x64k+7', [3 * 65536 + 7]],
    ['mixed', [1, 65535, 1, mss, 65537, 7]],
    ['tiny', Array.from({ length: 3000 }, () => 7)],
  ];
  const out: Transfer[] = [];
  let seed = 1;
  for (const [name, writes] of sizes) {
    out.push({ id: `${tag}-down-${name}`, kind: 'down', port: ports.down, seed: seed++, writes });
    out.push({ id: `${tag}-up-${name}`, kind: 'up', port: ports.up, seed: seed++, writes });
  }
  return out;
}

function dataFrames(recs: TcpFrameRecord[], dir: 'rx' | 'tx'): TcpFrameRecord[] {
  return recs.filter((r) => r.dir === dir && r.payload > 0 && r.fault !== 'drop');
}

async function waitFor(cond: () => boolean, what: string, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function ctr(srv: ObservedTap, k: string): number { return srv.counters[k] ?? 0; }

if (ensureSandbox(__filename)) {
  const skip = tapMissing();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gso-'));
  const clientJs = path.join(dir, 'client.js');
  fs.writeFileSync(clientJs, GUEST_CLIENT);
  fs.writeFileSync(path.join(dir, 'lazy-server.js'), GUEST_LAZY_SERVER);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

  test('MTU 1500: superframes both ways, split/merge boundaries, window full, superframe loss and tail retransmission', { skip: skip ?? false, timeout: 120_000 }, async (t) => {
    const cfg = testConfig({ mtu: 1500 });
    const mss = cfg.mtu - 40;
    const maxSeg = Math.floor(MAX_PAYLOAD / mss) * mss;
    const container = await startContainer();
    const srv = await serveObserved(container.pid, cfg);
    const ends = new HostEnds();
    const ports = await ends.listen();
    try {
      const ns0 = guestNetstat(container.pid);

      await t.test('1. 64 KiB superframes both ways (16 MiB up and down at once)', async () => {
        const from = srv.obs.records.length;
        const tr: Transfer[] = [
          { id: 'bulk-down', kind: 'down', port: ports.down, seed: 101, bulk: 16 * MB },
          { id: 'bulk-up', kind: 'up', port: ports.up, seed: 102, bulk: 16 * MB },
        ];
        for (const x of tr) if (x.kind === 'down') ends.downSpecs.set(x.id, x);
        const res = await guestRun(container, clientJs, tr, true);
        const flows = checkTransfers(tr, res, ends, srv, from);
        const down = flows.get('bulk-down')!;
        const up = flows.get('bulk-up')!;
        checkFraming(down, mss, 'bulk-down');
        checkFraming(up, mss, 'bulk-up');
        const summary = (frames: TcpFrameRecord[]) => {
          const gso = frames.filter((r) => r.gsoType !== 0);
          const bytes = frames.reduce((a, r) => a + r.payload, 0);
          const gsoBytes = gso.reduce((a, r) => a + r.payload, 0);
          return { frames: frames.length, gso: gso.length, max: Math.max(...frames.map((r) => r.payload)), gsoShare: gsoBytes / bytes };
        };
        const rx = summary(dataFrames(up, 'rx'));
        const tx = summary(dataFrames(down, 'tx'));
        t.diagnostic(`guest -> us: ${JSON.stringify(rx)}; us -> guest: ${JSON.stringify(tx)}`);
        // The guest's kernel really sent ~64 KiB TSO superframes, and most bytes came that way.
        assert.ok(rx.max >= maxSeg - 4 * mss, `guest superframes reach ~64 KiB (largest ${rx.max}, full = ${maxSeg})`);
        assert.ok(rx.gsoShare > 0.5, `most upload bytes arrived in GSO frames (${rx.gsoShare})`);
        // And we sent full superframes that it accepted (the SHA-256 above).
        assert.equal(tx.max, maxSeg, 'our largest superframe is the full 64 KiB (MSS multiple)');
        assert.ok(tx.gsoShare > 0.5, `most download bytes left in GSO frames (${tx.gsoShare})`);
        assert.ok(srv.obs.records.slice(from).filter((r) => r.dir === 'tx' && r.gsoType === GSO_TCPV4).length >= 16 * MB / maxSeg / 2);
      });

      await t.test('2. split/merge boundaries arrive exactly both ways', async () => {
        const from = srv.obs.records.length;
        const tr = boundaryTransfers(mss, ports, 'b1500');
        for (const x of tr) if (x.kind === 'down') ends.downSpecs.set(x.id, x);
        const res = await guestRun(container, clientJs, tr);
        const flows = checkTransfers(tr, res, ends, srv, from);
        for (const [id, recs] of flows) checkFraming(recs, mss, id);
        // Splits: a single write larger than one superframe must leave as several, none over maxSeg.
        for (const id of ['b1500-down-64k+1', 'b1500-down-3x64k+7']) {
          const f = dataFrames(flows.get(id)!, 'tx');
          const n = specBytes(tr.find((x) => x.id === id)!);
          assert.ok(f.length >= Math.ceil(n / maxSeg), `${id}: split into ${f.length} frames`);
          assert.ok(f.every((r) => r.payload <= maxSeg), `${id}: no frame over ${maxSeg}`);
        }
        // One write of exactly MSS+1 bytes is one superframe of two segments toward the guest.
        const mp1 = dataFrames(flows.get('b1500-down-mss+1')!, 'tx');
        t.diagnostic(`mss+1 frames: ${mp1.map((r) => `${r.payload}/gso${r.gsoType}`).join(' ')}`);
        // Merges: 3000 writes of 7 bytes leave in far fewer frames, in both directions.
        const tinyDown = dataFrames(flows.get('b1500-down-tiny')!, 'tx').length;
        const tinyUp = dataFrames(flows.get('b1500-up-tiny')!, 'rx').length;
        t.diagnostic(`3000 tiny writes: ${tinyDown} frames to the guest, ${tinyUp} frames from it`);
        assert.ok(tinyDown < 300, `tiny host writes merged into ${tinyDown} frames`);
        assert.ok(tinyUp < 300, `tiny guest writes merged into ${tinyUp} frames`);
        const ns = netstatDelta(ns0, guestNetstat(container.pid), 'Tcp');
        t.diagnostic(`guest Tcp delta after 1+2: ${JSON.stringify(ns)}`);
        assert.equal(ns.InCsumErrors ?? 0, 0, 'guest saw no bad checksums');
        assert.equal(ns.InErrs ?? 0, 0, 'guest saw no bad segments');
        assert.equal(ns.RetransSegs ?? 0, 0, 'the guest never had to retransmit');
        assert.ok(ctr(srv, 'tcp_retransmits') <= 2, `tapswitch retransmitted ${ctr(srv, 'tcp_retransmits')} times without any loss`);
      });

      await t.test('3. window full: host writer throttled, queue bounded by the window, zero-window probes, then intact', async () => {
        const TOTAL = 48 * MB;
        const seed = 77;
        const lazy = track(spawn('nsenter', ['-t', String(container.pid), '-U', '-n', '--preserve-credentials',
          process.execPath, path.join(dir, 'lazy-server.js')], { stdio: ['pipe', 'pipe', 'pipe'] })) as ChildProcess;
        await waitForLine(lazy, (l) => l === 'ready');
        const fwd = net.createServer((sock) => {
          if (!srv.tcp.openInbound(sock, cfg.guest, 8080, cfg.gateway, sock.remotePort!)) sock.destroy();
        });
        await new Promise<void>((r) => fwd.listen(0, '127.0.0.1', () => r()));
        const probes0 = ctr(srv, 'tcp_zero_window_probe');
        const paused0 = ctr(srv, 'tcp_host_paused');
        const from = srv.obs.records.length;
        let accepted = 0;
        let reply = '';
        const c = net.connect({ host: '127.0.0.1', port: (fwd.address() as net.AddressInfo).port, allowHalfOpen: true });
        const replied = new Promise<void>((resolve, reject) => {
          c.on('data', (d) => { reply += d.toString(); });
          c.on('end', () => resolve());
          c.on('error', reject);
        });
        c.on('connect', () => {
          let off = 0;
          const pump = (): void => {
            while (off < TOTAL) {
              const n = Math.min(256 * 1024, TOTAL - off);
              const ok = c.write(det(seed, off, n), () => { accepted += n; });
              off += n;
              if (!ok) { c.once('drain', pump); return; }
            }
            c.end();
          };
          pump();
        });
        try {
          // Sample while the guest does not read: the flow's queue vs. the window the guest offers.
          let worst = -Infinity;
          let samples = 0;
          let last = -1;
          let stableSince = Date.now();
          const t0 = Date.now();
          for (;;) {
            await new Promise((r) => setTimeout(r, 100));
            const f = srv.tcp.flows().find((x) => x.guest.endsWith(':8080'));
            if (f) {
              samples++;
              worst = Math.max(worst, f.queued - Math.max(f.sndWnd, 65536));
            }
            if (accepted !== last) { last = accepted; stableSince = Date.now(); }
            if (f && !f.reading && f.sndWnd === 0 && Date.now() - stableSince >= 1500) break;
            assert.ok(Date.now() - t0 < 30_000, `no plateau: accepted ${accepted}, flow ${JSON.stringify(f)}`);
          }
          await waitFor(() => ctr(srv, 'tcp_zero_window_probe') > probes0, 'a zero-window probe', 10_000);
          const f = srv.tcp.flows().find((x) => x.guest.endsWith(':8080'))!;
          t.diagnostic(`plateau: host accepted ${accepted} of ${TOTAL}; flow ${JSON.stringify(f)}; worst queued - max(window, 64 KiB) = ${worst} over ${samples} samples`);
          assert.ok(accepted < TOTAL, 'the host writer is held back: its socket stopped accepting');
          assert.equal(f.sndWnd, 0, 'the guest advertises a zero window');
          assert.equal(f.reading, false, 'the host socket is paused');
          assert.ok(ctr(srv, 'tcp_host_paused') > paused0, 'pausing was counted');
          assert.ok(f.queued <= 65536 + READ_CHUNK, `queued ${f.queued} stays within 64 KiB + one read at zero window`);
          assert.ok(worst <= READ_CHUNK, `the flow never held more than its window (or 64 KiB) + one read: worst excess ${worst}`);
          const zeroWin = srv.obs.records.slice(from).filter((r) => r.dir === 'rx' && r.guestPort === 8080 && r.window === 0);
          assert.ok(zeroWin.length > 0, 'the guest sent zero-window ACKs on the wire');
          const probes = srv.obs.records.slice(from).filter((r) => r.dir === 'tx' && r.guestPort === 8080 && r.payload === 0 && (r.flags & (SYN | FIN)) === 0);
          assert.ok(probes.length > 0);
          // Now the guest reads: everything arrives, intact.
          lazy.stdin!.write('go\n');
          await replied;
          assert.equal(reply.trim(), `sha256 ${detSha(seed, TOTAL)} ${TOTAL}`, 'the guest got every byte, in order');
          t.diagnostic(`zero-window probes: ${ctr(srv, 'tcp_zero_window_probe') - probes0}`);
        } finally {
          c.destroy();
          fwd.close();
          lazy.kill();
        }
      });

      await t.test('4a. a superframe to the guest dropped by nftables in the guest: retransmitted, stream intact', { skip: nftMissing() ?? false }, async () => {
        const lossEnds = new HostEnds();
        const lp = await lossEnds.listen();
        const nft = (args: string[], input?: string) => {
          const r = spawnSync('nsenter', ['-t', String(container.pid), '-U', '-n', '--preserve-credentials', 'nft', ...args],
            { encoding: 'utf8', input });
          if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
          return r.stdout;
        };
        // Drop exactly one large frame from the host server: let ~200 KB of superframes pass,
        // then drop the next one (the second quota allows one frame), never again.
        nft(['-f', '-'], `table ip gsotest {
          chain pre {
            type filter hook prerouting priority -300; policy accept;
            ip saddr 10.0.2.2 tcp sport ${lp.down} meta length > 30000 quota over 200000 bytes quota until 70000 bytes counter drop
          }
        }\n`);
        const rtx0 = ctr(srv, 'tcp_retransmits') + ctr(srv, 'tcp_fast_retransmits');
        try {
          const from = srv.obs.records.length;
          const tr: Transfer[] = [{ id: 'nft-down', kind: 'down', port: lp.down, seed: 201, bulk: 4 * MB }];
          lossEnds.downSpecs.set('nft-down', tr[0]!);
          const res = await guestRun(container, clientJs, tr);
          const flows = checkTransfers(tr, res, lossEnds, srv, from);
          const ruleset = nft(['list', 'table', 'ip', 'gsotest']);
          const m = /counter packets (\d+) bytes (\d+)/.exec(ruleset);
          t.diagnostic(`nft: ${m?.[0]}; tapswitch retransmits+fast +${ctr(srv, 'tcp_retransmits') + ctr(srv, 'tcp_fast_retransmits') - rtx0}, fast ${ctr(srv, 'tcp_fast_retransmits')}, rto ${ctr(srv, 'tcp_rto_timeouts')}`);
          assert.equal(Number(m?.[1]), 1, 'the rule dropped exactly one frame');
          assert.ok(Number(m?.[2]) > 30000, 'and it was a superframe');
          assert.ok(ctr(srv, 'tcp_retransmits') + ctr(srv, 'tcp_fast_retransmits') > rtx0, 'tapswitch retransmitted (RTO or fast retransmit)');
          const s = streamOf(flows.get('nft-down')!, 'tx');
          assert.ok(s.resent.length > 0, 'a retransmission crossed the TAP');
          checkFraming(flows.get('nft-down')!, mss, 'nft-down');
        } finally {
          nft(['delete', 'table', 'ip', 'gsotest']);
          lossEnds.close();
        }
      });

      await t.test('4b. the tail of a superframe to the guest is lost: retransmitted from mid-superframe, stream intact', async () => {
        const lossEnds = new HostEnds();
        const lp = await lossEnds.listen();
        let seen = 0;
        srv.obs.txFault = (r) => {
          if (r.remotePort !== lp.down || r.payload < 10 * mss || (r.flags & FIN)) return 'pass';
          if (++seen !== 6) return 'pass';
          srv.obs.txFault = null;
          return { keep: Math.floor(Math.ceil(r.payload / mss) / 2) * mss };
        };
        const rtx0 = ctr(srv, 'tcp_retransmits') + ctr(srv, 'tcp_fast_retransmits');
        const faults0 = srv.obs.faults.length;
        try {
          const from = srv.obs.records.length;
          const tr: Transfer[] = [{ id: 'cut-down', kind: 'down', port: lp.down, seed: 202, bulk: 4 * MB }];
          lossEnds.downSpecs.set('cut-down', tr[0]!);
          const res = await guestRun(container, clientJs, tr);
          const flows = checkTransfers(tr, res, lossEnds, srv, from);
          const cut = srv.obs.faults.slice(faults0).filter((r) => r.fault === 'cut');
          assert.equal(cut.length, 1, 'one superframe lost its tail');
          const c = cut[0]!;
          const tailSeq = (c.seq + c.payload) >>> 0;
          const rtx = srv.obs.records.filter((r) => r.dir === 'tx' && r.n > c.n && r.seq === tailSeq && r.payload > 0);
          t.diagnostic(`cut: kept ${c.payload}; tail resent as ${rtx.map((r) => r.payload).join(', ')}; retransmits+fast +${ctr(srv, 'tcp_retransmits') + ctr(srv, 'tcp_fast_retransmits') - rtx0} (fast ${ctr(srv, 'tcp_fast_retransmits')}, rto ${ctr(srv, 'tcp_rto_timeouts')})`);
          assert.ok(rtx.length > 0, 'a frame starting exactly at the lost tail was sent');
          assert.ok(ctr(srv, 'tcp_retransmits') + ctr(srv, 'tcp_fast_retransmits') > rtx0, 'tapswitch counted the retransmission');
          checkFraming(flows.get('cut-down')!, mss, 'cut-down');
        } finally {
          srv.obs.txFault = null;
          lossEnds.close();
        }
      });

      // The guest's losses are placed at the start of a last 64 KiB write made after the connection
      // went idle: the loss is then the guest's last superframe (plus a short FIN segment behind it),
      // so its kernel recovers in one RTO. A loss in the middle of a long burst is recovered too,
      // but tapswitch discards out-of-order guest data and offers no SACK, so the kernel's recovery
      // (NewReno, then F-RTO's new data discarded again) can take several RTOs with backoff, up to
      // ~55 s measured: too long and too variable for this file (see the report of issue 4).
      for (const [name, fault] of [['drop', 'drop'], ['cut', 'cut']] as const) {
        await t.test(`4${name === 'drop' ? 'c' : 'd'}. the guest's last superframe ${name === 'drop' ? 'is lost' : 'loses its tail'}: its kernel retransmits, the host gets every byte`, async () => {
          const lossEnds = new HostEnds();
          const lp = await lossEnds.listen();
          const ns1 = guestNetstat(container.pid);
          const id = `loss-up-${name}`;
          const BULK = 2 * MB;
          const at = id.length + 1 + BULK; // stream offset of the tail write's first byte
          let isn: number | null = null;
          srv.obs.rxFault = (r) => {
            if (r.remotePort !== lp.up) return 'pass';
            if (r.flags & SYN) { isn = r.seq; return 'pass'; }
            if (isn === null || ((r.seq - isn - 1) >>> 0) !== at || r.payload < 10 * mss) return 'pass';
            srv.obs.rxFault = null;
            return fault === 'drop' ? 'drop' : { keep: Math.floor(Math.ceil(r.payload / mss) / 2) * mss };
          };
          const faults0 = srv.obs.faults.length;
          try {
            const from = srv.obs.records.length;
            const tr: Transfer[] = [{ id, kind: 'up', port: lp.up, seed: 203, bulk: BULK, tail: [65536] }];
            const res = await guestRun(container, clientJs, tr);
            const flows = checkTransfers(tr, res, lossEnds, srv, from);
            const faults = srv.obs.faults.slice(faults0);
            assert.equal(faults.length, 1, `the loss was injected once (the guest sent its last 64 KiB as a superframe): ${JSON.stringify(faults)}`);
            const f = faults[0]!;
            assert.equal(f.fault, fault);
            const resendAt = fault === 'drop' ? f.seq : (f.seq + f.payload) >>> 0;
            const resent = srv.obs.records.filter((r) => r.dir === 'rx' && r.n > f.n && r.seq === resendAt && r.payload > 0);
            const d = netstatDelta(ns1, guestNetstat(container.pid), 'Tcp');
            const x = netstatDelta(ns1, guestNetstat(container.pid), 'TcpExt');
            t.diagnostic(`${name}: ${fault === 'drop' ? `dropped ${f.payload} B` : `kept ${f.payload} B`}; resent from there as ${resent.map((r) => r.payload).join(',')}; guest RetransSegs +${d.RetransSegs}, TCPTimeouts +${x.TCPTimeouts}, TCPLossProbes +${x.TCPLossProbes}, TCPRenoRecovery +${x.TCPRenoRecovery}; tapswitch ooo dropped ${ctr(srv, 'tcp_ooo_dropped')}`);
            assert.ok(resent.length > 0, `the guest resent from exactly the first lost byte (seq ${resendAt})`);
            assert.ok((d.RetransSegs ?? 0) > 0, 'the guest kernel counted retransmissions');
            assert.equal(d.InCsumErrors ?? 0, 0);
            checkFraming(flows.get(id)!, mss, id);
          } finally {
            srv.obs.rxFault = null;
            lossEnds.close();
          }
        });
      }

      assert.equal(ctr(srv, 'tcp_internal_error'), 0);
      assert.deepEqual(srv.problems, []);
      assert.deepEqual(ends.errors, []);
    } finally {
      srv.close();
      ends.close();
    }
  });

  test('MTU 65520: large segments both ways with no GSO at all; boundaries exact', { skip: skip ?? false, timeout: 90_000 }, async (t) => {
    const cfg = testConfig({ mtu: 65520 });
    const mss = cfg.mtu - 40;
    const container = await startContainer();
    const srv = await serveObserved(container.pid, cfg);
    const ends = new HostEnds();
    const ports = await ends.listen();
    try {
      const ns0 = guestNetstat(container.pid);
      const tr: Transfer[] = [
        { id: 'j-bulk-down', kind: 'down', port: ports.down, seed: 301, bulk: 16 * MB },
        { id: 'j-bulk-up', kind: 'up', port: ports.up, seed: 302, bulk: 16 * MB },
      ];
      const bt = boundaryTransfers(mss, ports, 'b65520');
      for (const x of [...tr, ...bt]) if (x.kind === 'down') ends.downSpecs.set(x.id, x);
      const from = srv.obs.records.length;
      const res = await guestRun(container, clientJs, tr, true);
      const flows = checkTransfers(tr, res, ends, srv, from);
      const from2 = srv.obs.records.length;
      const res2 = await guestRun(container, clientJs, bt);
      const flows2 = checkTransfers(bt, res2, ends, srv, from2);
      for (const [id, recs] of [...flows, ...flows2]) checkFraming(recs, mss, id);
      const all = srv.obs.records.slice(from).filter((r) => r.payload > 0);
      assert.equal(all.filter((r) => r.gsoType !== 0).length, 0, 'no GSO frame in either direction at MTU 65520');
      const maxRx = Math.max(...dataFrames(flows.get('j-bulk-up')!, 'rx').map((r) => r.payload));
      const maxTx = Math.max(...dataFrames(flows.get('j-bulk-down')!, 'tx').map((r) => r.payload));
      t.diagnostic(`largest frames: guest -> us ${maxRx}, us -> guest ${maxTx} (MSS ${mss})`);
      assert.equal(maxTx, mss, 'we send full-MSS segments');
      assert.ok(maxRx > 32768, `the guest sends large segments (${maxRx})`);
      const ns = netstatDelta(ns0, guestNetstat(container.pid), 'Tcp');
      t.diagnostic(`guest Tcp delta: ${JSON.stringify(ns)}`);
      assert.equal(ns.InCsumErrors ?? 0, 0);
      assert.equal(ns.RetransSegs ?? 0, 0);
      assert.equal(ctr(srv, 'tcp_internal_error'), 0);
      assert.deepEqual(srv.problems, []);
      assert.deepEqual(ends.errors, []);
    } finally {
      srv.close();
      ends.close();
    }
  });
}
