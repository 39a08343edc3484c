// Port forwards into the guest (portfwd/guest-fwd.ts) over the in-memory device: a real UDP
// forward on the host's loopback, the UDP translator's inbound flows, the wait for the guest's MAC,
// flow expiry; the guest-visible source address rules; TCP handing to openInbound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { UdpTranslator, UdpCounters } from '../../src/translate/udp';
import { GuestForwarding, guestSourceFor } from '../../src/portfwd/guest-fwd';
import { createSocketHostFwdBackend } from '../../src/portfwd/hostfwd-table';
import { config, GATEWAY, GUEST, Harness, ip, parse, u16, udpFrame, waitFor } from '../helpers/translator-harness';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('guestSourceFor: loopback, IPv6 and in-subnet clients are the gateway; others keep their address', () => {
  const cfg = config();
  assert.equal(guestSourceFor(cfg, '127.0.0.1'), GATEWAY);
  assert.equal(guestSourceFor(cfg, '127.5.6.7'), GATEWAY);
  assert.equal(guestSourceFor(cfg, '::1'), GATEWAY);
  assert.equal(guestSourceFor(cfg, '::ffff:127.0.0.1'), GATEWAY);
  assert.equal(guestSourceFor(cfg, '2001:db8::1'), GATEWAY);
  assert.equal(guestSourceFor(cfg, '10.0.2.50'), GATEWAY, 'would impersonate a neighbour');
  assert.equal(guestSourceFor(cfg, undefined), GATEWAY);
  assert.equal(guestSourceFor(cfg, '198.51.100.2'), ip('198.51.100.2'));
  assert.equal(guestSourceFor(cfg, '::ffff:198.51.100.2'), ip('198.51.100.2'));
});

async function udpClient(): Promise<{ sock: dgram.Socket; port: number; got: string[]; from: number[] }> {
  const sock = dgram.createSocket('udp4');
  const got: string[] = [];
  const from: number[] = [];
  sock.on('message', (m, r) => { got.push(m.toString()); from.push(r.port); });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { sock, port: sock.address().port, got, from };
}

test('UDP forward: client datagram -> guest from the gateway; the guest\'s reply -> that client; expiry forgets the flow', async (t) => {
  const h = new Harness(config());
  const udp = new UdpTranslator(h.ctx);
  h.use(udp);
  const hooks = new GuestForwarding({
    config: h.cfg, tcp: { openInbound: () => false }, udp, sink: h.sink, counters: h.counters, log: h.log,
  });
  const table = createSocketHostFwdBackend({ ...hooks, onTcpConnection: hooks.onTcpConnection,
    onUdpDatagram: hooks.onUdpDatagram, onUdpFlowClosed: hooks.onUdpFlowClosed, udpIdleTimeoutMs: 300 });
  const added = await table.add({ proto: 'udp', hostAddr: '127.0.0.1', hostPort: 0, guestAddr: '10.0.2.100', guestPort: 53 });
  assert.ok(added.ok);
  const client = await udpClient();
  t.after(async () => { await table.closeAll(); hooks.close(); udp.close(); client.sock.close(); });

  client.sock.send('question', added.entry.hostPort, '127.0.0.1');
  await waitFor(() => h.sent.length === 1, 3000, 'frame to the guest');
  const f = h.sent[0]!;
  const p = parse(f);
  assert.equal(p.src, GATEWAY, 'a loopback client appears as the gateway');
  assert.equal(p.dst, GUEST);
  assert.equal(u16(f, p.l4), client.port, 'from the client\'s port');
  assert.equal(u16(f, p.l4 + 2), 53);
  assert.equal(udp.inboundFlowCount, 1);

  // The guest answers from :53 to gateway:clientPort: it goes to the client, not out of a new socket.
  h.inject(udpFrame({ src: GUEST, dst: GATEWAY, sport: 53, dport: client.port, payload: enc('answer') }));
  await waitFor(() => client.got.length === 1, 3000, 'reply at the client');
  assert.equal(client.got[0], 'answer');
  assert.equal(client.from[0], added.entry.hostPort, 'the reply leaves from the forwarded port');
  assert.equal(udp.flowCount, 0, 'no outbound flow was made for it');
  assert.equal(h.counters[UdpCounters.FWD_REPLIES], 1);

  // Silence: the forwarder expires the flow and the translator forgets it.
  await waitFor(() => udp.inboundFlowCount === 0, 3000, 'flow expired');
  h.inject(udpFrame({ src: GUEST, dst: GATEWAY, sport: 53, dport: client.port, payload: enc('late') }));
  await new Promise((r) => setTimeout(r, 200));
  // It is now an ordinary outbound datagram (gateway = the host's loopback), from a socket of its
  // own, not from the forwarded port.
  assert.equal(h.counters[UdpCounters.FWD_REPLIES], 1, 'not through the expired forward flow');
  assert.equal(udp.flowCount, 1);
  assert.notEqual(client.from[1], added.entry.hostPort);
});

