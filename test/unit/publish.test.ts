import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { describeRule, parsePublish } from '../../src/control/publish';
import { TapswitchError } from '../../src/control/errors';
import { parseRun } from '../../src/cli/main';

const GUEST = 0x0a000264; // 10.0.2.100

test('publish: Docker forms become one rule per port', () => {
  assert.deepEqual(parsePublish('8080:80', GUEST), [
    { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 8080, guestAddr: '10.0.2.100', guestPort: 80 }]);
  assert.deepEqual(parsePublish('127.0.0.1:8081:81/tcp', GUEST), [
    { proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 8081, guestAddr: '10.0.2.100', guestPort: 81 }]);
  assert.deepEqual(parsePublish('5353:53/udp', GUEST), [
    { proto: 'udp', hostAddr: '0.0.0.0', hostPort: 5353, guestAddr: '10.0.2.100', guestPort: 53 }]);
  assert.deepEqual(parsePublish('[::1]:8082:82', GUEST), [
    { proto: 'tcp', hostAddr: '::1', hostPort: 8082, guestAddr: '10.0.2.100', guestPort: 82 }]);
  assert.deepEqual(parsePublish(':8083:83', GUEST)[0]?.hostAddr, '0.0.0.0');
  const range = parsePublish('8000-8002:9000-9002/udp', GUEST);
  assert.deepEqual(range.map((r) => [r.hostPort, r.guestPort, r.proto]), [[8000, 9000, 'udp'], [8001, 9001, 'udp'], [8002, 9002, 'udp']]);
  assert.equal(describeRule(range[0]!), '0.0.0.0:8000 -> 10.0.2.100:9000/udp');
  assert.equal(describeRule(parsePublish('[::1]:1:2', GUEST)[0]!), '[::1]:1 -> 10.0.2.100:2/tcp');
});

test('publish: malformed specs are ERR_BAD_VALUE naming the spec', () => {
  for (const bad of ['80', '8080:80/sctp', '0:80', '8080:65536', 'x:80', '1.2.3:8080:80', '8000-8002:80',
    '8000-8002:80-81', '8002-8000:80-82', '::1:8080:80', '[::1]8080:80', '[1.2.3.4]:80:80', '1:2:3:4', '']) {
    assert.throws(() => parsePublish(bad, GUEST), (e: unknown) => e instanceof TapswitchError && e.code === 'ERR_BAD_VALUE'
      && e.message.includes(JSON.stringify(bad)), bad);
  }
});

test('run: -p/--publish repeat and follow --cidr', () => {
  const o = parseRun(['-p', '8080:80', '--cidr', '192.168.7.0/25', '--publish=127.0.0.1:5353:53/udp', '--', 'sh']);
  assert.ok(o !== 'help');
  assert.deepEqual(o.publish?.map(describeRule), ['0.0.0.0:8080 -> 192.168.7.100:80/tcp', '127.0.0.1:5353 -> 192.168.7.100:53/udp']);
  const u = parseRun(['--network', 'userspace', 'sh']);
  assert.ok(u !== 'help');
  assert.deepEqual(u.publish, []);
});
