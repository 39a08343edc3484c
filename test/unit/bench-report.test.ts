// The benchmark report: table, ratios, queue comparison, SVG.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  computeRatios, escapeXml, formatFactor, formatQueues, formatRatios, formatTable, METRICS, niceMax, ratioOf, renderSvg,
  type BenchDoc, type ConfigInfo, type ResultRow,
} from '../../bench/report';
import { selfTimes, selfTimesByFile, type CpuProfile } from '../../bench/profile';

function row(config: string, metric: string, value: number): ResultRow {
  return { config, metric, value, unit: METRICS.find((m) => m.id === metric)?.unit ?? '', samples: [value] };
}

function doc(): BenchDoc {
  const configs: ConfigInfo[] = [
    { id: 'tapswitch@1500', system: 'tapswitch', mtu: 1500, queues: 1 },
    { id: 'tapswitch@1500q2', system: 'tapswitch', mtu: 1500, queues: 2 },
    { id: 'slirp4netns@1500', system: 'slirp4netns', mtu: 1500 },
    { id: 'slirp4netns@65520', system: 'slirp4netns', mtu: 65520 },
    { id: 'pasta@1500', system: 'pasta', mtu: 1500, skipped: 'pasta not installed (Debian package passt)' },
    { id: 'veth', system: 'veth', mtu: 1500 },
  ];
  const results: ResultRow[] = [
    row('tapswitch@1500', 'tcp_c2h_1', 6.1),
    row('slirp4netns@1500', 'tcp_c2h_1', 1.0),
    row('slirp4netns@65520', 'tcp_c2h_1', 4.0),
    row('veth', 'tcp_c2h_1', 12.2),
    row('tapswitch@1500', 'rr_p50', 50),
    row('slirp4netns@1500', 'rr_p50', 100),
    row('tapswitch@1500', 'tcp_c2h_4', 4),
    row('tapswitch@1500q2', 'tcp_c2h_4', 6),
    row('tapswitch@1500', 'udp_loss', 3),
    row('slirp4netns@1500', 'udp_loss', 1),
    { config: 'tapswitch@1500', metric: 'pf_tcp', unit: 'Gbit/s', samples: [], na: 'n/a: not implemented yet (tapswitch run has no --publish)' },
    { config: 'veth', metric: 'crr_rate', unit: 'k/s', samples: [], na: 'error: rr-tool crr timed out' },
  ];
  return {
    schema: 'tapswitch-bench/1', date: '2026-11-23T08:00:00.000Z', options: { duration: 5, repeat: 1, quick: false, only: [] },
    machine: { kernel: '6.18', cpu: 'AMD <EPYC> & co', nproc: 2 }, peers: {}, configs, results, notes: [],
  };
}

describe('bench: table', () => {
  test('one column per configuration, values with the metric precision, n/a / err / skip cells and notes', () => {
    const t = formatTable(doc());
    const lines = t.split('\n');
    assert.match(lines[0] ?? '', /^metric\s+unit\s+tapswitch@1500\s+tapswitch@1500q2\s+slirp4netns@1500\s+slirp4netns@65520\s+pasta@1500\s+veth$/);
    const tcp = lines.find((l) => l.startsWith('TCP c->h 1 stream')) ?? '';
    assert.match(tcp, /Gbit\/s\s+6\.10\s+1\.00\s+4\.00\s+skip\s+12\.20$/);
    const pf = lines.find((l) => l.startsWith('Port fwd TCP')) ?? '';
    assert.match(pf, /\bn\/a\b/);
    const crr = lines.find((l) => l.startsWith('TCP connect+RR')) ?? '';
    assert.match(crr, /\berr\b/);
    assert.ok(t.includes('pasta@1500: skipped: pasta not installed (Debian package passt)'));
    assert.ok(t.includes('tapswitch@1500 Port fwd TCP h->c: n/a: not implemented yet'));
    assert.ok(!lines.some((l) => l.startsWith('Peak RSS')), 'rows without any value are left out');
  });
});

