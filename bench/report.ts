// Turning results into the table on stdout, tapswitch-to-peer ratios, the JSON document and a
// hand-written SVG bar chart. Everything here is pure (no I/O) so it is unit-tested.

export interface MetricDef {
  id: string;
  label: string;
  unit: string;
  higherBetter: boolean;
  decimals: number;
  /** Compute ratios for this metric (not for loss or memory). */
  ratio: boolean;
}

export const METRICS: readonly MetricDef[] = [
  { id: 'tcp_c2h_1', label: 'TCP c->h 1 stream', unit: 'Gbit/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'tcp_h2c_1', label: 'TCP h->c 1 stream', unit: 'Gbit/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'tcp_c2h_4', label: 'TCP c->h 4 streams', unit: 'Gbit/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'tcp_h2c_4', label: 'TCP h->c 4 streams', unit: 'Gbit/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'udp_c2h', label: 'UDP c->h received', unit: 'Gbit/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'udp_loss', label: 'UDP c->h loss', unit: '%', higherBetter: false, decimals: 1, ratio: false },
  { id: 'rr_p50', label: 'TCP 1-byte RR p50', unit: 'us', higherBetter: false, decimals: 0, ratio: true },
  { id: 'rr_p99', label: 'TCP 1-byte RR p99', unit: 'us', higherBetter: false, decimals: 0, ratio: true },
  { id: 'rr_rate', label: 'TCP 1-byte RR rate', unit: 'k/s', higherBetter: true, decimals: 1, ratio: true },
  { id: 'crr_rate', label: 'TCP connect+RR rate', unit: 'k/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'pf_tcp', label: 'Port fwd TCP h->c', unit: 'Gbit/s', higherBetter: true, decimals: 2, ratio: true },
  { id: 'pf_rr32', label: 'Port fwd 32 clients RR', unit: 'k/s', higherBetter: true, decimals: 1, ratio: true },
  { id: 'cpu_c2h_1', label: 'CPU s/GB c->h 1 stream', unit: 's/GB', higherBetter: false, decimals: 2, ratio: true },
  { id: 'cpu_h2c_1', label: 'CPU s/GB h->c 1 stream', unit: 's/GB', higherBetter: false, decimals: 2, ratio: true },
  { id: 'rss_peak', label: 'Peak RSS (VmHWM)', unit: 'MiB', higherBetter: false, decimals: 0, ratio: false },
];

export function metricDef(id: string): MetricDef | undefined {
  return METRICS.find((m) => m.id === id);
}

export interface ConfigInfo {
  id: string;
  system: string;
  mtu: number;
  queues?: number;
  /** Why the whole configuration was not measured. */
  skipped?: string;
}

export interface ResultRow {
  config: string;
  metric: string;
  /** Median of the samples; absent when not measured (see `na`). */
  value?: number;
  unit: string;
  samples: number[];
  /** "n/a: ..." or an error text when there is no value. */
  na?: string;
  extra?: Record<string, number | string>;
}

export interface BenchDoc {
  schema: 'tapswitch-bench/1';
  date: string;
  options: { duration: number; repeat: number; quick: boolean; only: string[] };
  machine: Record<string, string | number>;
  peers: Record<string, string>;
  configs: ConfigInfo[];
  results: ResultRow[];
  notes: string[];
}

export function findResult(doc: Pick<BenchDoc, 'results'>, config: string, metric: string): ResultRow | undefined {
  return doc.results.find((r) => r.config === config && r.metric === metric);
}

export function formatValue(v: number, decimals: number): string {
  if (!Number.isFinite(v)) return '-';
  return v.toFixed(decimals);
}

function cell(doc: Pick<BenchDoc, 'results' | 'configs'>, c: ConfigInfo, m: MetricDef): string {
  if (c.skipped !== undefined) return 'skip';
  const r = findResult(doc, c.id, m.id);
  if (r === undefined) return '';
  if (r.value !== undefined && Number.isFinite(r.value)) return formatValue(r.value, m.decimals);
  if (r.na !== undefined && r.na.startsWith('n/a')) return 'n/a';
  return 'err';
}

function pad(s: string, w: number, right: boolean): string {
  return right ? s.padStart(w) : s.padEnd(w);
}

/** Align rows of cells into text columns (first column left-aligned, the rest right-aligned). */
export function alignRows(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows.map((r) => r.map((c, i) => pad(c, widths[i] ?? 0, i > 0)).join('  ').trimEnd()).join('\n');
}

/** The main table: one row per metric that has any entry, one column per configuration. */
export function formatTable(doc: Pick<BenchDoc, 'results' | 'configs'>): string {
  const configs = doc.configs;
  const rows: string[][] = [['metric', 'unit', ...configs.map((c) => c.id)]];
  for (const m of METRICS) {
    const cells = configs.map((c) => cell(doc, c, m));
    if (cells.every((x) => x === '' || x === 'skip')) continue;
    rows.push([m.label, m.unit, ...cells]);
  }
  const out = [alignRows(rows)];
  const notes = new Set<string>();
  for (const c of configs) if (c.skipped !== undefined) notes.add(`${c.id}: skipped: ${c.skipped}`);
  for (const r of doc.results) if (r.value === undefined && r.na !== undefined) notes.add(`${r.config} ${metricDef(r.metric)?.label ?? r.metric}: ${r.na}`);
  if (notes.size > 0) out.push('', ...[...notes].map((n) => `  ${n}`));
  return out.join('\n');
}

/**
 * The spread behind each median: "min..max" of the samples per metric and configuration (only
 * metrics with more than one sample anywhere). Empty when every cell had one sample.
 */
export function formatSpread(doc: Pick<BenchDoc, 'results' | 'configs'>): string {
  const configs = doc.configs.filter((c) => c.skipped === undefined);
  const rows: string[][] = [['metric (min..max)', 'unit', ...configs.map((c) => c.id)]];
  for (const m of METRICS) {
    let multi = false;
    const cells = configs.map((c) => {
      const r = findResult(doc, c.id, m.id);
      const xs = (r?.samples ?? []).filter((x) => Number.isFinite(x));
      if (xs.length > 1) multi = true;
      if (xs.length === 0) return '';
      return `${formatValue(Math.min(...xs), m.decimals)}..${formatValue(Math.max(...xs), m.decimals)}`;
    });
    if (multi) rows.push([m.label, m.unit, ...cells]);
  }
  return rows.length > 1 ? alignRows(rows) : '';
}

export interface Ratio {
  metric: string;
  tapswitch: string;
  peer: string;
  /** > 1 means tapswitch is better (higher throughput, or lower latency / CPU). */
  factor: number;
}

/** How many times better tapswitch is than `peer` on one metric; NaN when either is missing. */
export function ratioOf(m: MetricDef, tapswitch: number | undefined, peer: number | undefined): number {
  if (tapswitch === undefined || peer === undefined || !Number.isFinite(tapswitch) || !Number.isFinite(peer)) return NaN;
  if (tapswitch <= 0 || peer <= 0) return NaN;
  return m.higherBetter ? tapswitch / peer : peer / tapswitch;
}

/**
 * Ratios of each single-queue tapswitch configuration to the peers at the same MTU, and to the
 * kernel veth path (whatever its MTU).
 */
export function computeRatios(doc: Pick<BenchDoc, 'results' | 'configs'>): Ratio[] {
  const out: Ratio[] = [];
  const live = doc.configs.filter((c) => c.skipped === undefined);
  const ts = live.filter((c) => c.system === 'tapswitch' && (c.queues ?? 1) === 1);
  for (const t of ts) {
    const peers = live.filter((c) => c.system !== 'tapswitch' && (c.mtu === t.mtu || c.system === 'veth'));
    for (const p of peers) {
      for (const m of METRICS) {
        if (!m.ratio) continue;
        const f = ratioOf(m, findResult(doc, t.id, m.id)?.value, findResult(doc, p.id, m.id)?.value);
        if (Number.isFinite(f)) out.push({ metric: m.id, tapswitch: t.id, peer: p.id, factor: f });
      }
    }
  }
  return out;
}

export function formatFactor(f: number): string {
  if (!Number.isFinite(f)) return '-';
  return f >= 10 ? `${f.toFixed(0)}x` : `${f.toFixed(2)}x`;
}

/** Ratio table: rows = metrics, columns = "tapswitch@M/peer" pairs; plus the queues comparison. */
export function formatRatios(doc: Pick<BenchDoc, 'results' | 'configs'>): string {
  const ratios = computeRatios(doc);
  const pairs: string[] = [];
  for (const r of ratios) {
    const k = `${r.tapswitch}/${r.peer}`;
    if (!pairs.includes(k)) pairs.push(k);
  }
  const lines: string[] = [];
  if (pairs.length > 0) {
    const rows: string[][] = [['metric', ...pairs]];
    for (const m of METRICS) {
      const rs = pairs.map((k) => ratios.find((r) => r.metric === m.id && `${r.tapswitch}/${r.peer}` === k));
      if (rs.every((r) => r === undefined)) continue;
      rows.push([m.label, ...rs.map((r) => (r ? formatFactor(r.factor) : '-'))]);
    }
    lines.push('Ratios, tapswitch to each peer (> 1x: tapswitch better; for latency and CPU: peer / tapswitch):', alignRows(rows));
  }
  const q = formatQueues(doc);
  if (q !== '') lines.push('', q);
  return lines.join('\n');
}

/** "--queues 2 vs --queues 1" for the multi-stream rows, per MTU. */
export function formatQueues(doc: Pick<BenchDoc, 'results' | 'configs'>): string {
  const lines: string[] = [];
  for (const c2 of doc.configs.filter((c) => c.system === 'tapswitch' && (c.queues ?? 1) > 1 && c.skipped === undefined)) {
    const c1 = doc.configs.find((c) => c.system === 'tapswitch' && c.mtu === c2.mtu && (c.queues ?? 1) === 1);
    if (c1 === undefined) continue;
    for (const id of ['tcp_c2h_4', 'tcp_h2c_4']) {
      const m = metricDef(id) as MetricDef;
      const a = findResult(doc, c1.id, id)?.value;
      const b = findResult(doc, c2.id, id)?.value;
      if (a === undefined || b === undefined) continue;
      lines.push(`${m.label} at MTU ${c2.mtu}: --queues ${c2.queues} ${formatValue(b, 2)} vs --queues 1 ${formatValue(a, 2)} ${m.unit} = ${formatFactor(b / a)}`);
    }
  }
  return lines.length > 0 ? ['tapswitch multi-queue:', ...lines.map((l) => `  ${l}`)].join('\n') : '';
}

// ---- SVG ----

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const SYSTEM_COLORS: Record<string, [string, string]> = {
  // [MTU 1500 shade, MTU 65520 shade]
  tapswitch: ['#1f77b4', '#6baed6'],
  slirp4netns: ['#d62728', '#f28e8e'],
  pasta: ['#2ca02c', '#98df8a'],
  veth: ['#555555', '#999999'],
};

export function configColor(c: ConfigInfo): string {
  const pair = SYSTEM_COLORS[c.system] ?? ['#8c564b', '#c49c94'];
  if (c.system === 'tapswitch' && (c.queues ?? 1) > 1) return c.mtu > 1500 ? '#9467bd' : '#6a3d9a';
  return c.mtu > 1500 ? pair[1] : pair[0];
}

/** Metrics charted, one small panel each (its own axis), in this order. */
export const CHART_METRICS = ['tcp_c2h_1', 'tcp_h2c_1', 'tcp_c2h_4', 'tcp_h2c_4', 'udp_c2h', 'pf_tcp',
  'rr_rate', 'rr_p50', 'crr_rate', 'pf_rr32', 'cpu_c2h_1', 'cpu_h2c_1'];

/** A nice axis maximum: 1, 2, 2.5 or 5 times a power of ten, at least `v`. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= v) return k * p;
  return 10 * p;
}

function fmtShort(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/**
 * Small multiples: one panel per metric with its own axis; in each, one bar per configuration that
 * has a row for that metric (a value, or "n/a" text), labelled with its value.
 */
export function renderSvg(doc: Pick<BenchDoc, 'results' | 'configs' | 'date' | 'machine'>): string {
  const configs = doc.configs.filter((c) => c.skipped === undefined);
  const cols = 3;
  const pw = 300;
  const ph = 190;
  const gap = 20;
  const left = 20;
  const top = 50;
  const W = left * 2 + cols * pw + (cols - 1) * gap;
  const parts: string[] = [];
  const panels = CHART_METRICS.filter((id) => configs.some((c) => findResult(doc, c.id, id) !== undefined));
  panels.forEach((id, k) => {
    const m = metricDef(id) as MetricDef;
    const px = left + (k % cols) * (pw + gap);
    const py = top + Math.floor(k / cols) * (ph + gap);
    const rows = configs.map((c) => ({ c, r: findResult(doc, c.id, id) })).filter((x) => x.r !== undefined);
    const max = Math.max(0, ...rows.map((x) => (x.r?.value !== undefined && Number.isFinite(x.r.value) ? x.r.value : 0)));
    const axisMax = niceMax(max);
    const ax = px + 34;
    const aw = pw - 40;
    const plotTop = py + 30;
    const plotH = ph - 50;
    parts.push(`<text x="${px}" y="${py + 14}" font-size="11" font-weight="bold">${escapeXml(`${m.label} (${m.unit}, ${m.higherBetter ? 'higher' : 'lower'} better)`)}</text>`);
    for (let i = 0; i <= 2; i++) {
      const gy = plotTop + plotH - (plotH * i) / 2;
      parts.push(`<line x1="${ax}" y1="${gy.toFixed(1)}" x2="${ax + aw}" y2="${gy.toFixed(1)}" stroke="#ddd"/>`);
      parts.push(`<text x="${ax - 4}" y="${(gy + 4).toFixed(1)}" font-size="10" text-anchor="end">${escapeXml(String(+(axisMax * i / 2).toPrecision(3)))}</text>`);
    }
    const bw = rows.length > 0 ? aw / rows.length : aw;
    rows.forEach(({ c, r }, i) => {
      const x = ax + i * bw + 2;
      const w = Math.max(1, bw - 4);
      const v = r?.value;
      const cx = (x + w / 2).toFixed(1);
      if (v === undefined || !Number.isFinite(v)) {
        parts.push(`<text x="${cx}" y="${(plotTop + plotH - 4).toFixed(1)}" font-size="9" text-anchor="middle" fill="#999"><title>${escapeXml(`${c.id}: ${r?.na ?? 'no value'}`)}</title>n/a</text>`);
        return;
      }
      const h = (plotH * v) / axisMax;
      const y = plotTop + plotH - h;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" fill="${configColor(c)}"><title>${escapeXml(`${c.id} ${m.label}: ${formatValue(v, m.decimals)} ${m.unit}`)}</title></rect>`);
      parts.push(`<text x="${cx}" y="${(y - 2).toFixed(1)}" font-size="8" text-anchor="middle">${escapeXml(fmtShort(v))}</text>`);
    });
    parts.push(`<line x1="${ax}" y1="${plotTop + plotH}" x2="${ax + aw}" y2="${plotTop + plotH}" stroke="#333"/>`);
  });
  const rowsUsed = Math.ceil(panels.length / cols);
  const ly0 = top + rowsUsed * (ph + gap);
  configs.forEach((c, i) => {
    const lx = left + (i % 4) * 235;
    const ly = ly0 + Math.floor(i / 4) * 22;
    parts.push(`<rect x="${lx}" y="${ly}" width="14" height="14" fill="${configColor(c)}"/>`);
    parts.push(`<text x="${lx + 20}" y="${ly + 12}" font-size="12">${escapeXml(c.id)}</text>`);
  });
  const H = ly0 + 22 * Math.ceil(configs.length / 4) + 10;
  const sub = `${doc.date} · ${String(doc.machine.cpu ?? '')} · ${String(doc.machine.nproc ?? '')} CPUs · kernel ${String(doc.machine.kernel ?? '')} · bar order as in the legend`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="16" font-weight="bold">tapswitch benchmark</text>`,
    `<text x="${left}" y="38" font-size="11" fill="#555">${escapeXml(sub)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
