import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { formatIdMap, parseIdMap, parseSubIds, planIdMap, type IdMapInputs } from '../../src/netns/idmap';
import { TapswitchError } from '../../src/control/errors';

const base: IdMapInputs = {
  euid: 1000, egid: 1000, user: 'alice',
  uidMap: '         0          0 4294967295\n', gidMap: '         0          0 4294967295\n',
  subuid: '', subgid: '', mapUserOnly: false,
};

test('parseIdMap reads /proc/PID/uid_map', () => {
  assert.deepEqual(parseIdMap('         0       1000          1\n         1     100000      65536\n'),
    [{ inner: 0, outer: 1000, count: 1 }, { inner: 1, outer: 100000, count: 65536 }]);
  assert.deepEqual(parseIdMap(''), []);
});

test('parseSubIds matches the user by name or uid', () => {
  const text = 'bob:100000:65536\nalice:165536:65536\n1000:300000:10\nbroken line\nalice:x:1\n';
  assert.deepEqual(parseSubIds(text, 'alice', 1000), [{ start: 165536, count: 65536 }, { start: 300000, count: 10 }]);
  assert.deepEqual(parseSubIds(text, 'carol', 1001), []);
});

test('root maps every id it has, identically', () => {
  const full = planIdMap({ ...base, euid: 0, egid: 0 });
  assert.equal(full.kind, 'identity');
  assert.deepEqual(full.uid, [{ inner: 0, outer: 0, count: 4294967295 }]);
  // root inside a test sandbox made by `unshare -Ur` as uid 1000 has one id: map that one
  const sandbox = planIdMap({ ...base, euid: 0, egid: 0, uidMap: '0 1000 1\n', gidMap: '0 1000 1\n' });
  assert.deepEqual(sandbox.uid, [{ inner: 0, outer: 0, count: 1 }]);
  assert.deepEqual(sandbox.gid, [{ inner: 0, outer: 0, count: 1 }]);
});

test('a normal user gets root = self plus the subordinate ranges', () => {
  const p = planIdMap({ ...base, subuid: 'alice:100000:65536\n', subgid: 'alice:200000:65536\nalice:300000:5\n' });
  assert.equal(p.kind, 'subids');
  assert.deepEqual(p.uid, [{ inner: 0, outer: 1000, count: 1 }, { inner: 1, outer: 100000, count: 65536 }]);
  assert.deepEqual(p.gid, [{ inner: 0, outer: 1000, count: 1 }, { inner: 1, outer: 200000, count: 65536 },
    { inner: 65537, outer: 300000, count: 5 }]);
  assert.equal(formatIdMap(p.uid), '0 1000 1\n1 100000 65536\n');
});

test('no subordinate ids: a coded error that says what to do', () => {
  try {
    planIdMap(base);
    assert.fail('expected ERR_NO_SUBIDS');
  } catch (e) {
    assert.ok(e instanceof TapswitchError);
    assert.equal(e.code, 'ERR_NO_SUBIDS');
    assert.equal(e.exitCode, 69);
    assert.match(e.oneLine(), /usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice/);
    assert.match(e.oneLine(), /--map-user-only/);
  }
  assert.throws(() => planIdMap({ ...base, subuid: 'alice:100000:65536\n' }), /subordinate gids/);
});

test('--map-user-only maps just the caller as root', () => {
  const p = planIdMap({ ...base, mapUserOnly: true });
  assert.equal(p.kind, 'user-only');
  assert.deepEqual(p.uid, [{ inner: 0, outer: 1000, count: 1 }]);
  assert.deepEqual(p.gid, [{ inner: 0, outer: 1000, count: 1 }]);
});
