// The benchmark's pure parts: iperf3 -J parsing, /proc parsing, statistics, CLI options, the plan.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { clientArgs, Iperf3Error, parseTcp, parseUdp } from '../../bench/measure/iperf3';
import { parseStatTicks, parseStatusKb } from '../../bench/measure/proc';
import { median, percentileSorted } from '../../bench/measure/stats';
import { helpHasPublish } from '../../bench/peers/tapswitch';
import { configId } from '../../bench/peers/types';
import { parseArgs, plan } from '../../bench/run';

// Trimmed from real iperf3 3.12 output (TCP, -P 2 -R).
const TCP_JSON = JSON.stringify({
  start: { connected: [], version: 'iperf 3.12', test_start: { protocol: 'TCP', num_streams: 2, reverse: 1 } },
  intervals: [],
  end: {
    streams: [{ sender: {}, receiver: {} }, { sender: {}, receiver: {} }],
    sum_sent: { start: 0, end: 1.00005, seconds: 1.00005, bytes: 2052587520, bits_per_second: 16419879166.041697, retransmits: 3, sender: false },
    sum_received: { start: 0, end: 1.000022, seconds: 1.000022, bytes: 2041315328, bits_per_second: 16330163360.40607, sender: false },
    cpu_utilization_percent: { host_total: 85.0 },
  },
});

// Trimmed from real iperf3 3.12 output (UDP, -b 500M -l 1400).
const UDP_JSON = JSON.stringify({
  end: {
    streams: [{ udp: {} }],
    sum: { start: 0, end: 1.00019, seconds: 1.00019, bytes: 62486200, bits_per_second: 499836117.5354237, jitter_ms: 0.00405, lost_packets: 528, packets: 44633, lost_percent: 1.1829812022494566, sender: true },
    sum_sent: { start: 0, end: 1.000107, seconds: 1.000107, bytes: 62486200, bits_per_second: 499836117.5354237, jitter_ms: 0, lost_packets: 0, packets: 44633, lost_percent: 0, sender: true },
    sum_received: { start: 0, end: 1.00019, seconds: 1.00019, bytes: 61747000, bits_per_second: 493882162.3891461, jitter_ms: 0.00405, lost_packets: 528, packets: 44633, lost_percent: 1.1829812022494566, sender: false },
  },
});

describe('bench: iperf3 JSON', () => {
  test('TCP: receiver-side rate and bytes, sender retransmits, stream count', () => {
    const r = parseTcp(TCP_JSON);
    assert.equal(r.bitsPerSecond, 16330163360.40607);
    assert.equal(r.bytes, 2041315328);
    assert.equal(r.seconds, 1.000022);
    assert.equal(r.retransmits, 3);
    assert.equal(r.streams, 2);
  });

  test('TCP: missing retransmits (e.g. reverse tests on some kernels) is null, not an error', () => {
    const doc = JSON.parse(TCP_JSON) as { end: { sum_sent: Record<string, unknown> } };
    delete doc.end.sum_sent.retransmits;
    assert.equal(parseTcp(JSON.stringify(doc)).retransmits, null);
  });

  test('UDP with sum_received: the receiver view', () => {
    const u = parseUdp(UDP_JSON);
    assert.equal(u.receivedBitsPerSecond, 493882162.3891461);
    assert.equal(u.sentBitsPerSecond, 499836117.5354237);
    assert.equal(u.lostPackets, 528);
    assert.equal(u.packets, 44633);
    assert.ok(Math.abs(u.lostPercent - 1.183) < 0.001);
  });

  test('UDP from an older iperf3 (only end.sum): received rate derived from the loss', () => {
    const doc = JSON.parse(UDP_JSON) as { end: Record<string, unknown> };
    delete doc.end.sum_sent;
    delete doc.end.sum_received;
    const u = parseUdp(JSON.stringify(doc));
    assert.ok(Math.abs(u.receivedBitsPerSecond - 499836117.5354237 * (1 - 0.011829812022494566)) < 1);
    assert.equal(u.lostPackets, 528);
  });

  test('an iperf3 error document and non-JSON output are errors with the message', () => {
    assert.throws(() => parseTcp(JSON.stringify({ start: {}, intervals: [], end: {}, error: 'unable to connect to server: Connection refused' })),
      (e: unknown) => e instanceof Iperf3Error && /Connection refused/.test(e.message));
    assert.throws(() => parseTcp('iperf3: error - unable to connect'), Iperf3Error);
    assert.throws(() => parseTcp(JSON.stringify({ end: { sum_sent: {} } })), /sum_received/);
    assert.throws(() => parseUdp(JSON.stringify({ end: { sum: { bits_per_second: 'fast' } } })), /bits_per_second/);
  });

  test('client arguments', () => {
    assert.deepEqual(clientArgs({ host: '10.0.2.2', port: 5201, seconds: 5 }), ['-c', '10.0.2.2', '-p', '5201', '-t', '5', '-J', '--connect-timeout', '5000']);
    const a = clientArgs({ host: 'h', port: 1, seconds: 2, reverse: true, parallel: 4 });
    assert.ok(a.includes('-R'));
    assert.deepEqual(a.slice(a.indexOf('-P'), a.indexOf('-P') + 2), ['-P', '4']);
    const u = clientArgs({ host: 'h', port: 1, seconds: 2, udpRate: '1G' });
    assert.deepEqual(u.slice(u.indexOf('-u')), ['-u', '-b', '1G', '-l', '1400']);
    assert.ok(!clientArgs({ host: 'h', port: 1, seconds: 2, parallel: 1 }).includes('-P'));
  });
});

