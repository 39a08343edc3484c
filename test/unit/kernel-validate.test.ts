import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { KernelError } from '../../src/kernel/errors';
import {
  checkHostAddress, checkIfname, checkName, cidrsOverlap, cidrToString, parseAddress, parseCidr, parseMacAddress,
  parsePortSpec, portSpecToString,
} from '../../src/kernel/validate';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KernelError, `not a KernelError: ${String(e)}`);
    return e.code;
  }
  return 'no error';
}

test('addresses are parsed strictly (nothing nft could resolve through DNS)', () => {
  assert.equal(parseAddress('172.17.0.2'), 0xac110002);
  for (const bad of ['300.1.1.1', '1.2.3', 'localhost', '01.2.3.4', '1.2.3.4 ', '1.2.3.4;drop', '', '::1']) {
    assert.equal(code(() => parseAddress(bad)), 'ERR_BAD_VALUE', bad);
  }
});

test('CIDRs: strict, host bits zero, prefix 8..30', () => {
  assert.equal(cidrToString(parseCidr('10.1.0.0/16')), '10.1.0.0/16');
  for (const bad of ['10.1.0.1/16', '10.0.0.0/31', '10.0.0.0/7', '10.0.0.0', '10.0.0.0/016', 'x/16', '10.0.0.0/16/1']) {
    assert.equal(code(() => parseCidr(bad)), 'ERR_BAD_VALUE', bad);
  }
  assert.ok(cidrsOverlap(parseCidr('10.0.0.0/8'), parseCidr('10.9.0.0/16')));
  assert.ok(!cidrsOverlap(parseCidr('10.0.0.0/24'), parseCidr('10.0.1.0/24')));
});

test('host addresses exclude network and broadcast', () => {
  const c = parseCidr('192.168.5.0/24');
  checkHostAddress(c, parseAddress('192.168.5.254'), 'x');
  assert.equal(code(() => checkHostAddress(c, parseAddress('192.168.5.0'), 'x')), 'ERR_BAD_VALUE');
  assert.equal(code(() => checkHostAddress(c, parseAddress('192.168.5.255'), 'x')), 'ERR_BAD_VALUE');
  assert.equal(code(() => checkHostAddress(c, parseAddress('192.168.6.1'), 'x')), 'ERR_BAD_VALUE');
});

test('names, MACs and interface names', () => {
  assert.equal(checkName('web_1.a-b', 'network'), 'web_1.a-b');
  for (const bad of ['', '-x', 'a b', 'a;b', 'x'.repeat(65), 'container:x', '../x']) {
    assert.equal(code(() => checkName(bad, 'network')), 'ERR_BAD_VALUE', bad);
  }
  assert.equal(parseMacAddress('02:42:AC:11:00:02'), '02:42:ac:11:00:02');
  assert.equal(code(() => parseMacAddress('01:00:5e:00:00:01')), 'ERR_BAD_VALUE');
  assert.equal(code(() => parseMacAddress('02:42:ac:11:00')), 'ERR_BAD_VALUE');
  assert.equal(checkIfname('tsw-br-0123abcd'), 'tsw-br-0123abcd');
  assert.equal(code(() => checkIfname('eth1')), 'ERR_STATE_CORRUPT');
  assert.equal(code(() => checkIfname('tsw-br-0123abcdef')), 'ERR_STATE_CORRUPT');
});

test('publish specs follow docker -p', () => {
  assert.deepEqual(parsePortSpec('8080:80'), { hostPort: 8080, containerPort: 80, proto: 'tcp' });
  assert.deepEqual(parsePortSpec('127.0.0.1:53:5353/udp'), { hostIp: '127.0.0.1', hostPort: 53, containerPort: 5353, proto: 'udp' });
  assert.deepEqual(parsePortSpec('0.0.0.0:1:2'), { hostPort: 1, containerPort: 2, proto: 'tcp' });
  assert.equal(portSpecToString(parsePortSpec('1.2.3.4:8080:80/tcp')), '1.2.3.4:8080:80/tcp');
  for (const bad of ['80', '0:80', '65536:80', '80:80/sctp', 'a:80:80', '1.2.3.4:5:6:7', '8080-8081:80', '300.0.0.1:80:80']) {
    assert.equal(code(() => parsePortSpec(bad)), 'ERR_BAD_VALUE', bad);
  }
});
