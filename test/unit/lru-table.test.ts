import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { KeyedLruTable, Sweeper, type LruEntry } from '../../src/translate/lru-table';

class Entry implements LruEntry<Entry> {
  twin: Entry | null = null;
  older: Entry | null = null;
  newer: Entry | null = null;
  constructor(readonly key: number, readonly name: string) {}
}

/** Names from the LRU head (oldest) to the tail, checking the back links on the way. */
function order(t: KeyedLruTable<Entry>): string[] {
  const out: string[] = [];
  let prev: Entry | null = null;
  for (let e = t.oldest; e !== null; e = e.newer) {
    assert.equal(e.older, prev);
    out.push(e.name);
    prev = e;
  }
  assert.equal(t.newest, prev);
  return out;
}

/** Names on one key's chain, first to last. */
function chain(t: KeyedLruTable<Entry>, key: number): string[] {
  const out: string[] = [];
  for (let e = t.first(key); e !== null; e = e.twin) out.push(e.name);
  return out;
}

function find(t: KeyedLruTable<Entry>, key: number, name: string): Entry | null {
  let e = t.first(key);
  while (e !== null && e.name !== name) e = e.twin;
  return e;
}

test('lru-table: an empty table has no entries', () => {
  const t = new KeyedLruTable<Entry>();
  assert.equal(t.size, 0);
  assert.equal(t.oldest, null);
  assert.equal(t.newest, null);
  assert.equal(t.first(1), null);
  assert.deepEqual(order(t), []);
});

test('lru-table: insert and lookup by key; inserts append to the LRU tail', () => {
  const t = new KeyedLruTable<Entry>();
  const a = new Entry(1, 'a');
  const b = new Entry(2, 'b');
  const c = new Entry(-3, 'c'); // int32 keys may be negative
  t.insert(a); t.insert(b); t.insert(c);
  assert.equal(t.size, 3);
  assert.equal(t.first(1), a);
  assert.equal(t.first(2), b);
  assert.equal(t.first(-3), c);
  assert.equal(t.first(4), null);
  assert.deepEqual(order(t), ['a', 'b', 'c']);
});

test('lru-table: touch moves an entry to the tail; the head is the eviction candidate', () => {
  const t = new KeyedLruTable<Entry>();
  const [a, b, c] = [new Entry(1, 'a'), new Entry(2, 'b'), new Entry(3, 'c')];
  t.insert(a); t.insert(b); t.insert(c);
  t.touch(a);
  assert.deepEqual(order(t), ['b', 'c', 'a']);
  t.touch(c);
  assert.deepEqual(order(t), ['b', 'a', 'c']);
  t.touch(c); // already the newest: nothing moves
  assert.deepEqual(order(t), ['b', 'a', 'c']);
  t.touch(b);
  assert.deepEqual(order(t), ['a', 'c', 'b']);

  // Evicting from the head goes in least-recently-used order.
  const evicted: string[] = [];
  for (let e = t.oldest; e !== null; e = t.oldest) { t.remove(e); evicted.push(e.name); }
  assert.deepEqual(evicted, ['a', 'c', 'b']);
  assert.equal(t.size, 0);
  assert.equal(t.newest, null);
});

test('lru-table: remove from the head, middle and tail unlinks and unchains', () => {
  const t = new KeyedLruTable<Entry>();
  const es = ['a', 'b', 'c', 'd', 'e'].map((n, i) => new Entry(i, n));
  for (const e of es) t.insert(e);
  t.remove(es[2]!);
  assert.deepEqual(order(t), ['a', 'b', 'd', 'e']);
  t.remove(es[0]!);
  assert.deepEqual(order(t), ['b', 'd', 'e']);
  t.remove(es[4]!);
  assert.deepEqual(order(t), ['b', 'd']);
  assert.equal(t.size, 2);
  for (const i of [0, 2, 4]) {
    const e = es[i]!;
    assert.equal(t.first(i), null);
    assert.equal(e.twin, null);
    assert.equal(e.older, null);
    assert.equal(e.newer, null);
  }
  assert.equal(t.first(1), es[1]);
  assert.equal(t.first(3), es[3]);
});

test('lru-table: entries with equal keys chain (newest first) and come out one by one', () => {
  const t = new KeyedLruTable<Entry>();
  const x1 = new Entry(7, 'x1');
  const x2 = new Entry(7, 'x2');
  const y = new Entry(8, 'y');
  const x3 = new Entry(7, 'x3');
  t.insert(x1); t.insert(x2); t.insert(y); t.insert(x3);
  assert.equal(t.size, 4);
  assert.deepEqual(chain(t, 7), ['x3', 'x2', 'x1']);
  assert.deepEqual(chain(t, 8), ['y']);
  assert.equal(find(t, 7, 'x1'), x1);
  assert.equal(find(t, 7, 'y'), null);
  assert.deepEqual(order(t), ['x1', 'x2', 'y', 'x3']);

  // The LRU order is independent of the chains.
  t.touch(x1);
  assert.deepEqual(order(t), ['x2', 'y', 'x3', 'x1']);
  assert.deepEqual(chain(t, 7), ['x3', 'x2', 'x1']);

  t.remove(x2); // middle of the chain
  assert.deepEqual(chain(t, 7), ['x3', 'x1']);
  t.remove(x3); // chain head: the next one takes its place in the map
  assert.deepEqual(chain(t, 7), ['x1']);
  assert.equal(t.first(7), x1);
  t.remove(x1); // last of the key: the key is gone
  assert.equal(t.first(7), null);
  assert.deepEqual(order(t), ['y']);
  assert.equal(t.size, 1);
});

test('lru-table: clear forgets everything', () => {
  const t = new KeyedLruTable<Entry>();
  t.insert(new Entry(1, 'a'));
  t.insert(new Entry(1, 'b'));
  t.clear();
  assert.equal(t.size, 0);
  assert.equal(t.first(1), null);
  assert.deepEqual(order(t), []);
  t.insert(new Entry(1, 'c'));
  assert.deepEqual(chain(t, 1), ['c']);
});

test('lru-table: Sweeper runs only between start and stop; start is idempotent', async () => {
  let runs = 0;
  const s = new Sweeper(() => { runs++; }, 5);
  assert.equal(s.running, false);
  s.start();
  s.start();
  assert.equal(s.running, true);
  await new Promise((r) => setTimeout(r, 40));
  s.stop();
  assert.equal(s.running, false);
  assert.ok(runs >= 1, `ran ${runs} times`);
  const seen = runs;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(runs, seen);
  s.stop(); // stopping twice is harmless
});
