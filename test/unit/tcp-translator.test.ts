// TcpTranslator against scripted guest segments over a MemoryDevice, with real loopback servers
// (net.createServer on 127.0.0.1) as the host side: the gateway 10.0.2.2 maps to 127.0.0.1. The
// scripted guest, frame builders and harness are in test/helpers/tcp-guest.ts (shared with the
// IPv6 tests in tcp6-translator.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { checksum, fold, pseudoHeaderSum4 } from '../../src/wire/checksum';
import { EthernetView } from '../../src/wire/ethernet';
import { Ipv4View } from '../../src/wire/ipv4';
import { TimerWheel, type WheelEntry } from '../../src/translate/tcp-timers';
import { FlowTable, type FlowEntry } from '../../src/translate/flow-table';
import {
  DNS, F, GATEWAY, GUEST, GUEST_MAC, GW_MAC, Guest, Harness, config, freePort, handshake, listen,
  parseSynAckOptions, sha, sleep, synOptions, tcpFrame, waitFor, type Server,
} from '../helpers/tcp-guest';

// ------------------------------------------------------------------------------------------------

test('handshake: SYN -> host connect -> SYN-ACK with MSS and window scale, correct ack', async () => {
  let accepted = 0;
  const srv = await listen(() => accepted++);
  const h = new Harness();
  try {
    const g = new Guest(h, srv.port);
    g.syn();
    await waitFor(() => g.established, 'SYN-ACK');
    const sa = g.synAck!;
    assert.equal(accepted, 1, 'host connected before SYN-ACK');
    assert.equal(sa.flags, F.SYN | F.ACK);
    assert.equal(sa.ack, (g.isn + 1) >>> 0);
    assert.equal(sa.src, GATEWAY);
    assert.equal(sa.dst, GUEST);
    assert.equal(sa.sport, srv.port);
    assert.equal(sa.dport, g.sport);
    assert.deepEqual(sa.ethDst, GUEST_MAC);
    assert.deepEqual(sa.ethSrc, GW_MAC);
    assert.ok(sa.ipOk, 'IPv4 header checksum');
    assert.ok(sa.df, 'DF set');
    const o = parseSynAckOptions(sa.options);
    assert.equal(o.mss, 1460);
    assert.ok(o.ws >= 7, `window scale ${o.ws}`);
    assert.deepEqual(o.other, [], 'no SACK, no timestamps');
    assert.equal(sa.vnetFlags, 1, 'NEEDS_CSUM');
    assert.equal(sa.gsoType, 0);
    assert.equal(sa.csumStart, 34);
    assert.equal(sa.csumOffset, 16);
    assert.equal(sa.csumField, fold(pseudoHeaderSum4(GATEWAY, GUEST, 6, sa.ipTotal - 20)));
    assert.equal(h.tcp.flowCount, 1);
    await waitFor(() => h.tcp.flows()[0]?.state === 'ESTABLISHED', 'established');
    // A retransmitted SYN after the handshake is answered with a challenge ACK, not a new flow.
    g.h.inject(tcpFrame({ sport: g.sport, dport: srv.port, seq: g.isn, flags: F.SYN, options: synOptions() }));
    assert.equal(h.tcp.flowCount, 1);
  } finally {
    h.close();
    await srv.close();
  }
});

test('handshake without window scaling offered: no WS option, window <= 65535', async () => {
  const srv = await listen();
  const h = new Harness();
  try {
    const g = new Guest(h, srv.port);
    g.ourShift = 0;
    g.syn(synOptions(1400, -1));
    await waitFor(() => g.established, 'SYN-ACK');
    const o = parseSynAckOptions(g.synAck!.options);
    assert.equal(o.ws, -1);
    assert.equal(h.tcp.flows()[0]!.mss, 1400);
  } finally {
    h.close();
    await srv.close();
  }
});

test('retransmitted SYN while connecting is ignored; SYN-ACK is re-sent once connected', async () => {
  let release: (() => void) | null = null;
  const srv = await listen();
  // Delay the connect: the translator's connect hook holds it back until released.
  const h = new Harness(config(), {
    connect: (o) => {
      const s = new net.Socket();
      release = () => s.connect({ host: o.host!, port: o.port });
      return s;
    },
  });
  try {
    const g = new Guest(h, srv.port);
    g.ackSynAck = false;
    g.syn();
    g.syn();
    g.syn();
    assert.equal(h.tcp.flowCount, 1);
    assert.equal(h.out.length, 0, 'nothing sent before the host answers');
    assert.equal(h.counters.tcp_syn_retransmit_ignored, 2);
    release!();
    await waitFor(() => g.established, 'SYN-ACK');
    // Guest lost our SYN-ACK: it retransmits its SYN (same ISN) and gets another one.
    h.inject(tcpFrame({ sport: g.sport, dport: srv.port, seq: g.isn, flags: F.SYN, options: synOptions() }));
    await waitFor(() => h.framesTo(g.sport).filter((s) => s.flags === (F.SYN | F.ACK)).length === 2, 'second SYN-ACK');
    assert.equal(h.tcp.flows()[0]!.state, 'SYNACK_SENT');
    g.ack();
    await waitFor(() => h.tcp.flows()[0]?.state === 'ESTABLISHED', 'established');
  } finally {
    h.close();
    await srv.close();
  }
});

test('refused port -> RST,ACK acking the SYN; flow forgotten', async () => {
  const port = await freePort();
  const h = new Harness();
  try {
    const g = new Guest(h, port);
    g.syn();
    await waitFor(() => g.rst !== null, 'RST');
    const r = g.rst!;
    assert.equal(r.flags, F.RST | F.ACK);
    assert.equal(r.ack, (g.isn + 1) >>> 0);
    assert.equal(r.seq, 0);
    assert.equal(r.win, 0);
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_connect_refused, 1);
  } finally {
    h.close();
  }
});

test('unreachable mapping (gateway with host loopback disabled) -> ICMP net unreachable quoting the SYN', async () => {
  const h = new Harness(config({ hostLoopback: false }));
  try {
    const syn = tcpFrame({ sport: 41000, dport: 80, seq: 12345, flags: F.SYN, options: synOptions() });
    h.inject(syn);
    assert.equal(h.out.length, 1);
    const m = h.out[0]!;
    assert.equal(m.proto, 1);
    assert.equal(m.icmpType, 3);
    assert.equal(m.icmpCode, 0);
    assert.ok(m.ipOk);
    assert.equal(checksum(m.raw, 44, m.ipTotal - 20), 0, 'ICMP checksum');
    assert.deepEqual(m.icmpQuote, syn.slice(24, 24 + 28), 'quotes IP header + 8 bytes');
    assert.equal(h.tcp.flowCount, 0);
  } finally {
    h.close();
  }
});

test('connect timeout -> ICMP host unreachable', async () => {
  const h = new Harness(config(), { connectTimeoutMs: 100, tickMs: 10, connect: () => new net.Socket() });
  try {
    h.inject(tcpFrame({ sport: 41001, dport: 9, seq: 1, flags: F.SYN, options: synOptions() }));
    await waitFor(() => h.out.length > 0, 'ICMP', 2000);
    assert.equal(h.out[0]!.icmpType, 3);
    assert.equal(h.out[0]!.icmpCode, 1);
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_connect_timeout, 1);
  } finally {
    h.close();
  }
});

