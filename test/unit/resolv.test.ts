import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { containerResolvConf, parseResolvConf, resolvMountTarget, upstreamsFrom, writePrivateResolvConf } from '../../src/netns/resolv';

test('nameservers in order; comments and other keywords ignored', () => {
  const conf = parseResolvConf([
    '# generated',
    '; old style comment',
    'nameserver 127.0.0.53',
    '  nameserver   192.0.2.1  ',
    'nameserver 2001:db8::1',
    'search example.test corp.test',
    'options edns0 trust-ad',
    'sortlist 130.155.160.0/255.255.240.0',
    'nameserver',
    '#nameserver 203.0.113.9',
    '',
  ].join('\n'));
  assert.deepEqual(conf.nameservers, ['127.0.0.53', '192.0.2.1', '2001:db8::1']);
  assert.deepEqual(conf.carryOver, ['search example.test corp.test', 'options edns0 trust-ad']);
  assert.deepEqual(upstreamsFrom(conf), { upstreams: ['127.0.0.53', '192.0.2.1'], skipped: ['2001:db8::1'] });
});

test('empty or missing nameservers give no upstreams', () => {
  assert.deepEqual(upstreamsFrom(parseResolvConf('')).upstreams, []);
  assert.deepEqual(upstreamsFrom(parseResolvConf('search x\n')).upstreams, []);
});

test('the container file points at the DNS forwarder and keeps search/options', () => {
  const text = containerResolvConf('10.0.2.3', parseResolvConf('nameserver 1.1.1.1\nsearch a.test\n'));
  const lines = text.split('\n').filter((l) => !l.startsWith('#') && l !== '');
  assert.deepEqual(lines, ['nameserver 10.0.2.3', 'search a.test']);
});

test('the private file lives in its own directory and is removed with it', () => {
  const f = writePrivateResolvConf('nameserver 10.0.2.3\n');
  assert.equal(fs.readFileSync(f.path, 'utf8'), 'nameserver 10.0.2.3\n');
  assert.equal(fs.statSync(f.path).mode & 0o777, 0o644);
  f.remove();
  assert.equal(fs.existsSync(path.dirname(f.path)), false);
  f.remove();
});

test('mount target: file, symlink, dangling symlink, missing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-resolv-'));
  try {
    const real = path.join(dir, 'real');
    fs.writeFileSync(real, '');
    fs.symlinkSync(real, path.join(dir, 'link'));
    fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    assert.equal(resolvMountTarget(real).kind, 'ok');
    assert.equal(resolvMountTarget(path.join(dir, 'link')).kind, 'ok');
    const d = resolvMountTarget(path.join(dir, 'dangling'));
    assert.equal(d.kind, 'missing');
    assert.match(d.kind === 'missing' ? d.reason : '', /dangling symlink/);
    assert.equal(resolvMountTarget(path.join(dir, 'absent')).kind, 'missing');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