test('UDP forward: datagrams wait for the guest\'s MAC (ARP), in order, then go', async (t) => {
  const h = new Harness(config());
  h.knowsMac = false;
  const udp = new UdpTranslator(h.ctx);
  h.use(udp);
  const hooks = new GuestForwarding({ config: h.cfg, tcp: { openInbound: () => false }, udp, sink: h.sink, counters: h.counters, log: h.log });
  t.after(() => { hooks.close(); udp.close(); });
  const reply = () => true;
  const entry = { id: 1, proto: 'udp' as const, hostAddr: '0.0.0.0', hostPort: 5353, guestAddr: '10.0.2.100', guestPort: 53 };
  const flow = { clientAddr: '198.51.100.2', clientPort: 4000, family: 4 as const, lastActive: 0 };
  hooks.onUdpDatagram(entry, flow, Buffer.from('one'), reply);
  hooks.onUdpDatagram(entry, flow, Buffer.from('two'), reply);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(h.sent.length, 0);
  h.knowsMac = true;
  await waitFor(() => h.sent.length === 2, 2000, 'both sent once the MAC is known');
  const payloads = h.sent.map((f) => { const p = parse(f); return Buffer.from(f.subarray(p.l4 + 8, p.l4 + p.l4Len)).toString(); });
  assert.deepEqual(payloads, ['one', 'two']);
  assert.equal(parse(h.sent[0]!).src, ip('198.51.100.2'), 'a non-loopback client keeps its address');
});

test('TCP forward: an accepted socket goes to openInbound with the guest-visible source; refused -> destroyed', async (t) => {
  const h = new Harness(config());
  const calls: Array<[number, number, number, number]> = [];
  let accept = true;
  const hooks = new GuestForwarding({
    config: h.cfg,
    tcp: { openInbound: (_s: net.Socket, g: number, gp: number, r: number, rp: number) => { calls.push([g, gp, r, rp]); return accept; } },
    udp: new UdpTranslator(h.ctx), sink: h.sink, counters: h.counters, log: h.log,
  });
  const table = createSocketHostFwdBackend({ onTcpConnection: hooks.onTcpConnection, onUdpDatagram: hooks.onUdpDatagram });
  const added = await table.add({ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestAddr: '10.0.2.100', guestPort: 80 });
  assert.ok(added.ok);
  t.after(() => table.closeAll());
  const c1 = net.connect(added.entry.hostPort, '127.0.0.1');
  await new Promise((r) => c1.once('connect', r));
  await waitFor(() => calls.length === 1, 2000, 'openInbound called');
  assert.deepEqual(calls[0], [GUEST, 80, GATEWAY, c1.localPort]);
  c1.destroy();
  accept = false;
  const c2 = net.connect(added.entry.hostPort, '127.0.0.1');
  const closed = await new Promise<boolean>((r) => { c2.on('close', () => r(true)); c2.on('error', () => undefined); });
  assert.ok(closed, 'a refused connection is closed');
  assert.equal(h.counters.portfwd_tcp_refused, 1);
});
