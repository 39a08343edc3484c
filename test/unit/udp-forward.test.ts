// Host side of UDP port forwards, on loopback: flows per client, replies only to live flows, idle
// expiry, LRU eviction, bind errors, dual-stack address unwrapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import { UdpForwarder, type UdpClientFlow, type UdpFlowCloseReason } from '../../src/portfwd/udp-forward';

interface Seen { flow: UdpClientFlow; payload: string }

function client(type: 'udp4' | 'udp6' = 'udp4'): Promise<dgram.Socket> {
  const s = dgram.createSocket(type);
  return new Promise((resolve) => s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => resolve(s)));
}

function nextMessage(s: dgram.Socket, ms = 2000): Promise<{ msg: string; from: dgram.RemoteInfo }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message')), ms);
    s.once('message', (m, r) => { clearTimeout(t); resolve({ msg: m.toString(), from: r }); });
  });
}

async function waitFor(pred: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function send(s: dgram.Socket, text: string, port: number, addr = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => s.send(text, port, addr, (e) => (e ? reject(e) : resolve())));
}

const hasIpv6Loopback = Object.values(os.networkInterfaces()).some((l) => l?.some((a) => a.address === '::1'));

test('datagrams become flows; replies go back from the forwarded port', async () => {
  const seen: Seen[] = [];
  const fwd = await UdpForwarder.open({
    hostAddr: '127.0.0.1', hostPort: 0,
    deliverToGuest: (flow, payload) => seen.push({ flow, payload: payload.toString() }),
  });
  const a = await client();
  const b = await client();
  try {
    assert.ok(fwd.hostPort > 0);
    await send(a, 'hello from a', fwd.hostPort);
    await send(b, 'hello from b', fwd.hostPort);
    await send(a, 'again from a', fwd.hostPort);
    await waitFor(() => seen.length === 3);
    assert.deepEqual(seen.map((s) => s.payload), ['hello from a', 'hello from b', 'again from a']);
    assert.equal(seen[0]?.flow.clientAddr, '127.0.0.1');
    assert.equal(seen[0]?.flow.clientPort, a.address().port);
    assert.equal(seen[0]?.flow.family, 4);
    assert.equal(fwd.flows().length, 2);
    assert.equal(fwd.stats.flowsCreated, 2);

    const gotA = nextMessage(a);
    assert.equal(fwd.sendToClient('127.0.0.1', a.address().port, Buffer.from('reply to a')), true);
    const r = await gotA;
    assert.equal(r.msg, 'reply to a');
    assert.equal(r.from.port, fwd.hostPort);
    assert.equal(r.from.address, '127.0.0.1');

    const gotB = nextMessage(b);
    assert.equal(fwd.sendToClient('127.0.0.1', b.address().port, new Uint8Array([0x62])), true);
    assert.equal((await gotB).msg, 'b');
    await waitFor(() => fwd.stats.datagramsOut === 2);
    assert.equal(fwd.stats.datagramsIn, 3);
  } finally {
    a.close();
    b.close();
    await fwd.close();
  }
});

test('replies to clients without a flow are dropped', async () => {
  const fwd = await UdpForwarder.open({ hostAddr: '127.0.0.1', hostPort: 0, deliverToGuest: () => undefined });
  const a = await client();
  try {
    let got = false;
    a.on('message', () => { got = true; });
    assert.equal(fwd.sendToClient('127.0.0.1', a.address().port, Buffer.from('unsolicited')), false);
    assert.equal(fwd.sendToClient('192.0.2.1', 53, Buffer.from('x')), false);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got, false);
    assert.equal(fwd.stats.dropped, 2);
  } finally {
    a.close();
    await fwd.close();
  }
});

test('idle flows expire (fake clock); replies then fail; traffic either way keeps a flow alive', async () => {
  let now = 0;
  const closed: Array<[number, UdpFlowCloseReason]> = [];
  let delivered = 0;
  const fwd = await UdpForwarder.open({
    hostAddr: '127.0.0.1', hostPort: 0, idleTimeoutMs: 1000, now: () => now,
    deliverToGuest: () => { delivered++; },
    onFlowClosed: (f, why) => closed.push([f.clientPort, why]),
  });
  const a = await client();
  const b = await client();
  try {
    await send(a, 'x', fwd.hostPort);
    await waitFor(() => delivered === 1);
    now = 500;
    await send(b, 'y', fwd.hostPort);
    await waitFor(() => delivered === 2);
    now = 900;
    assert.equal(fwd.sendToClient('127.0.0.1', a.address().port, Buffer.from('keepalive')), true);
    now = 1600; // b idle 1100 ms, a idle 700 ms
    fwd.sweep();
    assert.deepEqual(closed, [[b.address().port, 'idle']]);
    assert.equal(fwd.sendToClient('127.0.0.1', b.address().port, Buffer.from('late')), false);
    now = 2000;
    fwd.sweep();
    assert.deepEqual(closed.map((c) => c[0]), [b.address().port, a.address().port]);
    assert.equal(fwd.flows().length, 0);
  } finally {
    a.close();
    b.close();
    await fwd.close();
  }
});

