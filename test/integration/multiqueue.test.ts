// Multi-queue flow ownership against the kernel: with --queues 2 the container's kernel spreads flows
// over both TAP queues, and every frame of a flow must reach the worker that owns the flow's host
// socket (the kernel steers a flow to the queue that last wrote it). A frame landing on the wrong
// worker would find no flow there and be answered with RST (tcp_no_flow_rst), breaking the transfer.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { HOST_ADDR, OUTSIDE_ADDR, cleanup, dataPlaneMissing, ensureSandbox, makeOutside, runCli, startServer, type Server } from '../helpers/sandbox';

const CLIENT = path.join(__dirname, '..', 'helpers', 'container-client.js');
const MB = 1000 * 1000;

/** Parse the `--stats` table: counter -> per-column values (queue0, queue1, ..., total). */
function parseStats(stderr: string): { columns: string[]; rows: Map<string, number[]> } {
  const lines = stderr.split('\n');
  const at = lines.findIndex((l) => /^\s*counter\s+queue0/.test(l));
  assert.ok(at >= 0, `no per-queue stats table in:\n${stderr}`);
  const columns = lines[at]!.trim().split(/\s+/).slice(1);
  const rows = new Map<string, number[]>();
  for (const l of lines.slice(at + 1)) {
    const m = /^\s+(\S+)((?:\s+\d+)+)\s*$/.exec(l);
    if (!m) continue;
    rows.set(m[1]!, m[2]!.trim().split(/\s+/).map(Number));
  }
  return { columns, rows };
}

if (ensureSandbox(__filename)) {
  const missing = dataPlaneMissing();
  const servers: Record<string, Server> = {};
  before(async () => {
    if (missing) return;
    const outside = await makeOutside();
    servers.sha = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', 'sha256']);
    servers.send = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', `send:${5 * MB}`]);
  });
  after(() => cleanup());

  test('--queues 2: flows spread over both workers, each flow stays with its owner, data intact', { skip: missing ?? false, timeout: 120_000 }, async (t) => {
    const probes: object[] = [];
    for (let i = 0; i < 6; i++) {
      probes.push({ kind: 'tcp-upload', host: OUTSIDE_ADDR, port: servers.sha!.port, bytes: 5 * MB });
      probes.push({ kind: 'tcp-download', host: OUTSIDE_ADDR, port: servers.send!.port, bytes: 5 * MB });
    }
    const r = await runCli(['run', '--network', 'userspace', '--queues', '2', '--stats', '--', process.execPath, CLIENT, JSON.stringify({ probes, parallel: true })], { timeoutMs: 100_000 });
    assert.equal(r.code, 0, r.stderr);
    const results = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: Array<Record<string, unknown>> }).results;
    assert.equal(results.length, probes.length);
    for (const [i, res] of results.entries()) {
      assert.match(String(res.greeting), new RegExp(`^you are ${HOST_ADDR.replace(/\./g, '\\.')}:`), `probe ${i}: ${JSON.stringify(res)}`);
      if (i % 2 === 0) assert.equal(res.restText, `sha256 ${String(res.sentSha256)} ${5 * MB}\n`, `upload ${i}`);
      else assert.equal(res.restSha256, res.expectSha256, `download ${i}`);
    }
    const { columns, rows } = parseStats(r.stderr);
    assert.deepEqual(columns, ['queue0', 'queue1', 'total']);
    const opened = rows.get('tcp_flows_opened') ?? [0, 0, 0];
    t.diagnostic(`flows opened per queue: ${opened.join(' / ')}`);
    assert.equal(opened[2], 12, 'twelve flows in all');
    assert.ok(opened[0]! > 0 && opened[1]! > 0, `both workers own flows: ${opened.join(' / ')}`);
    assert.equal(rows.get('tcp_no_flow_rst')?.[2] ?? 0, 0, 'no frame reached a worker that does not own its flow');
  });
}