test('data both ways: 2 MB each direction, SHA-256 verified, slots released', async () => {
  const up = randomBytes(2 << 20);
  const down = randomBytes(2 << 20);
  let serverGot = '';
  let serverBytes = 0;
  const srv = await listen((s) => {
    const hh = createHash('sha256');
    s.on('data', (b) => { hh.update(b); serverBytes += b.length; });
    s.on('end', () => { serverGot = hh.digest('hex'); s.end(); });
    s.write(down);
  });
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port);
    g.write(up);
    g.end();
    await waitFor(() => serverGot !== '' && g.finReceived && g.finAcked, 'transfer', 20000);
    assert.equal(serverBytes, up.length);
    assert.equal(serverGot, sha(up));
    assert.equal(g.recvBytes, down.length);
    assert.equal(sha(g.received()), sha(down));
    await waitFor(() => h.tcp.flows().every((f) => f.state === 'LINGER') || h.tcp.flowCount === 0, 'linger');
    await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
    assert.equal(h.counters.tcp_internal_error ?? 0, 0);
    assert.equal(h.counters.tcp_ooo_dropped ?? 0, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('data both ways without offloads: MSS segments with full checksums', async () => {
  const down = randomBytes(300_000);
  const up = randomBytes(100_000);
  let got = Buffer.alloc(0);
  const srv = await listen((s) => {
    s.on('data', (b) => { got = Buffer.concat([got, b]); });
    s.end(down);
  });
  const h = new Harness(config(), {}, false);
  try {
    const g = new Guest(h, srv.port);
    g.segSize = 1460;
    await handshake(h, srv.port, g);
    g.write(up);
    await waitFor(() => g.finReceived && got.length === up.length, 'transfer', 10000);
    assert.equal(sha(g.received()), sha(down));
    assert.equal(sha(got), sha(up));
    for (const s of h.framesTo(g.sport)) {
      assert.ok(s.payload.length <= 1460, 'segment <= MSS');
      assert.equal(s.vnetFlags, 0);
      assert.equal(s.gsoType, 0);
      assert.equal(checksum(s.raw, 44, s.ipTotal - 20, pseudoHeaderSum4(s.src, s.dst, 6, s.ipTotal - 20)), 0,
        'full TCP checksum verifies');
    }
  } finally {
    h.close();
    await srv.close();
  }
});

test('superframes: 200 KB host send -> frames <= 64 KiB payload, GSO fields and pseudo seed right, within the window', async () => {
  const down = randomBytes(200_000);
  const srv = await listen((s) => s.write(down));
  const h = new Harness();
  try {
    const g = new Guest(h, srv.port);
    g.rcvWnd = 150_000; // less than the transfer: the window must be respected
    await handshake(h, srv.port, g);
    await waitFor(() => g.recvBytes === down.length, 'data', 10000);
    assert.equal(sha(g.received()), sha(down));
    const data = h.framesTo(g.sport).filter((s) => s.payload.length > 0);
    assert.ok(data.length >= 4, `${data.length} frames`);
    // Replay the guest's view: each frame must fit in the last window the guest advertised.
    let lastId = -1;
    for (const s of data) {
      assert.ok(s.payload.length <= 65535 - 40, 'payload fits one IPv4 packet');
      assert.ok(s.ipTotal <= 65535);
      assert.equal(s.vnetFlags, 1, 'NEEDS_CSUM');
      if (s.payload.length > 1460) {
        assert.equal(s.gsoType, 1, 'GSO TCPV4');
        assert.equal(s.gsoSize, 1460, 'gso_size = guest MSS');
      } else {
        assert.equal(s.gsoType, 0);
      }
      assert.equal(s.hdrLen, 54);
      assert.equal(s.csumStart, 34);
      assert.equal(s.csumOffset, 16);
      assert.equal(s.csumField, fold(pseudoHeaderSum4(s.src, s.dst, 6, s.ipTotal - 20)), 'folded pseudo-header sum');
      assert.ok(s.ipOk);
      assert.ok(s.df);
      assert.ok(s.ipId !== lastId, 'identification changes');
      lastId = s.ipId;
    }
    // Window: no byte beyond (highest ack the guest sent) + 150000 at any time. The guest ACKs
    // everything at once, so sequence span of all data <= total; check every frame's end against
    // the ack it could have seen: frames are in order; the cumulative ack never lags more than the window.
    const base = (g.synAck!.seq + 1) >>> 0;
    let maxEnd = 0;
    for (const s of data) maxEnd = Math.max(maxEnd, ((s.seq - base) >>> 0) + s.payload.length);
    assert.equal(maxEnd, down.length);
  } finally {
    h.close();
    await srv.close();
  }
});

test('window respected exactly: a guest that never ACKs gets at most its window; socket pauses; ACK resumes', async () => {
  const down = randomBytes(1 << 20);
  let serverSock: net.Socket | null = null;
  const srv = await listen((s) => { serverSock = s; s.write(down); });
  const h = new Harness();
  try {
    const g = new Guest(h, srv.port);
    g.ourShift = 0;
    g.rcvWnd = 32768;
    g.autoAck = false;
    g.syn(synOptions(1460, -1));
    await waitFor(() => g.established, 'SYN-ACK');
    await waitFor(() => g.recvBytes >= 32768, 'first window');
    await sleep(100);
    assert.equal(g.recvBytes, 32768, 'nothing beyond the window');
    const info = h.tcp.flows()[0]!;
    assert.equal(info.reading, false, 'host socket paused');
    assert.ok(info.queued <= 65536 + 65536, `queued ${info.queued} bounded`);
    assert.ok(serverSock !== null);
    // ACK: the window opens, reading resumes, everything arrives.
    g.autoAck = true;
    g.ack();
    await waitFor(() => g.recvBytes === down.length, 'rest of the data', 10000);
    assert.equal(sha(g.received()), sha(down));
    assert.ok((h.counters.tcp_host_paused ?? 0) >= 1);
  } finally {
    h.close();
    await srv.close();
  }
});

test('zero window: persist probes, then data resumes when the window opens', async () => {
  const down = randomBytes(100_000);
  const srv = await listen((s) => s.write(down));
  const h = new Harness(config(), { minRtoMs: 20, initialRtoMs: 40, tickMs: 5 });
  try {
    const g = new Guest(h, srv.port);
    g.rcvWnd = 0;
    g.syn(synOptions(1460, -1));
    g.ourShift = 0;
    await waitFor(() => g.established, 'SYN-ACK');
    await waitFor(() => (h.counters.tcp_zero_window_probe ?? 0) >= 2, 'probes', 3000);
    assert.equal(g.recvBytes, 0);
    g.rcvWnd = 65535;
    g.ack();
    await waitFor(() => g.recvBytes === down.length, 'data', 5000);
  } finally {
    h.close();
    await srv.close();
  }
});

test('RTO: an unacknowledged superframe tail is retransmitted, with backoff, then delivered', async () => {
  const down = randomBytes(60_000);
  const srv = await listen((s) => s.write(down));
  const h = new Harness(config(), { minRtoMs: 30, initialRtoMs: 30, tickMs: 5 });
  try {
    const g = new Guest(h, srv.port);
    g.autoAck = false;
    await handshake(h, srv.port, g);
    await waitFor(() => h.framesTo(g.sport).some((s) => s.payload.length > 0), 'first superframe');
    const first = h.framesTo(g.sport).find((s) => s.payload.length > 0)!;
    assert.equal(first.payload.length, 60_000);
    // The guest takes only the first 20000 bytes (as if the rest were lost) and ACKs them.
    const base = (g.synAck!.seq + 1) >>> 0;
    assert.equal(first.seq, base);
    const cut = (base + 20000) >>> 0;
    g.send(F.ACK, undefined, g.sndNxt, cut);
    const t0 = Date.now();
    await waitFor(() => h.framesTo(g.sport).some((s) => s.seq === cut && s.payload.length > 0), 'retransmission', 3000);
    const rtx = h.framesTo(g.sport).find((s) => s.seq === cut && s.payload.length > 0)!;
    assert.equal(rtx.payload.length, 40_000, 'the tail, from sndUna');
    assert.deepEqual(Buffer.from(rtx.payload), down.subarray(20000));
    assert.ok(Date.now() - t0 >= 20);
    // Not acked again: a second retransmission comes later (backoff).
    await waitFor(() => h.framesTo(g.sport).filter((s) => s.seq === cut && s.payload.length > 0).length >= 2, 'backoff retransmission', 3000);
    assert.ok((h.counters.tcp_rto_timeouts ?? 0) >= 2);
    const rto = h.tcp.flows()[0]!.rto;
    assert.ok(rto >= 60, `rto backed off: ${rto}`);
    // Now ACK everything.
    g.send(F.ACK, undefined, g.sndNxt, (base + 60000) >>> 0);
    await sleep(100);
    const f = h.tcp.flows()[0]!;
    assert.equal(f.inFlight, 0);
    assert.equal(f.retransmits, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('fast retransmit on three duplicate ACKs', async () => {
  const srv = await listen();
  const h = new Harness(config(), { minRtoMs: 5000, initialRtoMs: 5000 });
  try {
    const g = await handshake(h, srv.port);
    g.autoAck = false;
    const c = srv.conns[0]!;
    c.write(randomBytes(30_000));
    await waitFor(() => h.framesTo(g.sport).some((s) => s.payload.length > 0), 'data');
    const n0 = h.framesTo(g.sport).filter((s) => s.payload.length > 0).length;
    const base = (g.synAck!.seq + 1) >>> 0;
    for (let i = 0; i < 3; i++) g.send(F.ACK, undefined, g.sndNxt, base); // duplicate ACKs
    await waitFor(() => (h.counters.tcp_fast_retransmits ?? 0) === 1, 'fast retransmit');
    const frames = h.framesTo(g.sport).filter((s) => s.payload.length > 0);
    assert.equal(frames.length, n0 + 1);
    assert.equal(frames[frames.length - 1]!.seq, (g.synAck!.seq + 1) >>> 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('give up after too many retransmissions: RST both ways', async () => {
  let hostClosed = false;
  const srv = await listen((s) => { s.write('hello'); s.on('close', () => { hostClosed = true; }); });
  const h = new Harness(config(), { minRtoMs: 5, initialRtoMs: 5, maxRtoMs: 10, maxRetransmits: 3, tickMs: 2 });
  try {
    const g = new Guest(h, srv.port);
    g.autoAck = false;
    g.syn();
    await waitFor(() => g.established, 'SYN-ACK');
    await waitFor(() => g.rst !== null, 'RST to guest', 3000);
    await waitFor(() => hostClosed, 'host socket closed');
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_give_up, 1);
  } finally {
    h.close();
    await srv.close();
  }
});

test('FIN: guest half-closes first; host still sends; then host FIN; both acked -> flow finishes', async () => {
  let hostSawEnd = false;
  const srv = await listen((s) => {
    let got = '';
    s.on('data', (b) => { got += b.toString(); });
    s.on('end', () => { hostSawEnd = true; s.write(`got:${got}`); s.end(); });
  });
  const h = new Harness(config(), { lingerMs: 50, tickMs: 10 });
  try {
    const g = await handshake(h, srv.port);
    g.write(Buffer.from('request'));
    g.end();
    await waitFor(() => hostSawEnd, 'host end');
    await waitFor(() => g.finReceived, 'FIN to guest');
    assert.equal(g.received().toString(), 'got:request');
    // Our FIN came after the data, in order.
    const fin = h.framesTo(g.sport).find((s) => s.flags & F.FIN)!;
    assert.equal((fin.seq + fin.payload.length) >>> 0, (g.rcvNxt - 1) >>> 0);
    await waitFor(() => g.finAcked, 'guest FIN acked');
    await waitFor(() => h.tcp.flowCount === 0, 'flow forgotten after linger', 3000);
    assert.equal(h.counters.tcp_flows_finished, 1);
  } finally {
    h.close();
    await srv.close();
  }
});

test('FIN: host half-closes first; guest keeps sending; then guest FIN', async () => {
  let hostGot = '';
  let hostEnded = false;
  const srv = await listen((s) => {
    s.end('bye');
    s.on('data', (b) => { hostGot += b.toString(); });
    s.on('end', () => { hostEnded = true; });
  });
  const h = new Harness(config(), { lingerMs: 50, tickMs: 10 });
  try {
    const g = await handshake(h, srv.port);
    await waitFor(() => g.finReceived, 'host FIN');
    assert.equal(g.received().toString(), 'bye');
    g.write(Buffer.from('still talking'));
    await waitFor(() => hostGot === 'still talking', 'data after host FIN');
    g.end();
    await waitFor(() => hostEnded && g.finAcked, 'guest FIN');
    await waitFor(() => h.tcp.flowCount === 0, 'flow forgotten', 3000);
    // A retransmitted FIN during linger would be re-ACKed; after it, the tuple is unknown -> RST.
  } finally {
    h.close();
    await srv.close();
  }
});

test('RST from guest -> host socket reset, flow forgotten', async () => {
  let hostErr = '';
  let closed = false;
  const srv = await listen((s) => { s.on('error', (e: NodeJS.ErrnoException) => { hostErr = e.code ?? ''; }); s.on('close', () => { closed = true; }); });
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port);
    await waitFor(() => srv.conns.length === 1, 'accepted');
    // An inexact RST in the window is challenged, not obeyed (RFC 5961).
    g.send(F.RST, undefined, (g.sndNxt + 10) >>> 0, 0);
    assert.equal(h.tcp.flowCount, 1);
    assert.equal(h.counters.tcp_challenge_ack, 1);
    g.send(F.RST | F.ACK);
    assert.equal(h.tcp.flowCount, 0);
    await waitFor(() => closed, 'host closed');
    assert.equal(hostErr, 'ECONNRESET');
  } finally {
    h.close();
    await srv.close();
  }
});

test('guest FIN then guest RST: the half-closed host socket is really closed (no leaked handle)', async () => {
  let host: net.Socket | null = null;
  let hostClosed = false;
  const srv = await listen();
  const h = new Harness(config(), { connect: (o) => { host = net.connect(o); host.on('close', () => { hostClosed = true; }); return host; } });
  try {
    const g = await handshake(h, srv.port);
    g.end();
    await waitFor(() => srv.conns.length === 1 && host!.writableEnded, 'half-closed');
    g.send(F.RST | F.ACK);
    assert.equal(h.tcp.flowCount, 0);
    await waitFor(() => hostClosed, 'translator socket closed');
    assert.equal(host!.destroyed, true);
  } finally {
    h.close();
    await srv.close();
  }
});

test('a frame without a receive slot (slot -1, reused buffer) is copied, never written zero-copy', async () => {
  let got = Buffer.alloc(0);
  const srv = await listen((s) => s.on('data', (b) => { got = Buffer.concat([got, b]); }));
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port);
    const payload = randomBytes(10000);
    const f = tcpFrame({ sport: g.sport, dport: srv.port, seq: g.sndNxt, ack: g.rcvNxt, flags: F.ACK | F.PSH, payload });
    const buf = Uint8Array.from(f);
    const eth = new EthernetView();
    const ip = new Ipv4View();
    assert.ok(eth.bind(buf, 10, buf.length - 10) && ip.bind(buf, eth.payloadOffset, eth.payloadLength));
    const noOwner = { retain: () => { throw new Error('must not retain'); }, release: () => {} };
    h.tcp.onPacket({ buf, off: 0, len: buf.length, slot: -1, owner: noOwner }, eth, ip);
    buf.fill(0); // the buffer is reused at once
    await waitFor(() => got.length === payload.length, 'data');
    assert.equal(sha(got), sha(payload));
    assert.equal(h.counters.tcp_internal_error ?? 0, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('host reset -> queued data delivered, then RST to guest', async () => {
  const srv = await listen((s) => { s.write('last words', () => setTimeout(() => s.resetAndDestroy(), 20)); });
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port);
    await waitFor(() => g.rst !== null, 'RST', 3000);
    assert.equal(g.received().toString(), 'last words');
    assert.equal(g.rst!.seq, (g.rcvNxt) >>> 0);
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_host_reset, 1);
  } finally {
    h.close();
    await srv.close();
  }
});

test('segment for an unknown flow -> RST per RFC 9293; RST for unknown is ignored', () => {
  const h = new Harness();
  try {
    // With ACK: <SEQ=SEG.ACK><CTL=RST>
    h.inject(tcpFrame({ sport: 41500, dport: 80, seq: 1000, ack: 777777, flags: F.ACK, payload: new Uint8Array(10) }));
    assert.equal(h.out.length, 1);
    let r = h.out[0]!;
    assert.equal(r.flags, F.RST);
    assert.equal(r.seq, 777777);
    assert.equal(r.sport, 80);
    assert.equal(r.dport, 41500);
    assert.equal(r.src, GATEWAY);
    assert.equal(r.dst, GUEST);
    assert.ok(r.ipOk);
    // Without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (FIN counts one)
    h.inject(tcpFrame({ sport: 41501, dport: 80, seq: 5000, flags: F.FIN, payload: new Uint8Array(7) }));
    r = h.out[1]!;
    assert.equal(r.flags, F.RST | F.ACK);
    assert.equal(r.seq, 0);
    assert.equal(r.ack, 5008);
    h.inject(tcpFrame({ sport: 41502, dport: 80, seq: 5000, flags: F.RST }));
    assert.equal(h.out.length, 2, 'no answer to a RST');
    assert.equal(h.counters.tcp_no_flow_rst, 2);
    assert.equal(h.tcp.flowCount, 0);
  } finally {
    h.close();
  }
});

test('out-of-order and old guest data: dropped, duplicate ACK, never written', async () => {
  let got = '';
  const srv = await listen((s) => s.on('data', (b) => { got += b.toString(); }));
  const h = new Harness();
  try {
    const g = await handshake(h, srv.port);
    const before = h.framesTo(g.sport).length;
    g.send(F.ACK | F.PSH, Buffer.from('later'), (g.sndNxt + 5) >>> 0); // a hole before it
    assert.equal(h.counters.tcp_ooo_dropped, 1);
    const dup = h.framesTo(g.sport)[before]!;
    assert.equal(dup.flags, F.ACK);
    assert.equal(dup.ack, g.sndNxt, 'duplicate ACK asks for the hole');
    g.send(F.ACK | F.PSH, Buffer.from('hello'));
    g.sndNxt = (g.sndNxt + 5) >>> 0;
    // A retransmission overlapping old and new bytes: only the new part is taken.
    g.send(F.ACK | F.PSH, Buffer.from('loworld'), (g.sndNxt - 2) >>> 0);
    g.sndNxt = (g.sndNxt + 5) >>> 0;
    await waitFor(() => got === 'helloworld', `host got "${got}"`);
  } finally {
    h.close();
    await srv.close();
  }
});

test('receive window: data beyond the advertised edge is trimmed', async () => {
  let got = 0;
  const srv = await listen((s) => s.on('data', (b) => { got += b.length; }));
  const h = new Harness(config(), { rcvBuf: 256 * 1024 });
  try {
    const g = await handshake(h, srv.port);
    // One byte first: its ACK advertises the full (scaled) window.
    g.write(Buffer.from('x'));
    await waitFor(() => got === 1, 'first byte');
    await sleep(5);
    // 20 superframes in one batch, ignoring the 256 KiB window: only the window's worth is taken.
    const frames: Uint8Array[] = [];
    let seq = g.sndNxt;
    for (let i = 0; i < 20; i++) {
      frames.push(tcpFrame({ sport: g.sport, dport: srv.port, seq, ack: g.rcvNxt, flags: F.ACK, payload: randomBytes(60000) }));
      seq = (seq + 60000) >>> 0;
    }
    h.inject(...frames);
    assert.equal(h.counters.tcp_out_of_window, 1, 'the frame crossing the edge is trimmed');
    assert.equal(h.counters.tcp_ooo_dropped, 15, 'frames past it are out of order');
    // Exactly the advertised window (a multiple of 2^shift = 128 bytes) was taken.
    await waitFor(() => got >= 1 + 256 * 1024 - 128, () => `host got ${got} ${JSON.stringify(h.counters)}`);
    await sleep(20);
    assert.ok(got <= 1 + 256 * 1024, `host got ${got}`);
    await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
  } finally {
    h.close();
    await srv.close();
  }
});

test('backpressure: a host socket that does not drain shrinks the window; slots bounded; drains -> window update', async () => {
  let host: net.Socket | null = null;
  const hh = createHash('sha256');
  let got = 0;
  const srv = await listen((s) => s.on('data', (b) => { hh.update(b); got += b.length; }));
  const h = new Harness(config(), {
    rcvBuf: 1 << 20,
    connect: (o) => { host = net.connect(o); return host; },
  });
  try {
    const g = await handshake(h, srv.port);
    host!.cork(); // Node holds every write: its buffer grows like a stalled socket's
    const up = randomBytes(3 << 20);
    g.write(up);
    await waitFor(() => h.tcp.flows()[0]!.pendingWrite >= (1 << 20) - 65536, 'window filled');
    await sleep(50);
    const info = h.tcp.flows()[0]!;
    assert.ok(info.pendingWrite <= 1 << 20, `pending ${info.pendingWrite} within the budget`);
    assert.ok(info.retainedSlots <= 32, `retained ${info.retainedSlots}`);
    assert.ok(h.dev.slotsInUse <= 32, `slots in use ${h.dev.slotsInUse}`);
    const shift = parseSynAckOptions(g.synAck!.options).ws;
    const lastAck = h.framesTo(g.sport).filter((s) => (s.flags & F.ACK) && s.payload.length === 0).at(-1)!;
    assert.ok((lastAck.win << shift) < 65536, `window shrank to ${lastAck.win << shift}`);
    assert.equal(h.counters.tcp_out_of_window ?? 0, 0);
    host!.uncork();
    await waitFor(() => got === up.length, 'all data', 10000);
    assert.equal(hh.digest('hex'), sha(up));
    assert.ok((h.counters.tcp_window_update ?? 0) >= 1);
    await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
  } finally {
    h.close();
    await srv.close();
  }
});

test('SYN flood to a black hole stays bounded; a legitimate flow still works', async () => {
  const srv = await listen((s) => s.end('ok'));
  const blackhole = 7; // connects to this port never complete
  const h = new Harness(config(), {
    maxConnecting: 64, maxFlows: 256,
    connect: (o) => (o.port === blackhole ? new net.Socket() : net.connect(o)),
  });
  try {
    for (let i = 0; i < 5000; i++) {
      h.inject(tcpFrame({ sport: 10000 + i, dport: blackhole, seq: i * 7919, flags: F.SYN, options: synOptions() }));
      assert.ok(h.tcp.flowCount <= 256);
      assert.ok(h.tcp.connectingCount <= 64);
    }
    assert.ok((h.counters.tcp_syn_evicted ?? 0) >= 5000 - 64);
    const g = await handshake(h, srv.port);
    await waitFor(() => g.finReceived, 'legit data');
    assert.equal(g.received().toString(), 'ok');
    // Fill the table with established flows: new SYNs beyond maxFlows are dropped and counted.
    const estab: Guest[] = [];
    for (let i = 0; i < 150; i++) {
      const gg = new Guest(h, srv.port);
      gg.syn(undefined, 100);
      estab.push(gg);
    }
    await waitFor(() => estab.every((x) => x.established), 'many flows', 10000);
    assert.ok(h.tcp.flowCount <= 256);
    for (let i = 0; i < 100; i++) {
      h.inject(tcpFrame({ sport: 20000 + i, dport: srv.port, seq: i, flags: F.SYN, options: synOptions() }));
    }
    await sleep(50);
    assert.ok(h.tcp.flowCount <= 256);
    assert.ok(estab.every((x) => x.rst === null), 'established flows never evicted');
  } finally {
    h.close();
    await srv.close();
  }
});

test('half-open SYN flood (host accepts, guest never ACKs our SYN-ACK) stays within maxConnecting; a legit flow works', async () => {
  const srv = await listen((s) => s.end('hi'));
  const h = new Harness(config(), { maxConnecting: 32, maxFlows: 128 });
  try {
    for (let i = 0; i < 600; i++) {
      h.inject(tcpFrame({ sport: 30000 + i, dport: srv.port, seq: i * 7919, flags: F.SYN, options: synOptions() }));
      if (i % 50 === 0) await sleep(2);
    }
    await sleep(100);
    assert.ok(h.tcp.flowCount <= 32, `flows ${h.tcp.flowCount}`);
    assert.ok(h.tcp.connectingCount <= 32);
    assert.ok(h.tcp.flows().some((f) => f.state === 'SYNACK_SENT'), 'half-open flows exist');
    const g = await handshake(h, srv.port);
    await waitFor(() => g.finReceived, 'legit data');
    assert.equal(g.received().toString(), 'hi');
  } finally {
    h.close();
    await srv.close();
  }
});

test('table full of established flows: new SYNs dropped and counted, nothing evicted', async () => {
  const srv = await listen();
  const h = new Harness(config(), { maxFlows: 8, maxConnecting: 8 });
  try {
    const gs: Guest[] = [];
    for (let i = 0; i < 8; i++) gs.push(await handshake(h, srv.port));
    assert.equal(h.tcp.flowCount, 8);
    const g9 = new Guest(h, srv.port);
    g9.syn();
    await sleep(20);
    assert.equal(h.counters.tcp_syn_flood_dropped, 1);
    assert.equal(g9.synAck, null);
    assert.equal(h.tcp.flowCount, 8);
    // One finishes (RST): room again.
    gs[0]!.send(F.RST | F.ACK);
    const g10 = await handshake(h, srv.port);
    assert.ok(g10.established);
  } finally {
    h.close();
    await srv.close();
  }
});

test('close(): every host socket destroyed, flows forgotten, slots released', async () => {
  const srv = await listen((s) => s.write(randomBytes(100_000)));
  const h = new Harness();
  try {
    const a = await handshake(h, srv.port);
    await handshake(h, srv.port);
    a.write(randomBytes(50_000));
    await waitFor(() => srv.conns.length === 2, 'accepted');
    h.close();
    assert.equal(h.tcp.flowCount, 0);
    await waitFor(() => h.dev.slotsInUse === 0, 'slots');
    // Further frames are ignored silently.
    a.send(F.ACK);
  } finally {
    h.close();
    await srv.close();
  }
});

test('connect errors map to what a real network says: ICMP host/net unreachable, admin prohibited, RST', async () => {
  const cases: Array<[string, number | 'rst']> = [['EHOSTUNREACH', 1], ['ENETUNREACH', 0], ['EHOSTDOWN', 1], ['EACCES', 13], ['EADDRNOTAVAIL', 'rst']];
  for (const [code, want] of cases) {
    const h = new Harness(config(), {
      connect: () => {
        const sock = new net.Socket();
        setImmediate(() => sock.destroy(Object.assign(new Error(code), { code })));
        return sock;
      },
    });
    try {
      const g = new Guest(h, 80, 0xc6336407);
      g.syn();
      await waitFor(() => h.out.length > 0, `answer to ${code}`);
      const m = h.out[0]!;
      if (want === 'rst') {
        assert.equal(m.flags, F.RST | F.ACK, code);
        assert.equal(m.src, 0xc6336407);
      } else {
        assert.equal(m.proto, 1, code);
        assert.equal(m.icmpCode, want, code);
        assert.equal(m.src, GATEWAY, 'from the gateway');
        assert.deepEqual(m.icmpQuote!.subarray(12, 20), Uint8Array.from([10, 0, 2, 100, 198, 51, 100, 7]), 'quotes the SYN');
      }
      assert.equal(h.tcp.flowCount, 0);
    } finally {
      h.close();
    }
  }
});

test('idle timeout: an established flow with no traffic is reset both ways', async () => {
  let hostClosed = false;
  const srv = await listen((s) => s.on('close', () => { hostClosed = true; }));
  const h = new Harness(config(), { idleTimeoutMs: 100, tickMs: 10 });
  try {
    const g = await handshake(h, srv.port);
    await waitFor(() => g.rst !== null, 'RST after idle', 3000);
    await waitFor(() => hostClosed, 'host socket closed');
    assert.equal(h.counters.tcp_idle_timeout, 1);
    assert.equal(h.tcp.flowCount, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('global send budget: flows over it pause; freed budget resumes the starved ones', async () => {
  const srv = await listen((s) => s.write(randomBytes(400_000)));
  const h = new Harness(config(), { globalSndBuf: 150_000 });
  try {
    const a = new Guest(h, srv.port);
    const b = new Guest(h, srv.port);
    a.autoAck = false;
    b.autoAck = false;
    await handshake(h, srv.port, a);
    await handshake(h, srv.port, b);
    await sleep(100);
    const queued = h.tcp.flows().reduce((n, f) => n + f.queued, 0);
    assert.ok(queued < 150_000 + 2 * 65536, `queued ${queued} near the global budget`);
    assert.ok(h.tcp.flows().every((f) => !f.reading), 'both paused');
    a.autoAck = true;
    b.autoAck = true;
    a.ack();
    b.ack();
    await waitFor(() => a.recvBytes === 400_000 && b.recvBytes === 400_000, 'everything delivered', 10000);
  } finally {
    h.close();
    await srv.close();
  }
});

test('linger: a retransmitted guest FIN is re-ACKed; afterwards the tuple is unknown', async () => {
  const srv = await listen((s) => s.end());
  const h = new Harness(config(), { lingerMs: 200, tickMs: 10 });
  try {
    const g = await handshake(h, srv.port);
    await waitFor(() => g.finReceived, 'host FIN');
    g.end();
    await waitFor(() => h.tcp.flows()[0]?.state === 'LINGER', 'linger');
    const n = h.framesTo(g.sport).length;
    g.send(F.FIN | F.ACK, undefined, (g.sndNxt - 1) >>> 0); // our ACK "was lost"
    const re = h.framesTo(g.sport)[n]!;
    assert.equal(re.flags, F.ACK);
    assert.equal(re.ack, g.sndNxt);
    await waitFor(() => h.tcp.flowCount === 0, 'linger over', 3000);
    g.send(F.FIN | F.ACK, undefined, (g.sndNxt - 1) >>> 0);
    assert.equal(h.framesTo(g.sport).at(-1)!.flags, F.RST);
  } finally {
    h.close();
    await srv.close();
  }
});

test('retained slots per flow are capped: beyond the cap payloads are copied', async () => {
  let host: net.Socket | null = null;
  let got = 0;
  const srv = await listen((s) => s.on('data', (b) => { got += b.length; }));
  const h = new Harness(config(), { maxRetainedSlots: 4, connect: (o) => { host = net.connect(o); return host; } });
  try {
    const g = await handshake(h, srv.port);
    host!.cork();
    g.write(randomBytes(10 * 60000));
    await waitFor(() => (h.counters.tcp_rx_copied ?? 0) >= 1, 'copies');
    assert.ok(h.tcp.flows()[0]!.retainedSlots <= 4);
    assert.ok(h.dev.slotsInUse <= 4);
    host!.uncork();
    await waitFor(() => got === 600_000, 'all data');
    await waitFor(() => h.dev.slotsInUse === 0, 'slots');
  } finally {
    h.close();
    await srv.close();
  }
});

// ------------------------------------------------------------------------------------------------
// Inbound flows (port forwarding)

/** A host listener whose accepted sockets are opened into the guest at guestPort. */
async function forward(h: Harness, guestPort: number): Promise<Server> {
  return listen((sock) => {
    const ok = h.tcp.openInbound(sock, GUEST, guestPort, GATEWAY, sock.remotePort!);
    if (!ok) sock.destroy();
  });
}

test('inbound: host client -> SYN to the guest -> SYN-ACK -> data both ways (1 MB each, SHA-256), FIN both ways', async () => {
  const h = new Harness(config(), { lingerMs: 50, tickMs: 10 });
  const fwd = await forward(h, 8080);
  const g = new Guest(h, 0, GATEWAY, 8080);
  const down = randomBytes(1 << 20);
  const up = randomBytes(1 << 20);
  try {
    const client = net.connect({ host: '127.0.0.1', port: fwd.port, allowHalfOpen: true });
    const cg = createHash('sha256');
    let cgot = 0;
    let cend = false;
    client.on('data', (b) => { cg.update(b); cgot += b.length; });
    client.on('end', () => { cend = true; });
    await waitFor(() => g.synSeen !== null, 'SYN to the guest');
    const syn = g.synSeen!;
    assert.equal(syn.flags, F.SYN);
    assert.equal(syn.src, GATEWAY, 'appears to come from the gateway');
    assert.equal(syn.dst, GUEST);
    assert.equal(syn.dport, 8080);
    assert.ok(syn.ipOk);
    const o = parseSynAckOptions(syn.options);
    assert.equal(o.mss, 1460);
    assert.equal(o.ws, 7);
    assert.deepEqual(o.other, []);
    assert.deepEqual(syn.ethDst, GUEST_MAC);
    await waitFor(() => g.established, 'handshake');
    await waitFor(() => h.tcp.flows()[0]?.state === 'ESTABLISHED', 'established');
    client.write(up);
    client.end();
    g.write(down);
    g.end();
    await waitFor(() => cend && g.finReceived && g.finAcked, 'both FINs', 10000);
    assert.equal(cgot, down.length);
    assert.equal(cg.digest('hex'), sha(down));
    assert.equal(sha(g.received()), sha(up));
    await waitFor(() => h.tcp.flowCount === 0, 'flow finished', 3000);
    assert.equal(h.counters.tcp_inbound_opened, 1);
    await waitFor(() => h.dev.slotsInUse === 0, 'slots');
  } finally {
    h.close();
    await fwd.close();
  }
});

test('inbound through a pauseOnConnect server without allowHalfOpen: the client half-closes, the guest still answers', async () => {
  const h = new Harness(config(), { lingerMs: 50, tickMs: 10 });
  const server = net.createServer({ pauseOnConnect: true }, (sock) => {
    if (!h.tcp.openInbound(sock, GUEST, 8090, GATEWAY, sock.remotePort!)) sock.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const g = new Guest(h, 0, GATEWAY, 8090);
  try {
    const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
    let answer = '';
    let ended = false;
    client.on('data', (b) => { answer += b.toString(); });
    client.on('end', () => { ended = true; });
    client.end('request');
    await waitFor(() => g.finReceived, 'client FIN reaches the guest');
    assert.equal(g.received().toString(), 'request');
    g.write(Buffer.from('response after your FIN'));
    g.end();
    await waitFor(() => ended, 'answer and FIN reach the client');
    assert.equal(answer, 'response after your FIN');
  } finally {
    h.close();
    server.close();
  }
});

test('multiQueue: an idle inbound flow refreshes its TAP queue with bare ACKs; outbound flows and single-queue do not', async () => {
  for (const multiQueue of [true, false]) {
    const h = new Harness(config(), { multiQueue, queuePinMs: 40, tickMs: 5 });
    const fwd = await forward(h, 8095);
    const srv = await listen();
    const g = new Guest(h, 0, GATEWAY, 8095);
    try {
      const client = net.connect({ host: '127.0.0.1', port: fwd.port });
      client.on('error', () => {});
      await waitFor(() => g.established, 'inbound handshake');
      const out = await handshake(h, srv.port);
      const n0 = h.framesTo(8095).length;
      const o0 = h.framesTo(out.sport).length;
      await sleep(250);
      const pins = h.framesTo(8095).slice(n0).filter((x) => x.flags === F.ACK && x.payload.length === 0);
      if (multiQueue) {
        assert.ok(pins.length >= 3, `pin ACKs: ${pins.length}`);
        assert.ok(pins.every((x) => x.ack === g.sndNxt && x.seq === g.rcvNxt), 'duplicate of the current state');
      } else {
        assert.equal(pins.length, 0);
      }
      assert.equal(h.framesTo(out.sport).length, o0, 'outbound flow stays quiet');
      client.destroy();
    } finally {
      h.close();
      await fwd.close();
      await srv.close();
    }
  }
});

test('inbound: guest refuses (RST) -> host client reset', async () => {
  const h = new Harness();
  const fwd = await forward(h, 8081);
  const g = new Guest(h, 0, GATEWAY, 8081);
  g.refuse = true;
  try {
    const client = net.connect({ host: '127.0.0.1', port: fwd.port });
    let err = '';
    let closed = false;
    client.on('error', (e: NodeJS.ErrnoException) => { err = e.code ?? ''; });
    client.on('close', () => { closed = true; });
    await waitFor(() => closed, 'client closed');
    assert.equal(err, 'ECONNRESET');
    assert.equal(h.tcp.flowCount, 0);
    assert.equal(h.counters.tcp_inbound_refused, 1);
  } finally {
    h.close();
    await fwd.close();
  }
});

test('inbound: silent guest -> SYN retransmitted with backoff, then the host client is reset', async () => {
  const h = new Harness(config(), { initialRtoMs: 20, synAckRetries: 2, tickMs: 5 });
  const fwd = await forward(h, 8082);
  const g = new Guest(h, 0, GATEWAY, 8082);
  g.silent = true;
  try {
    const client = net.connect({ host: '127.0.0.1', port: fwd.port });
    let closed = false;
    client.on('error', () => {});
    client.on('close', () => { closed = true; });
    await waitFor(() => closed, 'client reset', 3000);
    assert.equal(h.framesTo(8082).filter((s) => s.flags === F.SYN).length, 3, 'SYN + 2 retransmissions');
    assert.equal(h.tcp.flowCount, 0);
  } finally {
    h.close();
    await fwd.close();
  }
});

test('inbound: guest MAC unknown at first -> SYN waits for ARP; busy tuple refused', async () => {
  const h = new Harness(config(), { tickMs: 5 });
  let known = false;
  (h.sink as { macFor: (a: number) => Uint8Array | null }).macFor = () => (known ? GUEST_MAC : null);
  const g = new Guest(h, 0, GATEWAY, 8083);
  const srv = await listen();
  try {
    const a = net.connect({ host: '127.0.0.1', port: srv.port, allowHalfOpen: true });
    await new Promise((r) => a.once('connect', r));
    assert.equal(h.tcp.openInbound(a, GUEST, 8083, GATEWAY, 5555), true);
    assert.equal(h.tcp.openInbound(a, GUEST, 8083, GATEWAY, 5555), false, 'same tuple');
    assert.equal(h.counters.tcp_inbound_tuple_busy, 1);
    await sleep(30);
    assert.equal(h.out.length, 0, 'no SYN without a MAC');
    known = true;
    await waitFor(() => g.established, 'handshake after ARP');
  } finally {
    h.close();
    await srv.close();
  }
});

test('lossy link: 3% of frames lost each way, 1 MB each way still arrives intact', async () => {
  const up = randomBytes(1 << 20);
  const down = randomBytes(1 << 20);
  let got = Buffer.alloc(0);
  const srv = await listen((s) => {
    s.on('data', (b) => { got = Buffer.concat([got, b]); });
    s.write(down);
  });
  const h = new Harness(config(), { minRtoMs: 20, initialRtoMs: 50, tickMs: 5 });
  try {
    const g = new Guest(h, srv.port);
    g.syn(undefined, 100);
    await waitFor(() => g.established, 'handshake');
    h.lossToGuest = 0.03;
    h.lossFromGuest = 0.03;
    g.segSize = 16000;
    g.write(up);
    await waitFor(() => got.length === up.length && g.recvBytes === down.length,
      () => `host got ${got.length}, guest got ${g.recvBytes}; ${JSON.stringify(h.counters)}`, 30000);
    assert.equal(sha(got), sha(up));
    assert.equal(sha(g.received()), sha(down));
  } finally {
    h.close();
    await srv.close();
  }
});

test('churn: 150 flows ending every way (FIN either side first, RST either side, mid-transfer) leave no socket open', async () => {
  const socks: net.Socket[] = [];
  const srv = await listen((s) => {
    s.on('data', () => {});
    s.on('end', () => s.end());
    const mode = Number(s.remotePort) % 3;
    if (mode === 0) s.end(randomBytes(5000));
    else if (mode === 1) s.write(randomBytes(70000));
    else setTimeout(() => s.resetAndDestroy(), 5);
  });
  const h = new Harness(config(), { lingerMs: 30, tickMs: 5, connect: (o) => { const x = net.connect(o); socks.push(x); return x; } });
  try {
    const gs: Guest[] = [];
    for (let i = 0; i < 150; i++) { const g = new Guest(h, srv.port); g.syn(undefined, 100); gs.push(g); }
    await waitFor(() => gs.every((g) => g.established), 'all established', 10000);
    gs.forEach((g, i) => {
      switch (i % 4) {
        case 0: g.write(randomBytes(3000)); g.end(); break;          // guest FIN (after data)
        case 1: g.end(); g.send(F.RST | F.ACK, undefined, g.sndNxt); break; // FIN then RST
        case 2: g.send(F.RST | F.ACK); break;                          // RST at once
        default: g.write(randomBytes(100000)); break;                  // keep talking; host decides
      }
    });
    await sleep(300);
    // Whatever is left: the guest closes too.
    for (const g of gs) if (!g.rst) g.end();
    await waitFor(() => h.tcp.flowCount === 0, () => `flows left: ${JSON.stringify(h.tcp.flows().slice(0, 3))}`, 10000);
    await waitFor(() => socks.every((x) => x.destroyed), () => `open sockets: ${socks.filter((x) => !x.destroyed).length}`, 10000);
    await waitFor(() => h.dev.slotsInUse === 0, 'slots');
    assert.equal(h.counters.tcp_internal_error ?? 0, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('fuzz: random and mutated segments never throw, flows stay bounded, slots come back', async () => {
  const srv = await listen((s) => s.on('data', () => {}));
  const h = new Harness(config(), { maxFlows: 64, maxConnecting: 16 });
  try {
    const g = await handshake(h, srv.port);
    const valid = tcpFrame({ sport: g.sport, dport: srv.port, seq: g.sndNxt, ack: g.rcvNxt, flags: F.ACK | F.PSH, payload: randomBytes(3000) });
    const syn = tcpFrame({ sport: 50000, dport: srv.port, seq: 1, flags: F.SYN, options: synOptions() });
    fc.assert(fc.property(
      fc.oneof(
        // A valid frame with bytes flipped anywhere after the Ethernet header.
        fc.tuple(fc.constantFrom(valid, syn), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }))
          .map(([base, muts]) => { const b = Uint8Array.from(base); for (const [i, v] of muts) b[24 + (i % (b.length - 24))] = v; return b; }),
        // A well-formed IPv4 header around random TCP bytes.
        fc.uint8Array({ minLength: 0, maxLength: 200 }).map((t) => {
          const b = tcpFrame({ sport: g.sport, dport: srv.port, seq: 0, flags: 0 });
          const out = new Uint8Array(44 + t.length);
          out.set(b.subarray(0, 44));
          out.set(t, 44);
          new DataView(out.buffer).setUint16(26, 20 + t.length);
          out[34] = 0; out[35] = 0;
          new DataView(out.buffer).setUint16(34, checksum(out, 24, 20));
          return out;
        }),
        // Segments with random header fields for the live tuple.
        fc.record({
          seq: fc.nat(), ack: fc.nat(), flags: fc.integer({ min: 0, max: 255 }), win: fc.integer({ min: 0, max: 65535 }),
          len: fc.integer({ min: 0, max: 2000 }), opts: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }),
          sport: fc.constantFrom(g.sport, 50001, 50002),
        }).map((r) => tcpFrame({ sport: r.sport, dport: srv.port, seq: r.seq, ack: r.ack, flags: r.flags, win: r.win, payload: new Uint8Array(r.len), options: r.opts })),
      ),
      (frame) => {
        h.inject(frame);
        return h.tcp.flowCount <= 64 && (h.counters.tcp_internal_error ?? 0) === 0;
      },
    ), { numRuns: 3000 });
    await sleep(50);
    h.close();
    await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
    assert.equal(h.counters.tcp_internal_error ?? 0, 0);
  } finally {
    h.close();
    await srv.close();
  }
});

test('stateful fuzz: hostile segment sequences and timer jumps against live flows keep every invariant', async () => {
  const srv = await listen((s) => { s.on('data', (b) => { if (b.length % 3 === 0) s.write(b); }); s.write(randomBytes(200_000)); });
  let fake = 1_000_000;
  const cmd = fc.oneof(
    fc.record({
      k: fc.constant('seg' as const),
      dSeq: fc.oneof(fc.constant(0), fc.integer({ min: -70000, max: 70000 })),
      dAck: fc.oneof(fc.constant(0), fc.integer({ min: -70000, max: 70000 })),
      flags: fc.oneof(fc.constant(F.ACK), fc.constant(F.ACK | F.PSH), fc.constant(F.ACK | F.FIN), fc.integer({ min: 0, max: 255 })),
      win: fc.oneof(fc.constant(0), fc.constant(65535), fc.integer({ min: 0, max: 65535 })),
      len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 }), fc.constant(60000)),
    }),
    fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 5000 }) }),
    fc.record({ k: fc.constant('yield' as const) }),
  );
  await fc.assert(fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 60 }), async (cmds) => {
    const h = new Harness(config(), { manualTimers: true, now: () => fake, maxRetransmits: 4, idleTimeoutMs: 20_000, closingTimeoutMs: 5_000 });
    try {
      const g = await handshake(h, srv.port);
      g.autoAck = false;
      for (const c of cmds) {
        if (c.k === 'tick') { fake += c.ms; h.tcp.runTimers(); }
        else if (c.k === 'yield') await new Promise((r) => setImmediate(r));
        else {
          h.inject(tcpFrame({ sport: g.sport, dport: srv.port, seq: (g.sndNxt + c.dSeq) >>> 0, ack: (g.rcvNxt + c.dAck) >>> 0,
            flags: c.flags, win: c.win, payload: c.len ? new Uint8Array(c.len) : undefined }));
          if (c.dSeq === 0 && c.len && (c.flags & (F.SYN | F.RST)) === 0) g.sndNxt = (g.sndNxt + c.len) >>> 0;
        }
        assert.equal(h.counters.tcp_internal_error ?? 0, 0);
        assert.ok(h.tcp.flowCount <= 2);
        for (const f of h.tcp.flows()) {
          assert.ok(f.queued >= 0 && f.inFlight >= 0 && f.pendingWrite >= 0, JSON.stringify(f));
          assert.ok(f.queued <= (4 << 20) + 65536 * 2, `queued ${f.queued}`);
          assert.ok(f.retainedSlots <= 32);
          assert.ok(f.rto >= 200 && f.rto <= 60_000, `rto ${f.rto}`);
        }
      }
    } finally {
      h.close();
      await waitFor(() => h.dev.slotsInUse === 0, 'slots released');
    }
  }), { numRuns: 40 });
  await srv.close();
});

// ------------------------------------------------------------------------------------------------
// The data structures underneath

interface TE extends WheelEntry { id: number; fired: number[] }
function te(id: number): TE { return { id, fired: [], timerAt: 0, wheelTick: -1, wheelPrev: null, wheelNext: null }; }

test('timer wheel: fires at deadlines (also beyond one revolution), lazy moves, cancel and reschedule inside callbacks', () => {
  const w = new TimerWheel<TE>(10, 0, 16); // 16 slots x 10 ms = 160 ms per revolution
  const a = te(1), b = te(2), c = te(3), d = te(4);
  w.schedule(a, 25);
  w.schedule(b, 1000); // six revolutions away
  w.schedule(c, 50);
  w.schedule(c, 500); // moved later: lazy, fires early and re-links
  w.schedule(d, 40);
  const fired: Array<[number, number]> = [];
  let now = 0;
  const fire = (e: TE) => {
    fired.push([e.id, now]);
    if (e.id === 4) { w.cancel(c); w.schedule(e, now + 100); } // cancel another, re-arm itself
  };
  for (now = 0; now <= 1200; now += 5) w.advance(now, fire);
  const want: Array<[number, number]> = [[1, 30]];
  for (let t = 40; t <= 1200; t += 100) { if (t > 1000 && !want.some(([id]) => id === 2)) want.push([2, 1000]); want.push([4, t]); }
  assert.deepEqual(fired, want);
  for (const [id, at] of fired) {
    if (id === 1) assert.ok(at >= 25 && at < 40);
    if (id === 2) assert.ok(at >= 1000 && at < 1020, `b at ${at}`);
  }
  assert.ok(!fired.some(([id]) => id === 3), 'cancelled');
  // A long stall: one advance() catches up.
  const e = te(5);
  w.schedule(e, now + 50);
  w.advance(now + 100_000, (x) => fired.push([x.id, now]));
  assert.equal(fired.at(-1)![0], 5);
});

interface FE extends FlowEntry { tag: string }
function fe(g: number, gp: number, r: number, rp: number): FE {
  return { guestIp: g, guestPort: gp, remoteIp: r, remotePort: rp, hashNext: null, allPrev: null, allNext: null, tag: `${gp}/${rp}` };
}

test('flow table: lookup by exact tuple, removal anywhere in a chain, bounded, insertion order kept', () => {
  const t = new FlowTable<FE>(4); // 16 buckets
  const xs: FE[] = [];
  // Many tuples in 16 buckets: chains are guaranteed.
  const big = new FlowTable<FE>(2000);
  for (let i = 0; i < 2000; i++) { const x = fe(GUEST, 10000 + i, GATEWAY, 80); xs.push(x); assert.ok(big.insert(x)); }
  assert.equal(big.insert(fe(GUEST, 1, GATEWAY, 80)), false, 'at capacity');
  for (let i = 0; i < 2000; i += 3) assert.ok(big.remove(xs[i]!));
  for (let i = 0; i < 2000; i++) {
    const got = big.lookup(GUEST, 10000 + i, GATEWAY, 80);
    assert.equal(got, i % 3 === 0 ? null : xs[i]);
  }
  assert.equal(big.lookup(GUEST, 10001, GATEWAY, 81), null, 'port differs');
  assert.equal(big.lookup(GUEST + 1, 10001, GATEWAY, 80), null, 'address differs');
  assert.deepEqual(big.toArray().slice(0, 3).map((x) => x.tag), ['10001/80', '10002/80', '10004/80']);
  assert.equal(t.first(), null);
  const a = fe(1, 1, 2, 2), b = fe(1, 1, 2, 3);
  t.insert(a); t.insert(b);
  assert.equal(t.first(), a);
  t.remove(a);
  assert.equal(t.first(), b);
  assert.equal(t.remove(a), false);
  assert.equal(t.size, 1);
});
