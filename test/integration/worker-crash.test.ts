// A data-plane worker that dies is logged and replaced on the same TAP queue; the flows it owned are
// gone, so the container's next segment on an old flow is answered with RST, and new flows work.
// The crash is requested from inside the container through a test-only hook (TAPSWITCH_TEST_HOOKS=1).
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { OUTSIDE_ADDR, cleanup, dataPlaneMissing, ensureSandbox, makeOutside, runCli, startServer, type Server } from '../helpers/sandbox';

const CLIENT = path.join(__dirname, '..', 'helpers', 'crash-client.js');

if (ensureSandbox(__filename)) {
  const missing = dataPlaneMissing();
  let echo: Server;
  before(async () => {
    if (missing) return;
    const outside = await makeOutside();
    echo = await startServer(outside, 'tcp-server', ['--host', OUTSIDE_ADDR, '--mode', 'echo']);
  });
  after(() => cleanup());

  test('a crashed worker is logged and restarted; its flows are reset, new flows work', { skip: missing ?? false, timeout: 60_000 }, async () => {
    const r = await runCli(['run', '--network', 'userspace', '--', process.execPath, CLIENT, OUTSIDE_ADDR, String(echo.port)], {
      timeoutMs: 45_000, env: { ...process.env, TAPSWITCH_TEST_HOOKS: '1' },
    });
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { before: string; after: string; fresh: string };
    assert.equal(res.before, 'ECHOED', 'the flow worked before the crash');
    assert.equal(res.after, 'ECONNRESET', 'the old flow was reset by the new worker');
    assert.equal(res.fresh, 'ECHOED', 'a new flow works on the restarted worker');
    assert.match(r.stderr, /tapswitch: error: .*queue 0.*(crash|died|exit|restart)/i, 'the crash was logged');
  });
}
