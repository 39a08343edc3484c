// The one rule for "root" and the default path it picks (control/kernel-select.ts), over injected facts.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { defaultDriver, isRoot, selectRunPath } from '../../src/control/kernel-select';
import { canAdminNetns, requireNetAdmin, type PrivilegeFacts } from '../../src/kernel/host';
import { KernelError } from '../../src/kernel/errors';

const facts = (euid: number, capNetAdmin: boolean, netnsAdmin: boolean): PrivilegeFacts => ({ euid, capNetAdmin, netnsAdmin });

test('root = uid 0 + CAP_NET_ADMIN that works over our network namespace', () => {
  // real root, or root of `unshare -Urn` (the integration tests' sandbox)
  assert.equal(isRoot(facts(0, true, true)), true);
  // a normal user
  assert.equal(isRoot(facts(1000, false, false)), false);
  // `unshare -Ur` without -n: full CapEff, but the netns belongs to the parent user namespace
  assert.equal(isRoot(facts(0, true, false)), false);
  // uid 0 without capabilities (e.g. a nested user namespace without a map, or a dropped bounding set)
  assert.equal(isRoot(facts(0, false, false)), false);
  // a non-zero uid with file capabilities drives the kernel path when asked, but is not "root"
  assert.equal(isRoot(facts(1000, true, true)), false);
  assert.equal(canAdminNetns(facts(1000, true, true)), true);
});

test('run: --network wins; without it bridge as root, userspace otherwise', () => {
  assert.deepEqual(selectRunPath(undefined, true), { path: 'kernel', network: 'bridge' });
  assert.deepEqual(selectRunPath(undefined, false), { path: 'userspace' });
  assert.deepEqual(selectRunPath('userspace', true), { path: 'userspace' });
  assert.deepEqual(selectRunPath('userspace', false), { path: 'userspace' });
  for (const n of ['bridge', 'none', 'host', 'container:db', 'web']) {
    assert.deepEqual(selectRunPath(n, false), { path: 'kernel', network: n });
    assert.deepEqual(selectRunPath(n, true), { path: 'kernel', network: n });
  }
});

test('network create: the same rule picks the driver', () => {
  assert.equal(defaultDriver(true), 'kernel');
  assert.equal(defaultDriver(false), 'userspace');
});

test('the kernel path refuses without the capability over the netns, saying which part is missing', () => {
  const err = (f: PrivilegeFacts): KernelError => {
    try {
      requireNetAdmin('run --network bridge', 'hint', f);
    } catch (e) {
      assert.ok(e instanceof KernelError);
      return e;
    }
    assert.fail('expected a refusal');
  };
  assert.match(err(facts(1000, false, false)).oneLine(), /^run --network bridge needs CAP_NET_ADMIN over this network namespace: hint$/);
  assert.match(err(facts(0, true, false)).message, /belongs to another user namespace/);
  assert.equal(err(facts(0, false, false)).exitCode, 69);
  const missing = new KernelError('ERR_TOOL_MISSING', 'ip is not installed');
  assert.equal(err({ ...facts(0, true, false), probeFailure: missing }), missing);
  assert.doesNotThrow(() => requireNetAdmin('x', 'y', facts(0, true, true)));
});
