import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { KernelError } from '../../src/kernel/errors';
import { hasCapability } from '../../src/kernel/host';
import { emptyState, isAlive, processStart, selfId, StateStore, stateDir } from '../../src/kernel/state';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-state-'));
}

test('save is atomic and needs the lock', () => {
  const store = new StateStore(tmpdir());
  const s = emptyState();
  assert.throws(() => store.save(s), (e: unknown) => e instanceof KernelError && e.code === 'ERR_INTERNAL');
  store.withLock(() => {
    s.table = true;
    store.save(s);
  });
  assert.equal(store.load().table, true);
  assert.deepEqual(fs.readdirSync(store.dir).sort(), ['kernel.json']);
});

test('a missing file is an empty state; garbage is a coded error', () => {
  const store = new StateStore(tmpdir());
  assert.deepEqual(store.load(), emptyState());
  fs.writeFileSync(store.file, '{oops');
  assert.throws(() => store.load(), (e: unknown) => e instanceof KernelError && e.code === 'ERR_STATE_CORRUPT');
});

test('process identity survives pid reuse (pid + start time)', () => {
  const me = selfId();
  assert.ok(isAlive(me));
  assert.ok(!isAlive({ pid: me.pid, start: `${me.start}9` }));
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const dead = Number(r.stdout.trim());
  assert.equal(processStart(dead), null);
});

test('a stale lock (dead holder) is broken; a live one times out', () => {
  const store = new StateStore(tmpdir());
  fs.mkdirSync(store.dir, { recursive: true });
  fs.writeFileSync(store.lockFile, '999999999 12345\n');
  assert.equal(store.withLock(() => 42), 42);
  assert.ok(!fs.existsSync(store.lockFile));
  const me = selfId();
  fs.writeFileSync(store.lockFile, `${me.pid} ${me.start}\n`);
  assert.throws(() => store.withLock(() => 1, 100), (e: unknown) => e instanceof KernelError && e.code === 'ERR_LOCK_TIMEOUT');
  fs.unlinkSync(store.lockFile);
});

test('state dir: env first, then /run/tapswitch as root, else XDG_RUNTIME_DIR', () => {
  assert.equal(stateDir({ TAPSWITCH_STATE_DIR: '/x/y' }), '/x/y');
  const expect = process.getuid?.() === 0 ? '/run/tapswitch' : '/xdg/tapswitch';
  assert.equal(stateDir({ XDG_RUNTIME_DIR: '/xdg' }), expect);
});

test('CAP_NET_ADMIN is bit 12 of CapEff', () => {
  assert.ok(hasCapability(12, 'Name:\tx\nCapEff:\t0000000000001000\n'));
  assert.ok(!hasCapability(12, 'CapEff:\t000001ffffffefff\n'));
  assert.ok(!hasCapability(12, 'nothing here'));
});
