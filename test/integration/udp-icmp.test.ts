// The UDP and ICMP translators against a real guest kernel: a container namespace (nested
// user+net namespace, the rootless case) gets a TAP with offloads, served in this process by a
// Switch + Router + UdpTranslator + IcmpTranslator. Inside the container a node client sends
// datagrams from ONE socket to the gateway, the DNS address and an "outside" server; the servers
// report the source they saw, so the test proves the NAT (and endpoint-independent mapping), not
// just reachability. A 3000-byte answer must be IP-fragmented toward the guest and reassembled by
// its kernel; busybox ping proves echo through ping sockets. Runs in test/helpers/sandbox.ts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureSandbox, HOST, makeOutside, OUTSIDE_ADDR, HOST_ADDR, spawnIn, startServer, tapMissing, waitForLine } from '../helpers/sandbox';
import { guestSnmp, run, serveTap, startContainer, testConfig } from '../helpers/container-ns';

const BIG_SERVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from('you are ' + r.address + ':' + r.port + '\\n'), Buffer.alloc(3000, 0x61)]), r.port, r.address));
s.bind(0, '${OUTSIDE_ADDR}', () => console.log(JSON.stringify({ ready: true, port: s.address().port })));
`;

// Runs inside the container: one socket, several destinations; prints one JSON line per answer.
const CLIENT = `
const dgram = require('node:dgram');
const [gwPort, outPort, bigPort] = process.argv.slice(2).map(Number);
const s = dgram.createSocket('udp4');
const want = 4;
let got = 0;
const timer = setTimeout(() => { console.log(JSON.stringify({ timeout: true, got })); process.exit(2); }, 8000);
s.on('message', (m, r) => {
  const text = m.toString('latin1');
  console.log(JSON.stringify({ from: r.address + ':' + r.port, len: m.length, head: text.split('\\n')[0], tail: text.slice(-40) }));
  if (++got === want) { clearTimeout(timer); s.close(); }
});
s.bind(0, () => {
  s.send('to-gateway', gwPort, '10.0.2.2');
  s.send('to-dns', 53, '10.0.2.3');
  s.send('to-outside', outPort, '${OUTSIDE_ADDR}');
  s.send('big', bigPort, '${OUTSIDE_ADDR}');
});
`;

if (ensureSandbox(__filename)) {
  const skip = tapMissing();
  test('guest kernel <-> UDP/ICMP translators: NAT sources, DNS, fragmentation, ping', { skip: skip ?? false, timeout: 90_000 }, async (t) => {
    const { UdpTranslator, UdpCounters } = await import('../../src/translate/udp');
    const { IcmpTranslator, IcmpCounters } = await import('../../src/translate/icmp');

    // Ping sockets for our group in this sandbox. Only gid 0 is mapped in it, so a range naming
    // unmapped gids ("0 2147483647") is refused with EINVAL: write "0 0".
    fs.writeFileSync('/proc/sys/net/ipv4/ping_group_range', '0 0');
    const outside = await makeOutside();
    const outSrv = await startServer(outside, 'udp-echo-server', ['--host', OUTSIDE_ADDR]);
    // Answers any datagram with 3000 bytes: more than the guest's MTU, so it must be fragmented.
    const bigSrv = spawnIn(outside, process.execPath, ['-e', BIG_SERVER]);
    const bigPort = (JSON.parse(await waitForLine(bigSrv, (l) => l.startsWith('{"ready":true'))) as { port: number }).port;
    const gwSrv = await startServer(HOST, 'udp-echo-server', ['--host', '127.0.0.1']);
    const resolver = await startServer(HOST, 'udp-echo-server', ['--host', '127.0.0.1']);

    const { pid, inContainer } = await startContainer();
    const cfg = testConfig({ dnsUpstreams: [`127.0.0.1:${resolver.port}`] });
    let udp: InstanceType<typeof UdpTranslator> | null = null;
    let icmp: InstanceType<typeof IcmpTranslator> | null = null;
    const { dev, counters, sw, port, router } = await serveTap(pid, cfg, 'configured', (f, e, ip) => {
      if (ip.protocol === 17) udp?.onPacket(f, e, ip);
      else if (ip.protocol === 1) icmp?.onPacket(f, e, ip);
    });
    const logs: string[] = [];
    const log = { enabled: () => true, log: (level: string, msg: string) => { logs.push(`${level}: ${msg}`); } };
    const ctx = { config: cfg, sink: router, counters, log };
    udp = new UdpTranslator(ctx);
    icmp = new IcmpTranslator(ctx);
    port.start(sw);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-udp-'));
    const client = path.join(dir, 'client.js');
    fs.writeFileSync(client, CLIENT);
    try {
      const r = await run(inContainer([process.execPath, client, String(gwSrv.port), String(outSrv.port), String(bigPort)]), 20_000);
      t.diagnostic(`client: ${r.out.trim()} ${r.err.trim()}`);
      assert.equal(r.code, 0, `client failed: ${r.out} ${r.err}`);
      const answers = r.out.trim().split('\n').map((l) => JSON.parse(l) as { from: string; len: number; head: string; tail: string });
      const gw = answers.find((a) => a.from === `10.0.2.2:${gwSrv.port}`);
      const dns = answers.find((a) => a.from === '10.0.2.3:53');
      const out = answers.filter((a) => a.from === `${OUTSIDE_ADDR}:${outSrv.port}`);
      const big = answers.find((a) => a.from === `${OUTSIDE_ADDR}:${bigPort}`);
      assert.ok(gw, 'answer from the gateway');
      assert.ok(dns, 'answer from the DNS address');
      assert.equal(out.length, 1, 'an answer from outside');
      // What the servers saw: loopback for the gateway and the resolver, the host's address outside.
      const seen = (a: { head: string }) => /^you are ([\d.]+):(\d+)$/.exec(a.head);
      const g = seen(gw), d = seen(dns), o = seen(out[0]!);
      assert.ok(g && d && o);
      assert.equal(g[1], '127.0.0.1');
      assert.equal(d[1], '127.0.0.1');
      assert.equal(o[1], HOST_ADDR);
      // Endpoint-independent mapping: one guest socket, one host port, whatever the destination.
      assert.equal(g[2], d[2]);
      assert.equal(g[2], o[2]);
      // The 3000-byte answer came back through IP fragments, reassembled by the guest's kernel.
      assert.ok(big, 'the big answer was reassembled by the guest');
      assert.ok(big.len > 3000);
      assert.equal(big.tail, 'a'.repeat(40));
      assert.ok((counters[UdpCounters.RX_FRAGMENTED] ?? 0) >= 1);

      // ICMP echo: to the outside server (translated) and to the gateway (answered by the router).
      const ping = await run(inContainer(['busybox', 'ping', '-c', '2', '-W', '3', OUTSIDE_ADDR]), 20_000);
      t.diagnostic(`ping: ${ping.out.trim()} ${ping.err.trim()}`);
      t.diagnostic(`logs: ${logs.join(' | ')}; counters: ${JSON.stringify(counters)}`);
      assert.equal(ping.code, 0, `ping failed: ${ping.out} ${ping.err}`);
      assert.match(ping.out, /2 packets received/);
      assert.ok((counters[IcmpCounters.RX_ECHO] ?? 0) >= 2);
      assert.equal(logs.filter((l) => l.startsWith('warn')).length, 0, logs.join('\n'));
      // Nothing our translators sent was refused by the guest's kernel as a bad checksum.
      const udpStats = guestSnmp(pid, 'Udp');
      if (Object.keys(udpStats).length > 0) {
        t.diagnostic(`guest Udp: ${JSON.stringify(udpStats)}`);
        assert.equal(udpStats.InCsumErrors, 0, 'guest UDP InCsumErrors');
      }
    } finally {
      udp.close();
      icmp.close();
      dev.close();
      fs.rmSync(dir, { recursive: true, force: true });
      outSrv.stop(); gwSrv.stop(); resolver.stop(); bigSrv.kill('SIGKILL');
    }
  });
}