test('idle expiry runs on its own timer', async () => {
  const closed: UdpFlowCloseReason[] = [];
  const fwd = await UdpForwarder.open({
    hostAddr: '127.0.0.1', hostPort: 0, idleTimeoutMs: 60,
    deliverToGuest: () => undefined, onFlowClosed: (_f, why) => closed.push(why),
  });
  const a = await client();
  try {
    await send(a, 'x', fwd.hostPort);
    await waitFor(() => closed.length === 1, 2000);
    assert.deepEqual(closed, ['idle']);
  } finally {
    a.close();
    await fwd.close();
  }
});

test('the flow table is bounded: the least recently active flow is evicted', async () => {
  const closed: Array<[number, UdpFlowCloseReason]> = [];
  let delivered = 0;
  const fwd = await UdpForwarder.open({
    hostAddr: '127.0.0.1', hostPort: 0, maxFlows: 2,
    deliverToGuest: () => { delivered++; }, onFlowClosed: (f, why) => closed.push([f.clientPort, why]),
  });
  const cs = [await client(), await client(), await client()];
  const [c0, c1, c2] = cs as [dgram.Socket, dgram.Socket, dgram.Socket];
  try {
    await send(c0, '0', fwd.hostPort);
    await waitFor(() => delivered === 1);
    await send(c1, '1', fwd.hostPort);
    await waitFor(() => delivered === 2);
    assert.equal(fwd.sendToClient('127.0.0.1', c0.address().port, Buffer.from('touch')), true); // c1 is now oldest
    await send(c2, '2', fwd.hostPort);
    await waitFor(() => delivered === 3);
    assert.deepEqual(closed, [[c1.address().port, 'evicted']]);
    assert.deepEqual(fwd.flows().map((f) => f.clientPort), [c0.address().port, c2.address().port]);
  } finally {
    for (const c of cs) c.close();
    await fwd.close();
  }
});

test('a throwing deliverToGuest is counted, not fatal', async () => {
  let calls = 0;
  const fwd = await UdpForwarder.open({
    hostAddr: '127.0.0.1', hostPort: 0, deliverToGuest: () => { calls++; throw new Error('boom'); },
  });
  const a = await client();
  try {
    await send(a, 'x', fwd.hostPort);
    await send(a, 'y', fwd.hostPort);
    await waitFor(() => calls === 2);
    assert.equal(fwd.stats.dropped, 2);
    assert.equal(fwd.flows().length, 1);
  } finally {
    a.close();
    await fwd.close();
  }
});

test('bind errors reject; close releases the port and closes flows', async () => {
  const closed: UdpFlowCloseReason[] = [];
  const first = await UdpForwarder.open({
    hostAddr: '127.0.0.1', hostPort: 0, deliverToGuest: () => undefined, onFlowClosed: (_f, why) => closed.push(why),
  });
  await assert.rejects(UdpForwarder.open({ hostAddr: '127.0.0.1', hostPort: first.hostPort, deliverToGuest: () => undefined }),
    (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
  await assert.rejects(UdpForwarder.open({ hostAddr: '0.0.0.0', hostPort: first.hostPort, deliverToGuest: () => undefined }),
    (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
  await assert.rejects(UdpForwarder.open({ hostAddr: '192.0.2.123', hostPort: 0, deliverToGuest: () => undefined }),
    (e: NodeJS.ErrnoException) => e.code === 'EADDRNOTAVAIL');
  await assert.rejects(UdpForwarder.open({ hostAddr: 'localhost', hostPort: 0, deliverToGuest: () => undefined }), /not an IP address/);
  await assert.rejects(UdpForwarder.open({ hostAddr: '127.0.0.1', hostPort: 70000, deliverToGuest: () => undefined }), /not a port/);
  const a = await client();
  await send(a, 'x', first.hostPort);
  await waitFor(() => first.flows().length === 1);
  const port = first.hostPort;
  await first.close();
  await first.close();
  assert.deepEqual(closed, ['closed']);
  assert.equal(first.sendToClient('127.0.0.1', a.address().port, Buffer.from('x')), false);
  a.close();
  const again = await UdpForwarder.open({ hostAddr: '127.0.0.1', hostPort: port, deliverToGuest: () => undefined });
  assert.equal(again.hostPort, port);
  await again.close();
});

test('dual stack on ::: IPv4 clients appear as IPv4, replies reach them', { skip: !hasIpv6Loopback && 'no ::1 on this machine' }, async () => {
  const seen: UdpClientFlow[] = [];
  const fwd = await UdpForwarder.open({ hostAddr: '::', hostPort: 0, deliverToGuest: (f) => seen.push(f) });
  const a4 = await client('udp4');
  const a6 = await client('udp6');
  try {
    await send(a4, 'v4', fwd.hostPort);
    await send(a6, 'v6', fwd.hostPort, '::1');
    await waitFor(() => seen.length === 2);
    const f4 = seen.find((f) => f.family === 4);
    const f6 = seen.find((f) => f.family === 6);
    assert.equal(f4?.clientAddr, '127.0.0.1');
    assert.equal(f6?.clientAddr, '::1');
    const got4 = nextMessage(a4);
    assert.equal(fwd.sendToClient('127.0.0.1', a4.address().port, Buffer.from('r4')), true);
    assert.equal((await got4).msg, 'r4');
    const got6 = nextMessage(a6);
    assert.equal(fwd.sendToClient('::1', a6.address().port, Buffer.from('r6')), true);
    assert.equal((await got6).msg, 'r6');
  } finally {
    a4.close();
    a6.close();
    await fwd.close();
  }
});
