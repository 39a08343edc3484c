// Issue 3's proof: the kernel's own TCP/IP stack in a container namespace, through `tapswitch run`,
// against servers in an "outside" namespace (198.51.100.0/24, reached over a veth) and on the
// sandbox host's loopback. Servers report the source address they saw, so these tests prove NAT,
// not just reachability; bulk data is compared by SHA-256.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  HOST, HOST_ADDR, OUTSIDE_ADDR, cleanup, dataPlaneMissing, ensureSandbox, makeOutside, runCli,
  startServer, useResolvConf, type Outside, type Server,
} from '../helpers/sandbox';

const CLIENT = path.join(__dirname, '..', 'helpers', 'container-client.js');
const MB20 = 20 * 1000 * 1000;

type Result = Record<string, unknown>;

async function inContainer(probes: object[], flags: string[] = []): Promise<{ results: Result[]; stderr: string; code: number | null }> {
  const r = await runCli(['run', '--network', 'userspace', '--stats', ...flags, '--', process.execPath, CLIENT, JSON.stringify({ probes })], { timeoutMs: 120_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let results: Result[] = [];
  try { results = (JSON.parse(line) as { results: Result[] }).results; } catch { /* asserted below */ }
  assert.equal(r.code, 0, `tapswitch run failed (${r.code}): ${r.stderr}`);
  assert.equal(results.length, probes.length, `client output: ${r.stdout}\nstderr: ${r.stderr}`);
  return { results, stderr: r.stderr, code: r.code };
}

if (ensureSandbox(__filename)) {
  const missing = dataPlaneMissing();
  let outside: Outside;
  const servers: Record<string, Server> = {};

  before(async () => {
    if (missing) return;
    outside = await makeOutside();
    servers.sha = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', 'sha256']);
    servers.send = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', `send:${MB20}`]);
    servers.udp = await startServer(outside, 'udp-echo-server', ['--host', OUTSIDE_ADDR]);
    servers.loop = await startServer(HOST, 'tcp-server', ['--host', '127.0.0.1', '--mode', 'echo']);
    servers.loopUdp = await startServer(HOST, 'udp-echo-server', ['--host', '127.0.0.1']);
    // The host's resolver is a loopback stub (like systemd-resolved's 127.0.0.53).
    servers.dns = await startServer(HOST, 'dns-server', ['--host', '127.0.0.53', '--port', '53']);
    useResolvConf('nameserver 127.0.0.53\n');
  });
  after(() => cleanup());

  test('TCP, UDP and DNS from the container through the userspace NAT', { skip: missing ?? false, timeout: 180_000 }, async (t) => {
    const closedPort = servers.sha!.port + 1000;
    const probes = [
      { kind: 'tcp-upload', host: OUTSIDE_ADDR, port: servers.sha!.port, bytes: MB20 },
      { kind: 'tcp-download', host: OUTSIDE_ADDR, port: servers.send!.port, bytes: MB20 },
      { kind: 'udp-echo', host: OUTSIDE_ADDR, port: servers.udp!.port, payload: 'ping-through-nat' },
      { kind: 'dns-udp', server: '10.0.2.3', name: 'tapswitch.test' },
      { kind: 'dns-tcp', server: '10.0.2.3', name: 'tapswitch.test' },
      { kind: 'tcp-connect', host: OUTSIDE_ADDR, port: closedPort },
      { kind: 'tcp-connect', host: '203.0.113.9', port: 80 },
      { kind: 'tcp-connect', host: '10.0.2.2', port: servers.loop!.port },
      { kind: 'udp-echo', host: '10.0.2.2', port: servers.loopUdp!.port, payload: 'to-host-loopback' },
    ];
    const { results, stderr } = await inContainer(probes);
    const [up, down, udp, dnsU, dnsT, refused, unreach, loop, loopUdp] = results as Result[];
    t.diagnostic(`upload ${up!.ms} ms, download ${down!.ms} ms`);

    await t.test('20 MB container -> outside arrives intact, seen from the host address', () => {
      assert.match(String(up!.greeting), new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:\\d+$`));
      assert.equal(up!.restText, `sha256 ${up!.sentSha256} ${MB20}\n`);
    });
    await t.test('20 MB outside -> container arrives intact', () => {
      assert.match(String(down!.greeting), new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:`));
      assert.equal(down!.restBytes, MB20);
      assert.equal(down!.restSha256, down!.expectSha256);
    });
    await t.test('UDP is echoed, the outside sees the host address, the reply comes from the server', () => {
      assert.match(String(udp!.reply), new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:\\d+\\nping-through-nat$`));
      assert.equal(udp!.from, `${OUTSIDE_ADDR}:${servers.udp!.port}`);
    });
    await t.test('DNS through the forwarder at network+3 reaches the loopback resolver (UDP and TCP)', () => {
      assert.deepEqual(dnsU!.addresses, ['198.51.100.7']);
      assert.equal(dnsT!.address, '198.51.100.7');
      const log = servers.dns!.lines.join('\n');
      assert.match(log, /tapswitch\.test/);
    });
    await t.test('a refused port is refused; an unroutable address is unreachable', () => {
      assert.equal(refused!.error, 'ECONNREFUSED');
      assert.ok(unreach!.error === 'EHOSTUNREACH' || unreach!.error === 'ENETUNREACH', `got ${String(unreach!.error)}`);
    });
    await t.test('the gateway address reaches the host loopback, seen there as 127.0.0.1', () => {
      assert.match(String(loop!.greeting), /^you are 127\.0\.0\.1:\d+$/);
      assert.equal(loop!.restText, 'hello\n');
      assert.match(String(loopUdp!.reply), /^you are 127\.0\.0\.1:\d+\nto-host-loopback$/);
      assert.equal(loopUdp!.from, `10.0.2.2:${servers.loopUdp!.port}`);
    });
    await t.test('--stats printed counters at exit', () => {
      assert.match(stderr, /tcp_rx_bytes\s+\d+/);
    });
  });

  test('--disable-host-loopback: the gateway address fails like an unreachable network', { skip: missing ?? false, timeout: 60_000 }, async () => {
    const { results } = await inContainer([{ kind: 'tcp-connect', host: '10.0.2.2', port: servers.loop!.port }], ['--disable-host-loopback']);
    assert.equal(results[0]!.error, 'ENETUNREACH');
  });

  test('--dns-forward sends DNS to the given resolver instead of resolv.conf', { skip: missing ?? false, timeout: 60_000 }, async () => {
    const other = await startServer(HOST, 'dns-server', ['--host', '127.0.0.1', '--port', '0', '--address', '198.51.100.9']);
    const { results } = await inContainer([{ kind: 'dns-udp', server: '10.0.2.3', name: 'tapswitch.test' }], ['--dns-forward', `127.0.0.1:${other.port}`]);
    assert.deepEqual(results[0]!.addresses, ['198.51.100.9']);
  });

  const busybox = spawnSync('busybox', ['--help']).status === 0;
  test('ICMP echo to the outside through ping sockets', { skip: missing ?? (busybox ? false : 'busybox not installed (apt-get install busybox-static)'), timeout: 60_000 }, async () => {
    // Ping sockets are allowed for our group by the sandbox (test/helpers/sandbox.ts).
    const r = await runCli(['run', '--network', 'userspace', '--', 'busybox', 'ping', '-c', '2', '-W', '3', OUTSIDE_ADDR], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /2 packets received/);
  });

}
