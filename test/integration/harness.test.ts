// The integration harness itself: the sandbox, the outside namespace and the test servers.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { ensureSandbox, HOST, HOST_ADDR, makeOutside, OUTSIDE_ADDR, probe as probeAt, sh, shIn, startServer, useResolvConf } from '../helpers/sandbox';

const probe = (args: string[]) => probeAt(HOST, args);

if (ensureSandbox(__filename)) {
  test('we are root of a one-id user namespace with only lo', () => {
    const map = fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    assert.equal(map[0], '0');
    assert.equal(map[2], '1');
    const links = sh('ip', ['-o', 'link']).trim().split('\n');
    assert.equal(links.length, 1);
    assert.match(links[0] as string, /^1: lo: .*UP/);
  });

  test('outside namespace: servers there see the host\'s veth address; nothing else is routable', async () => {
    const outside = await makeOutside();
    const tcp = await startServer(outside, 'tcp-server', ['--mode', 'echo']);
    const r = await probe(['tcp', OUTSIDE_ADDR, String(tcp.port), 'ping']);
    assert.equal(r.data, `you are ${HOST_ADDR}:${String(r.local).split(':')[1]}\nping`);
    const udp = await startServer(outside, 'udp-echo-server');
    assert.match(String((await probe(['udp', '198.51.100.5', String(udp.port), 'x'])).data), /^you are 198\.51\.100\.1:\d+\nx$/);
    assert.equal((await probe(['tcp', '192.0.2.1', '80', 'x'])).error, 'ENETUNREACH');
    assert.doesNotMatch(shIn(outside, 'ip', ['route']), /default/);
    tcp.stop();
    udp.stop();
  });

  test('DNS server on a loopback address answers through the sandbox\'s own resolv.conf', async () => {
    sh('ip', ['addr', 'add', '127.0.0.53/8', 'dev', 'lo']);
    const server = await startServer(HOST, 'dns-server', ['--host', '127.0.0.53', '--port', '53']);
    useResolvConf('nameserver 127.0.0.53\n');
    const r = await probe(['resolve', 'tapswitch.test']);
    assert.deepEqual(r.addresses, ['198.51.100.7']);
    assert.equal((await probe(['resolve', 'other.test'])).error, 'ENOTFOUND');
    assert.ok(server.lines.some((l) => l.includes('"query":"tapswitch.test"')));
    server.stop();
  });
}
