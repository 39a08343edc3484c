import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ipv4ToString } from '../../src/wire/addr';
import { KernelError } from '../../src/kernel/errors';
import { allocateAddress, chooseSubnet, defaultPools, macForAddress, routesFromIpJson, type Occupied } from '../../src/kernel/ipam';
import { cidrToString, parseAddress, parseCidr } from '../../src/kernel/validate';

const occ = (c: string, owner = c): Occupied => ({ cidr: parseCidr(c), owner });

test("pools are Docker's, in Docker's order", () => {
  const p = defaultPools().map(cidrToString);
  assert.equal(p[0], '172.17.0.0/16');
  assert.equal(p[14], '172.31.0.0/16');
  assert.equal(p[15], '192.168.0.0/20');
  assert.equal(p[30], '192.168.240.0/20');
  assert.equal(p.length, 31);
});

test('the first pool free of routes and networks is chosen', () => {
  assert.equal(cidrToString(chooseSubnet([])), '172.17.0.0/16');
  assert.equal(cidrToString(chooseSubnet([occ('172.17.0.0/16'), occ('172.18.5.0/24')])), '172.19.0.0/16');
  // a wide route covering all 172.16/12 pushes us to 192.168/16 in /20s
  assert.equal(cidrToString(chooseSubnet([occ('172.16.0.0/12'), occ('192.168.0.0/24')])), '192.168.16.0/20');
});

test('exhausted pools are a coded error', () => {
  assert.throws(() => chooseSubnet([occ('172.16.0.0/12'), occ('192.168.0.0/16')]),
    (e: unknown) => e instanceof KernelError && e.code === 'ERR_POOL_EXHAUSTED');
});

test('routes from ip -json route', () => {
  const json = JSON.stringify([
    { dst: 'default', gateway: '198.51.100.254', dev: 'eth0' },
    { dst: '198.51.100.0/24', dev: 'eth0' },
    { dst: '10.0.0.7', dev: 'tun0' },
    { dst: 'fe80::/64' },
  ]);
  assert.deepEqual(routesFromIpJson(json).map(cidrToString), ['198.51.100.0/24', '10.0.0.7/32']);
  assert.deepEqual(routesFromIpJson('not json'), []);
});

test('addresses: lowest free, skipping gateway, released ones reused', () => {
  const c = parseCidr('10.5.0.0/29'); // .1 gw, .2-.6 hosts, .7 broadcast
  const gw = parseAddress('10.5.0.1');
  const used = new Set<number>();
  const got: string[] = [];
  for (let i = 0; i < 5; i++) {
    const a = allocateAddress(c, gw, used);
    used.add(a);
    got.push(ipv4ToString(a));
  }
  assert.deepEqual(got, ['10.5.0.2', '10.5.0.3', '10.5.0.4', '10.5.0.5', '10.5.0.6']);
  assert.throws(() => allocateAddress(c, gw, used), (e: unknown) => e instanceof KernelError && e.code === 'ERR_POOL_EXHAUSTED');
  used.delete(parseAddress('10.5.0.3'));
  assert.equal(ipv4ToString(allocateAddress(c, gw, used)), '10.5.0.3');
  // a gateway elsewhere than .1 frees .1
  assert.equal(ipv4ToString(allocateAddress(c, parseAddress('10.5.0.6'), new Set())), '10.5.0.1');
});

test("MACs are Docker's 02:42 + address", () => {
  assert.equal(macForAddress(parseAddress('172.17.0.2')), '02:42:ac:11:00:02');
  assert.equal(macForAddress(parseAddress('192.168.16.255')), '02:42:c0:a8:10:ff');
});
