import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseRunKernelArgs } from '../../src/cli/network';
import { ruleInput } from '../../src/kernel/reconcile';
import { renderRuleset } from '../../src/kernel/nft-rules';
import { emptyState } from '../../src/kernel/state';

test('run arguments: repeated --publish, = forms, -- and the first positional end the options', () => {
  assert.deepEqual(parseRunKernelArgs(['--network', 'web', '--name=api', '-p', '8080:80', '--publish=127.0.0.1:53:53/udp',
    '--ip', '172.18.0.9', '--mac', '02:42:ac:12:00:09', '--', 'nginx', '-g', 'daemon off;']), {
    network: 'web', name: 'api', publish: ['8080:80', '127.0.0.1:53:53/udp'], ip: '172.18.0.9', mac: '02:42:ac:12:00:09',
    command: ['nginx', '-g', 'daemon off;'],
  });
  assert.deepEqual(parseRunKernelArgs(['--network', 'none', 'sh', '-c', 'ip link']).command, ['sh', '-c', 'ip link']);
  assert.throws(() => parseRunKernelArgs(['--network', 'web']), /run needs a command/);
  assert.throws(() => parseRunKernelArgs(['--bogus', '--', 'true']), /unknown option --bogus/);
  assert.throws(() => parseRunKernelArgs(['--network']), /needs a value/);
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