describe('bench: ratios', () => {
  test('higher-is-better metrics divide tapswitch by the peer, lower-is-better the other way', () => {
    const tcp = METRICS.find((m) => m.id === 'tcp_c2h_1');
    const p50 = METRICS.find((m) => m.id === 'rr_p50');
    assert.ok(tcp && p50);
    assert.equal(ratioOf(tcp, 6, 2), 3);
    assert.equal(ratioOf(p50, 50, 100), 2);
    assert.ok(Number.isNaN(ratioOf(tcp, 6, undefined)));
    assert.ok(Number.isNaN(ratioOf(tcp, 6, 0)));
  });

  test('tapswitch is compared with peers at its own MTU and with veth, never with itself or loss', () => {
    const rs = computeRatios(doc());
    const key = (r: { metric: string; tapswitch: string; peer: string }) => `${r.metric} ${r.tapswitch}/${r.peer}`;
    const keys = rs.map(key).sort();
    assert.deepEqual(keys, ['rr_p50 tapswitch@1500/slirp4netns@1500', 'tcp_c2h_1 tapswitch@1500/slirp4netns@1500', 'tcp_c2h_1 tapswitch@1500/veth']);
    assert.ok(Math.abs((rs.find((r) => r.peer === 'slirp4netns@1500' && r.metric === 'tcp_c2h_1')?.factor ?? 0) - 6.1) < 1e-9);
    assert.ok(Math.abs((rs.find((r) => r.peer === 'veth')?.factor ?? 0) - 0.5) < 1e-9);
    const text = formatRatios(doc());
    assert.match(text, /tapswitch@1500\/slirp4netns@1500/);
    assert.match(text, /TCP c->h 1 stream\s+6\.10x\s+0\.50x/);
    assert.match(text, /TCP 1-byte RR p50\s+2\.00x\s+-/);
  });

  test('queues 2 vs queues 1', () => {
    assert.match(formatQueues(doc()), /TCP c->h 4 streams at MTU 1500: --queues 2 6\.00 vs --queues 1 4\.00 Gbit\/s = 1\.50x/);
    assert.equal(formatFactor(12.34), '12x');
    assert.equal(formatFactor(NaN), '-');
  });
});

describe('bench: SVG', () => {
  test('a standalone SVG: a panel per charted metric, one bar per value, n/a text, escaped text, a legend of live configs', () => {
    const svg = renderSvg(doc());
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    const bars = svg.match(/<rect [^>]*><title>/g) ?? [];
    // tcp_c2h_1 x4 (tapswitch, slirp4netns@1500, slirp4netns@65520, veth) + tcp_c2h_4 x2 + rr_p50 x2.
    assert.equal(bars.length, 8);
    // Panels: the four metrics with rows (pf_tcp and crr_rate only as n/a); loss is not charted.
    assert.equal((svg.match(/font-weight="bold">(?!tapswitch benchmark)/g) ?? []).length, 5);
    assert.equal((svg.match(/>n\/a<\/text>/g) ?? []).length, 2);
    assert.ok(svg.includes('TCP 1-byte RR p50 (us, lower better)'));
    assert.ok(svg.includes('AMD &lt;EPYC&gt; &amp; co'));
    assert.ok(!svg.includes('<EPYC>'));
    assert.ok(!svg.includes('>pasta@1500<'), 'skipped configurations have no legend entry');
    assert.ok(svg.includes('>veth<'));
    // Every opened element is closed or self-closed.
    const open = (svg.match(/<(rect|text|line|title|svg)\b(?:[^>]*[^/])?>/g) ?? []).length;
    const close = (svg.match(/<\/(rect|text|line|title|svg)>/g) ?? []).length;
    assert.equal(open, close);
  });

  test('escaping and axis maxima', () => {
    assert.equal(escapeXml('a<b>&"c"'), 'a&lt;b&gt;&amp;&quot;c&quot;');
    assert.equal(niceMax(12.2), 20);
    assert.equal(niceMax(0.7), 1);
    assert.equal(niceMax(2.3), 2.5);
    assert.equal(niceMax(0), 1);
  });
});

describe('bench: CPU profile summary', () => {
  // A tiny hand-made .cpuprofile: root -> a (file x.js) -> b; samples charge the interval after each sample.
  const prof: CpuProfile = {
    startTime: 0,
    endTime: 10_000,
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1, columnNumber: -1 }, children: [2, 4] },
      { id: 2, callFrame: { functionName: 'a', url: 'file:///repo/dist/x.js', lineNumber: 9, columnNumber: 0 }, children: [3] },
      { id: 3, callFrame: { functionName: 'writev', url: '', lineNumber: -1, columnNumber: -1 } },
      { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1, columnNumber: -1 } },
    ],
    samples: [2, 3, 3, 4],
    timeDeltas: [0, 1000, 3000, 4000],
  };

  test('self time per function from samples and time deltas, with locations relative to the root', () => {
    const rows = selfTimes(prof, '/repo/');
    const by = new Map(rows.map((r) => [r.name, r]));
    assert.equal(by.get('a')?.ms, 1);
    assert.equal(by.get('a')?.location, 'dist/x.js:10');
    assert.equal(by.get('writev')?.ms, 7);
    assert.equal(by.get('(idle)')?.ms, 2.5, 'the last sample gets the mean interval');
    assert.equal(rows[0]?.name, 'writev');
    const files = selfTimesByFile(rows);
    assert.deepEqual(files.map((f) => f.file), ['(native)', '(idle)', 'dist/x.js']);
  });
});
