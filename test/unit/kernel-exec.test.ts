import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { KernelError } from '../../src/kernel/errors';
import { run } from '../../src/kernel/exec';

test('a failing command becomes ERR_KERNEL_CMD with argv, status, stderr and input', () => {
  const script = 'process.stdin.resume(); process.stdin.on("end", () => { console.error("Error: syntax error\\nline 2"); process.exit(3); })';
  try {
    run([process.execPath, '-e', script], { input: 'table inet tapswitch {\n}\n', what: 'apply rules' });
    assert.fail('should have thrown');
  } catch (e) {
    assert.ok(e instanceof KernelError);
    assert.equal(e.code, 'ERR_KERNEL_CMD');
    assert.equal(e.exitCode, 125);
    assert.match(e.message, /^apply rules failed: Error: syntax error$/);
    assert.equal(e.command?.status, 3);
    assert.equal(e.command?.input, 'table inet tapswitch {\n}\n');
    const d = e.detail();
    assert.match(d, /command: ".*node.*" "-e"/);
    assert.match(d, /exit: 3/);
    assert.match(d, /stderr: Error: syntax error\n {10}line 2/);
    assert.match(d, /input:\n {4}table inet tapswitch \{\n {4}\}/);
  }
});

test('commands run with LC_ALL=C and no shell', () => {
  const r = run([process.execPath, '-e', 'console.log(process.env.LC_ALL, process.argv[1])', '$(echo hi); rm -rf /']);
  assert.equal(r.stdout.trim(), 'C $(echo hi); rm -rf /');
});

test('timeouts kill the command and report it', () => {
  assert.throws(() => run([process.execPath, '-e', 'setTimeout(() => {}, 10000)'], { timeoutMs: 200 }),
    (e: unknown) => e instanceof KernelError && e.code === 'ERR_KERNEL_CMD' && e.command?.status === null);
});

test('a missing tool names its package', () => {
  assert.throws(() => run(['tapswitch-no-such-tool']),
    (e: unknown) => e instanceof KernelError && e.code === 'ERR_TOOL_MISSING' && /not installed/.test(e.message));
});
