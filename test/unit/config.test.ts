import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { buildDataPlaneConfig, gatewayMacFor, ipToU32, parseCidr, parseDnsForward, parseMtu, parseQueues, planNetwork, u32ToIp } from '../../src/control/config';
import { TapswitchError } from '../../src/control/errors';

function code(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TapswitchError);
    return { code: e.code, message: e.message };
  }
  assert.fail('expected an error');
}

test('parseCidr accepts network addresses with prefix 1-25', () => {
  assert.deepEqual(parseCidr('10.0.2.0/24'), { network: 0x0a000200, prefixLength: 24 });
  assert.deepEqual(parseCidr('10.0.0.0/8'), { network: 0x0a000000, prefixLength: 8 });
  assert.deepEqual(parseCidr('192.168.128.0/25'), { network: 0xc0a88000, prefixLength: 25 });
  assert.deepEqual(parseCidr('128.0.0.0/1'), { network: 0x80000000, prefixLength: 1 });
});

test('parseCidr uses slirp4netns\'s error texts', () => {
  for (const bad of ['abc', '10.0.2', '10.0.2.0', '10.0.2.0/33', '300.0.0.0/8', '10.0.2.0/x', '', '10.0.2.0/24/1']) {
    assert.deepEqual(code(() => parseCidr(bad)), { code: 'ERR_BAD_CIDR', message: `invalid CIDR: ${bad}` }, bad);
  }
  for (const p of ['0', '26', '30', '32']) {
    assert.deepEqual(code(() => parseCidr(`10.0.0.0/${p}`)), { code: 'ERR_BAD_CIDR', message: 'prefix length needs to be 1-25' });
  }
  assert.deepEqual(code(() => parseCidr('10.0.2.100/24')),
    { code: 'ERR_BAD_CIDR', message: 'CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24' });
});

test('bad CIDR errors exit 65 and suggest a fix', () => {
  try {
    parseCidr('10.0.2.100/24');
  } catch (e) {
    assert.ok(e instanceof TapswitchError);
    assert.equal(e.exitCode, 65);
    assert.match(e.oneLine(), /: use --cidr 10\.0\.2\.0\/24$/);
  }
});

test('parseMtu accepts 68..65520', () => {
  assert.equal(parseMtu('68'), 68);
  assert.equal(parseMtu('1500'), 1500);
  assert.equal(parseMtu('65520'), 65520);
  for (const bad of ['67', '65521', '0', '-1', '1500.5', 'abc', '']) {
    assert.equal(code(() => parseMtu(bad)).code, 'ERR_BAD_MTU', bad);
  }
});

test('parseQueues accepts 1..16', () => {
  assert.equal(parseQueues('1'), 1);
  assert.equal(parseQueues('16'), 16);
  for (const bad of ['0', '17', 'two']) assert.equal(code(() => parseQueues(bad)).code, 'ERR_BAD_VALUE');
});

test('parseDnsForward takes IPv4 with an optional port', () => {
  assert.equal(parseDnsForward('127.0.0.53'), '127.0.0.53');
  assert.equal(parseDnsForward('192.0.2.1:5353'), '192.0.2.1:5353');
  for (const bad of ['::1', 'dns.example', '1.2.3.4:0', '1.2.3.4:70000', '1.2.3']) {
    assert.equal(code(() => parseDnsForward(bad)).code, 'ERR_BAD_VALUE', bad);
  }
});

test('address helpers round-trip', () => {
  assert.equal(ipToU32('10.0.2.100'), 0x0a000264);
  assert.equal(u32ToIp(0x0a000264), '10.0.2.100');
  assert.equal(ipToU32('255.255.255.255'), 0xffffffff);
  assert.equal(ipToU32('256.0.0.1'), null);
});

test('the address plan follows slirp4netns: +2 gateway, +3 DNS, +15 DHCP, +100 guest', () => {
  const p = planNetwork(parseCidr('10.0.2.0/24'));
  assert.equal(u32ToIp(p.gateway), '10.0.2.2');
  assert.equal(u32ToIp(p.dns), '10.0.2.3');
  assert.equal(u32ToIp(p.dhcpStart), '10.0.2.15');
  assert.equal(p.dhcpCount, 16);
  assert.equal(u32ToIp(p.guest), '10.0.2.100');
  const q = planNetwork(parseCidr('192.168.5.128/25'));
  assert.equal(u32ToIp(q.guest), '192.168.5.228');
});

test('buildDataPlaneConfig fills the worker contract', () => {
  const c = buildDataPlaneConfig({ cidr: parseCidr('10.0.2.0/24'), mtu: 9000, hostLoopback: false, dnsUpstreams: ['127.0.0.53'], logLevel: 'info' });
  assert.equal(c.mtu, 9000);
  assert.equal(c.gateway, 0x0a000202);
  assert.equal(c.dns, 0x0a000203);
  assert.equal(c.hostLoopback, false);
  assert.deepEqual(c.dnsUpstreams, ['127.0.0.53']);
  assert.deepEqual(c.gatewayMac, [0x52, 0x55, 10, 0, 2, 2]);
  assert.equal(c.outboundAddr, undefined);
  assert.equal(buildDataPlaneConfig({ cidr: parseCidr('10.0.2.0/24'), mtu: 1500, hostLoopback: true, dnsUpstreams: [], dnsEnabled: false, logLevel: 'warn' }).dns, 0);
});

test('the gateway MAC is locally administered unicast', () => {
  const mac = gatewayMacFor(0x0a000202);
  assert.equal(mac.length, 6);
  assert.equal((mac[0] as number) & 0x02, 0x02);
  assert.equal((mac[0] as number) & 0x01, 0);
});

test('buildDataPlaneConfig with IPv6: slirp4netns -6\'s fixed plan; DNS and --outbound-addr6 follow the options', () => {
  const base = { cidr: parseCidr('10.0.2.0/24'), mtu: 1500, hostLoopback: true, dnsUpstreams: [], logLevel: 'warn' as const };
  assert.equal(buildDataPlaneConfig(base).ipv6, undefined, 'no IPv6 unless asked');
  assert.equal(buildDataPlaneConfig({ ...base, ipv6: null }).ipv6, undefined);
  assert.deepEqual(buildDataPlaneConfig({ ...base, ipv6: {} }).ipv6,
    { prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2' });
  assert.deepEqual(buildDataPlaneConfig({ ...base, dnsEnabled: false, ipv6: { outboundAddr: '2001:db8::7' } }).ipv6,
    { prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: null, linkLocal: 'fe80::2', outboundAddr: '2001:db8::7' });
  // The IPv6 plan does not move with --cidr (slirp4netns hard-codes it).
  assert.equal(buildDataPlaneConfig({ ...base, cidr: parseCidr('192.168.7.0/25'), ipv6: {} }).ipv6?.prefix, 'fd00::');
  // Plain data: survives structured clone to the workers.
  const c = buildDataPlaneConfig({ ...base, ipv6: {} });
  assert.deepEqual(structuredClone(c), c);
});
