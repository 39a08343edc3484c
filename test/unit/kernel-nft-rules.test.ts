import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { portsClash, renderRuleset } from '../../src/kernel/nft-rules';

test('no networks: the script only removes our table', () => {
  assert.equal(renderRuleset({ networks: [], ports: [] }),
    'add table inet tapswitch\ndelete table inet tapswitch\n');
});

test('one network, published ports in exact-match maps, internal network isolated', () => {
  const s = renderRuleset({
    networks: [
      { bridge: 'tsw-br-aaaa0000', subnet: '172.17.0.0/16', internal: false },
      { bridge: 'tsw-br-bbbb0000', subnet: '172.18.0.0/16', internal: true },
    ],
    ports: [
      { hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80, proto: 'tcp' },
      { hostIp: '127.0.0.1', hostPort: 8081, containerIp: '172.17.0.2', containerPort: 80, proto: 'tcp' },
      { hostPort: 5353, containerIp: '172.17.0.3', containerPort: 53, proto: 'udp' },
    ],
  });
  const lines = s.split('\n');
  // replace-the-table idiom, in one transaction
  assert.deepEqual(lines.slice(0, 3), ['add table inet tapswitch', 'delete table inet tapswitch', 'table inet tapswitch {']);
  assert.match(s, /map hp_tcp \{ type inet_service : ipv4_addr \. inet_service; elements = \{ 8080 : 172\.17\.0\.2 \. 80 \} \}/);
  assert.match(s, /map hpa_tcp \{ type ipv4_addr \. inet_service : ipv4_addr \. inet_service; elements = \{ 127\.0\.0\.1 \. 8081 : 172\.17\.0\.2 \. 80 \} \}/);
  assert.match(s, /map hp_udp \{[^}]*elements = \{ 5353 : 172\.17\.0\.3 \. 53 \} \}/);
  assert.match(s, /map hpa_udp \{ type ipv4_addr \. inet_service : ipv4_addr \. inet_service; \}/);
  // never an interval concatenation for ports
  assert.doesNotMatch(s, /map hp[a]?_\w+ \{[^}]*interval/);
  // masquerade only for the non-internal subnet
  assert.match(s, /set masq_subnets \{ type ipv4_addr; flags interval; elements = \{ 172\.17\.0\.0\/16 \} \}/);
  // the internal network's chains: no dnat accept, outbound dropped
  const inB = s.slice(s.indexOf('chain in_tsw-br-bbbb0000'), s.indexOf('chain out_tsw-br-bbbb0000'));
  assert.doesNotMatch(inB, /ct status dnat/);
  assert.match(s, /chain out_tsw-br-bbbb0000 \{\n    drop\n/);
  assert.match(s, /chain out_tsw-br-aaaa0000 \{\n    accept\n/);
  // output hook uses a numeric priority (dstnat is refused there by nft 1.0.6)
  assert.match(s, /type nat hook output priority -100;/);
  // a forged loopback destination from outside is never translated
  assert.match(s, /type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local ip daddr != 127\.0\.0\.0\/8 jump hostports/);
  assert.match(s, /type nat hook output priority -100; policy accept;\n    fib daddr type local jump hostports/);
  // nor delivered to the host's loopback services (route_localnet is on for our bridges)
  assert.match(s, /chain input \{\n    type filter hook input priority filter; policy accept;\n    iifname @bridges ip daddr 127\.0\.0\.0\/8 ct status dnat accept\n    iifname @bridges ip daddr 127\.0\.0\.0\/8 drop\n  \}/);
});

test('port clashes: wildcard claims every address', () => {
  const w = { hostPort: 80, proto: 'tcp' as const };
  const l = { hostIp: '127.0.0.1', hostPort: 80, proto: 'tcp' as const };
  const o = { hostIp: '198.51.100.1', hostPort: 80, proto: 'tcp' as const };
  assert.ok(portsClash(w, l));
  assert.ok(portsClash(l, l));
  assert.ok(!portsClash(l, o));
  assert.ok(!portsClash(w, { hostPort: 80, proto: 'udp' }));
});