describe('bench: /proc parsing', () => {
  test('utime + stime, with spaces and parentheses in the command name', () => {
    const stat = '1234 (node (worker) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 500 1000 2000';
    assert.equal(parseStatTicks(stat), 325);
    assert.throws(() => parseStatTicks('garbage'));
  });

  test('VmHWM from /proc/PID/status', () => {
    const status = 'Name:\tnode\nVmPeak:\t 1200000 kB\nVmHWM:\t  151552 kB\nVmRSS:\t  140000 kB\n';
    assert.equal(parseStatusKb(status, 'VmHWM'), 151552);
    assert.ok(Number.isNaN(parseStatusKb(status, 'VmSwap')));
  });
});

describe('bench: statistics', () => {
  test('median of odd and even counts, ignoring non-finite values', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([5, NaN, 1, Infinity, 3]), 3);
    assert.ok(Number.isNaN(median([])));
  });

  test('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentileSorted(xs, 50), 50);
    assert.equal(percentileSorted(xs, 99), 99);
    assert.equal(percentileSorted(xs, 100), 100);
    assert.equal(percentileSorted([7], 99), 7);
    assert.ok(Number.isNaN(percentileSorted([], 50)));
  });
});

describe('bench: options and plan', () => {
  test('defaults and flags', () => {
    const d = parseArgs([]);
    assert.equal(d.duration, 5);
    assert.equal(d.repeat, 1);
    assert.equal(d.quick, false);
    assert.deepEqual(d.only, ['tapswitch', 'slirp4netns', 'pasta', 'veth']);
    const q = parseArgs(['--quick', '--only', 'tapswitch,veth', '--repeat', '3']);
    assert.equal(q.duration, 2);
    assert.equal(q.repeat, 3);
    assert.deepEqual(q.only, ['tapswitch', 'veth']);
    assert.equal(parseArgs(['--quick', '--duration', '7']).duration, 7);
    assert.throws(() => parseArgs(['--only', 'vpnkit']), /unknown system vpnkit/);
    assert.throws(() => parseArgs(['--duration', '0']), /--duration/);
    assert.throws(() => parseArgs(['--bogus']), /unknown option/);
  });

  test('the plan: both MTUs per userspace peer, queue rows only for the 4-stream tests', () => {
    const ids = plan(['tapswitch', 'slirp4netns', 'pasta', 'veth']).map((c) => c.id);
    assert.deepEqual(ids, ['tapswitch@1500', 'tapswitch@65520', 'tapswitch@1500q2', 'tapswitch@65520q2',
      'slirp4netns@1500', 'slirp4netns@65520', 'pasta@1500', 'pasta@65520', 'veth']);
    const q2 = plan(['tapswitch']).find((c) => c.id === 'tapswitch@1500q2');
    assert.deepEqual(q2?.tasks, ['tcp_c2h_4', 'tcp_h2c_4']);
    assert.deepEqual(plan(['veth']).map((c) => c.id), ['veth']);
    assert.equal(configId({ system: 'slirp4netns', mtu: 65520 }), 'slirp4netns@65520');
  });

  test('--publish detection from `tapswitch run --help`', () => {
    assert.equal(helpHasPublish('  -m, --mtu N   MTU\n      --queues N  queues\n'), false);
    assert.equal(helpHasPublish('  -p, --publish [IP:]HOSTPORT:PORT[/PROTO]  forward a host port\n'), true);
    assert.equal(helpHasPublish('      --publish-all  x\n'), false);
  });
});
