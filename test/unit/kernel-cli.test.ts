import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { checkKernelRunOptions, kernelResolvConf, type KernelRunOptions } from '../../src/control/kernel-run';
import { parseDriverOpts, parseUnpublish } from '../../src/control/kernel-networks';
import { KernelError } from '../../src/kernel/errors';
import { ruleInput } from '../../src/kernel/reconcile';
import { renderRuleset } from '../../src/kernel/nft-rules';
import { emptyState } from '../../src/kernel/state';

test('kernel run: flags that mean nothing in a mode are refused together, naming why', () => {
  const base = { publish: [] as string[], command: ['true'] };
  const err = (o: Partial<KernelRunOptions>): KernelError => {
    try {
      checkKernelRunOptions({ ...base, network: 'n1', ...o });
    } catch (e) {
      assert.ok(e instanceof KernelError);
      return e;
    }
    assert.fail('expected a refusal');
  };
  const host = err({ network: 'host', mtu: 1400, stats: true });
  assert.equal(host.code, 'ERR_BAD_VALUE');
  assert.match(host.oneLine(), /^--mtu, --stats are not allowed with --network host: CMD uses the host's network/);
  const join = err({ network: 'container:c1', publish: ['80:80'], name: 'x' });
  assert.equal(join.code, 'ERR_PUBLISH_REFUSED');
  assert.equal(join.exitCode, 65);
  assert.match(join.message, /--publish, --name are not allowed with --network container:c1/);
  assert.match(err({ network: 'none', dnsForward: '192.0.2.1' }).message, /--dns-forward is not allowed with --network none/);
  assert.match(err({ dnsForward: '192.0.2.1:5353' }).message, /cannot use a port other than 53/);
  assert.match(err({ dnsForward: '127.0.0.53' }).message, /loopback address is the container's own/);
  assert.equal(err({ command: [] }).code, 'ERR_USAGE');
  // What each mode does take
  for (const o of [{ network: 'n1', mtu: 1400, stats: true, dnsForward: '192.0.2.1', name: 'a', ip: '172.18.0.9', publish: ['80:80'] },
    { network: 'none', name: 'a' }, { network: 'container:a', dnsForward: '192.0.2.1:53' }, { network: 'host', hostLoopback: false }]) {
    assert.doesNotThrow(() => checkKernelRunOptions({ ...base, ...o }), JSON.stringify(o));
  }
});

test('kernel run resolv.conf: --dns-forward, else the host\'s reachable IPv4 nameservers; a warning when none is left', () => {
  const host = { nameservers: ['127.0.0.53', '192.0.2.1', 'fd00::1', '198.51.100.7'], carryOver: ['search example.org'] };
  const a = kernelResolvConf(undefined, host);
  assert.deepEqual(a.nameservers, ['192.0.2.1', '198.51.100.7']);
  assert.match(a.content, /^nameserver 192\.0\.2\.1\nnameserver 198\.51\.100\.7\nsearch example\.org\n$/m);
  assert.equal(a.warning, undefined);
  assert.deepEqual(kernelResolvConf('203.0.113.5:53', host).nameservers, ['203.0.113.5']);
  const b = kernelResolvConf(undefined, { nameservers: ['127.0.0.53'], carryOver: [] });
  assert.deepEqual(b.nameservers, []);
  assert.match(b.warning ?? '', /127\.0\.0\.53\) are on its loopback.*--dns-forward/);
});

test('network create -o: mtu (Docker\'s long name too); anything else is refused', () => {
  assert.deepEqual(parseDriverOpts([]), {});
  assert.deepEqual(parseDriverOpts(['mtu=1400']), { mtu: 1400 });
  assert.deepEqual(parseDriverOpts(['com.docker.network.driver.mtu=9000']), { mtu: 9000 });
  assert.throws(() => parseDriverOpts(['mtu=12']), /invalid MTU: 12/);
  assert.throws(() => parseDriverOpts(['mtu']), /has no value/);
  assert.throws(() => parseDriverOpts(['com.docker.network.bridge.name=x']), /unknown driver option "com\.docker\.network\.bridge\.name"/);
});

test('unpublish specs: [HOSTIP:]HOSTPORT[/proto], or the full publish spec', () => {
  assert.deepEqual(parseUnpublish('9090'), { hostPort: 9090, containerPort: 0, proto: 'tcp' });
  assert.deepEqual(parseUnpublish('127.0.0.1:53/udp'), { hostIp: '127.0.0.1', hostPort: 53, containerPort: 0, proto: 'udp' });
  assert.deepEqual(parseUnpublish('0.0.0.0:80'), { hostPort: 80, containerPort: 0, proto: 'tcp' });
  assert.throws(() => parseUnpublish('80/sctp'), /invalid publish protocol/);
  assert.throws(() => parseUnpublish('300.1.1.1:80'), /invalid host IP/);
});

test('the rule input is built from the records alone', () => {
  const s = emptyState();
  s.networks.push({ id: 'a'.repeat(64), name: 'web', driver: 'kernel', subnet: '172.17.0.0/16', gateway: '172.17.0.1',
    bridge: 'tsw-br-aaaaaaaa', bridgeMac: '02:00:00:00:00:01', internal: false, created: '' });
  s.containers.push({ id: 'b'.repeat(64), netns: 'tsw-bbbbbbbbbbbb', owner: { pid: 1, start: '1' }, created: '',
    endpoint: { network: 'a'.repeat(64), ip: '172.17.0.2', mac: '02:42:ac:11:00:02', hostVeth: 'tsw-vbbbbbbbbbb',
      ports: [{ hostPort: 80, containerPort: 8080, proto: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 81, containerPort: 8080, proto: 'tcp' }] } });
  s.containers.push({ id: 'c'.repeat(64), netns: 'tsw-cccccccccccc', owner: { pid: 1, start: '1' }, created: '' });
  const input = ruleInput(s);
  assert.deepEqual(input.networks, [{ bridge: 'tsw-br-aaaaaaaa', subnet: '172.17.0.0/16', internal: false }]);
  assert.deepEqual(input.ports, [
    { hostPort: 80, containerIp: '172.17.0.2', containerPort: 8080, proto: 'tcp' },
    { hostIp: '127.0.0.1', hostPort: 81, containerIp: '172.17.0.2', containerPort: 8080, proto: 'tcp' },
  ]);
  const script = renderRuleset(input);
  assert.match(script, /elements = \{ 80 : 172\.17\.0\.2 \. 8080 \}/);
  assert.match(script, /elements = \{ 127\.0\.0\.1 \. 81 : 172\.17\.0\.2 \. 8080 \}/);
});
