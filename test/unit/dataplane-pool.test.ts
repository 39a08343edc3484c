import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { DataPlanePool, sumCounters } from '../../src/control/dataplane-pool';
import { buildDataPlaneConfig, parseCidr } from '../../src/control/config';
import { Logger } from '../../src/control/log';
import { TapswitchError } from '../../src/control/errors';

const workerFile = path.join(__dirname, '..', 'helpers', 'fake-worker.js');
const config = buildDataPlaneConfig({ cidr: parseCidr('10.0.2.0/24'), mtu: 1500, hostLoopback: true, dnsUpstreams: [], logLevel: 'info' });

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger('debug', (l) => lines.push(l)), lines };
}

test('sumCounters adds by name', () => {
  assert.deepEqual(sumCounters([{ a: 1, b: 2 }, { a: 3 }, {}]), { a: 4, b: 2 });
});

test('one task per queue: ready, log forwarding, stats, stop', async () => {
  const { log, lines } = capture();
  const pool = new DataPlanePool({ fds: [100, 101], vnetHdr: true, config, log, workerFile });
  await pool.start();
  const s = await pool.stats();
  assert.deepEqual(s.total, { frames_rx: 21, frames_tx: 10 });
  const final = await pool.stop();
  assert.deepEqual(final.perQueue, [{ frames_rx: 10, frames_tx: 5 }, { frames_rx: 11, frames_tx: 5 }]);
  assert.ok(lines.some((l) => l === 'tapswitch: info: queue 1: fake queue 1 serving fd 101\n'), lines.join(''));
});

test('a crashing worker is restarted, then given up on with a coded error', async () => {
  const { log, lines } = capture();
  let fatal: TapswitchError | undefined;
  const pool = new DataPlanePool({ fds: [-2], vnetHdr: true, config, log, workerFile, maxRestarts: 2, onFatal: (e) => { fatal = e; } });
  await pool.start();
  for (let i = 0; i < 100 && !fatal; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(fatal, 'onFatal was called');
  assert.equal(fatal.code, 'ERR_DATAPLANE');
  assert.equal(fatal.exitCode, 70);
  assert.equal(lines.filter((l) => l.includes('restarting its worker')).length, 2);
  assert.ok(lines.some((l) => l.startsWith('tapswitch: error: queue 0: data-plane worker failed: fake crash after ready')));
  await pool.stop();
});

test('start fails when a queue crashes before ready beyond the budget, or never gets ready', async () => {
  const { log } = capture();
  const crashing = new DataPlanePool({ fds: [-1], vnetHdr: true, config, log, workerFile, maxRestarts: 1 });
  await assert.rejects(crashing.start(), (e: unknown) => e instanceof TapswitchError && e.code === 'ERR_DATAPLANE');
  await crashing.stop();
  const silent = new DataPlanePool({ fds: [-3], vnetHdr: true, config, log, workerFile, readyTimeoutMs: 300 });
  await assert.rejects(silent.start(), /did not become ready \(queues 0\)/);
  await silent.stop();
});

test('a missing worker file is ERR_NO_WORKER', () => {
  assert.throws(() => new DataPlanePool({ fds: [1], vnetHdr: true, config, log: capture().log, workerFile: '/nonexistent/task.js' }),
    (e: unknown) => e instanceof TapswitchError && e.code === 'ERR_NO_WORKER');
});

test('hostFwd(): add/list/remove go to queue 0\'s worker; a restarted worker re-opens the forwards under their ids', async () => {
  const { log, lines } = capture();
  const pool = new DataPlanePool({ fds: [100, 101], vnetHdr: true, config, log, workerFile });
  await pool.start();
  const fwd = pool.hostFwd();
  const rule = (hostPort: number) => ({ proto: 'tcp' as const, hostAddr: '0.0.0.0', hostPort, guestAddr: '10.0.2.100', guestPort: 80 });
  const a = await fwd.add(rule(8080));
  const b = await fwd.add(rule(8081));
  assert.ok(a.ok && b.ok);
  assert.deepEqual([a.entry.id, b.entry.id], [1, 2]);
  assert.deepEqual(await fwd.add(rule(8080)), { ok: false, reason: 'tcp 0.0.0.0:8080 collides with forward 1' });
  assert.equal(await fwd.remove(1), 'removed');
  assert.equal(await fwd.remove(1), 'not-found');
  // This add makes the fake worker fail: the pool restarts it and re-opens forward 2 as id 2.
  assert.deepEqual(await fwd.add(rule(6666)), { ok: false, reason: 'the data plane is not running' });
  for (let i = 0; i < 100 && !lines.some((l) => l.includes('re-opening 1 port forward')); i++) await new Promise((r) => setTimeout(r, 20));
  let listed: readonly { id: number; hostPort: number }[] = [];
  for (let i = 0; i < 100; i++) {
    listed = await fwd.list();
    if (listed.length === 1 && listed[0]?.id === 2) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(listed.map((e) => [e.id, e.hostPort]), [[2, 8081]]);
  const c = await fwd.add(rule(8082));
  assert.ok(c.ok);
  assert.equal(c.entry.id, 3, 'ids are never reused');
  await pool.stop();
  assert.deepEqual(await fwd.add(rule(8083)), { ok: false, reason: 'the data plane is not running' });
});
