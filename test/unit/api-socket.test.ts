// The slirp4netns-compatible API socket, over a real AF_UNIX socket with the in-memory backend:
// every request/response pair and error text, framing (4 KiB limit, trailing newline, half-close,
// no half-close, one write), id rules, and garbage that must not kill the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  startApiServer, createFakeHostFwdBackend, createSocketHostFwdBackend, handleApiRequest, HostFwdTable, parseIpv4Strict,
  type ApiServer, type ApiNetwork, type HostFwdBackend,
} from '../../src/control/api-socket';
import { isTapswitchError } from '../../src/control/errors';

const NETWORK: ApiNetwork = { network: 0x0a000200, prefixLength: 24, guest: 0x0a000264 };

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-api-'));
}

interface Reply {
  text: string;
  /** The first chunk the client read: must be the whole reply (Podman reads once). */
  first: string;
}

/** Connect, send, half-close (unless told not to), read until the server closes. */
function ask(sockPath: string, request: string | Buffer, opts: { halfClose?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sockPath);
    const chunks: Buffer[] = [];
    c.on('connect', () => {
      c.write(request);
      if (opts.halfClose ?? true) c.end();
    });
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', reject);
    c.on('close', () => {
      resolve({ text: Buffer.concat(chunks).toString('utf8'), first: chunks[0]?.toString('utf8') ?? '' });
      c.destroy();
    });
  });
}

async function withServer(fn: (s: ApiServer, backend: ReturnType<typeof createFakeHostFwdBackend>) => Promise<void>,
  extra: { requestTimeoutMs?: number; backend?: ReturnType<typeof createFakeHostFwdBackend>; allowEphemeralHostPort?: boolean } = {}): Promise<void> {
  const dir = tmpDir();
  const backend = extra.backend ?? createFakeHostFwdBackend({ busyPorts: [9999] });
  const server = await startApiServer({
    path: path.join(dir, 'api.sock'), backend, network: NETWORK,
    requestTimeoutMs: extra.requestTimeoutMs ?? 300, lingerMs: 300,
    ...(extra.allowEphemeralHostPort === undefined ? {} : { allowEphemeralHostPort: extra.allowEphemeralHostPort }),
  });
  try {
    await fn(server, backend);
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const E = (reason: string) => `{"error":{"desc":"bad request: ${reason}"}}`;
const add = (args: Record<string, unknown>) => JSON.stringify({ execute: 'add_hostfwd', arguments: args });
const tcp = (extra: Record<string, unknown>) => add({ proto: 'tcp', host_addr: '0.0.0.0', host_port: 8090, guest_addr: '10.0.2.100', guest_port: 80, ...extra });
const entry = (id: number, proto: string, hostAddr: string, hostPort: number, guestAddr: string, guestPort: number) =>
  `{"id":${id},"proto":"${proto}","host_addr":"${hostAddr}","host_port":${hostPort},"guest_addr":"${guestAddr}","guest_port":${guestPort}}`;

// [request, expected reply], run in order against one server (ids depend on the order).
const TABLE: ReadonlyArray<readonly [string, string]> = [
  // the doc's example session
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}}', '{"return":{"id":1}}'],
  ['{"execute":"list_hostfwd"}', `{"entries":[${entry(1, 'tcp', '0.0.0.0', 8080, '10.0.2.100', 80)}]}`],
  // defaults: "" and missing addresses (Podman sends "")
  ['{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"","host_port":5353,"guest_addr":"","guest_port":53}}', '{"return":{"id":2}}'],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8081,"guest_port":81}}', '{"return":{"id":3}}'],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":null,"host_port":8082,"guest_addr":null,"guest_port":82}}', '{"return":{"id":4}}'],
  // bind conflicts and failures
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80}}', E('add_hostfwd: slirp_add_hostfwd failed')],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_port":80}}', E('add_hostfwd: slirp_add_hostfwd failed')],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":9999,"guest_port":80}}', E('add_hostfwd: slirp_add_hostfwd failed')],
  ['{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":8080,"guest_port":80}}', '{"return":{"id":5}}'],
  // tapswitch extras: OS-chosen port, IPv6 host address
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":0,"guest_port":22}}', '{"return":{"id":6,"host_port":40000}}'],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"::1","host_port":8083,"guest_port":83}}', '{"return":{"id":7}}'],
  // remove; ids are never reused
  ['{"execute":"remove_hostfwd","arguments":{"id":1}}', '{"return":{}}'],
  ['{"execute":"remove_hostfwd","arguments":{"id":1}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}}', '{"return":{"id":8}}'],
  ['{"execute":"remove_hostfwd","arguments":{"id":"8"}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd","arguments":{"id":8.5}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd","arguments":{"id":0}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd","arguments":{"id":-8}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd","arguments":{"id":99}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd","arguments":{}}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd"}', E('remove_hostfwd: bad arguments.id')],
  ['{"execute":"remove_hostfwd","arguments":[8]}', E('remove_hostfwd: bad arguments.id')],
  // envelope errors
  ['', E('cannot parse JSON')],
  ['{', E('cannot parse JSON')],
  ['{"execute":"list_hostfwd"', E('cannot parse JSON')],
  ['{"execute":"list_hostfwd"}{"execute":"list_hostfwd"}', E('cannot parse JSON')],
  ["{'execute':'list_hostfwd'}", E('cannot parse JSON')],
  ['[]', E('json_object() failed')],
  ['42', E('json_object() failed')],
  ['null', E('json_object() failed')],
  ['"list_hostfwd"', E('json_object() failed')],
  ['{}', E('no execute found')],
  ['{"execute":42}', E('no execute found')],
  ['{"execute":null}', E('no execute found')],
  ['{"Execute":"list_hostfwd"}', E('no execute found')],
  ['{"execute":"foo"}', E('unknown execute')],
  ['{"execute":""}', E('unknown execute')],
  ['{"execute":"toString"}', E('unknown execute')],
  ['{"execute":"__proto__"}', E('unknown execute')],
  ['{"execute":"LIST_HOSTFWD"}', E('unknown execute')],
  // add_hostfwd: proto (missing proto crashes slirp4netns 1.2.0; here it is an error)
  ['{"execute":"add_hostfwd"}', E('add_hostfwd: bad arguments.proto')],
  ['{"execute":"add_hostfwd","arguments":null}', E('add_hostfwd: bad arguments.proto')],
  ['{"execute":"add_hostfwd","arguments":"tcp"}', E('add_hostfwd: bad arguments.proto')],
  ['{"execute":"add_hostfwd","arguments":{"host_port":8090,"guest_port":80}}', E('add_hostfwd: bad arguments.proto')],
  [tcp({ proto: 'TCP' }), E('add_hostfwd: bad arguments.proto')],
  [tcp({ proto: 'sctp' }), E('add_hostfwd: bad arguments.proto')],
  [tcp({ proto: 6 }), E('add_hostfwd: bad arguments.proto')],
  [tcp({ proto: null }), E('add_hostfwd: bad arguments.proto')],
  // host_addr
  [tcp({ host_addr: '1.2.3' }), E('add_hostfwd: bad arguments.host_addr')],
  [tcp({ host_addr: '256.0.0.1' }), E('add_hostfwd: bad arguments.host_addr')],
  [tcp({ host_addr: '010.0.0.1' }), E('add_hostfwd: bad arguments.host_addr')],
  [tcp({ host_addr: 'localhost' }), E('add_hostfwd: bad arguments.host_addr')],
  [tcp({ host_addr: 'fe80::1%eth0' }), E('add_hostfwd: bad arguments.host_addr')],
  [tcp({ host_addr: 2130706433 }), E('add_hostfwd: bad arguments.host_addr')],
  [tcp({ host_addr: ['0.0.0.0'] }), E('add_hostfwd: bad arguments.host_addr')],
  // host_port
  [tcp({ host_port: undefined }), E('add_hostfwd: bad arguments.host_port')],
  [tcp({ host_port: null }), E('add_hostfwd: bad arguments.host_port')],
  [tcp({ host_port: -1 }), E('add_hostfwd: bad arguments.host_port')],
  [tcp({ host_port: 65536 }), E('add_hostfwd: bad arguments.host_port')],
  [tcp({ host_port: 8090.5 }), E('add_hostfwd: bad arguments.host_port')],
  [tcp({ host_port: '8090' }), E('add_hostfwd: bad arguments.host_port')],
  [tcp({ host_port: true }), E('add_hostfwd: bad arguments.host_port')],
  ['{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":1e10,"guest_port":80}}', E('add_hostfwd: bad arguments.host_port')],
  // guest_addr
  [tcp({ guest_addr: '10.0.3.5' }), E('add_hostfwd: bad arguments.guest_addr')],
  [tcp({ guest_addr: '10.0.2.0' }), E('add_hostfwd: bad arguments.guest_addr')],
  [tcp({ guest_addr: '10.0.2.255' }), E('add_hostfwd: bad arguments.guest_addr')],
  [tcp({ guest_addr: '10.0.2.1000' }), E('add_hostfwd: bad arguments.guest_addr')],
  [tcp({ guest_addr: 'x' }), E('add_hostfwd: bad arguments.guest_addr')],
  [tcp({ guest_addr: '::1' }), E('add_hostfwd: bad arguments.guest_addr')],
  [tcp({ guest_addr: 5 }), E('add_hostfwd: bad arguments.guest_addr')],
  // guest_port
  [tcp({ guest_port: 0 }), E('add_hostfwd: bad arguments.guest_port')],
  [tcp({ guest_port: undefined }), E('add_hostfwd: bad arguments.guest_port')],
  [tcp({ guest_port: 65536 }), E('add_hostfwd: bad arguments.guest_port')],
  [tcp({ guest_port: 1.5 }), E('add_hostfwd: bad arguments.guest_port')],
  [tcp({ guest_port: '80' }), E('add_hostfwd: bad arguments.guest_port')],
  // check order is slirp4netns's: proto, host_addr, host_port, guest_addr, guest_port
  [add({ proto: 'x', host_addr: 'x', host_port: 0.5, guest_addr: 'x', guest_port: 0 }), E('add_hostfwd: bad arguments.proto')],
  [add({ proto: 'tcp', host_addr: 'x', host_port: 0.5, guest_addr: 'x', guest_port: 0 }), E('add_hostfwd: bad arguments.host_addr')],
  [add({ proto: 'tcp', host_port: 0.5, guest_addr: 'x', guest_port: 0 }), E('add_hostfwd: bad arguments.host_port')],
  [add({ proto: 'tcp', host_port: 1, guest_addr: 'x', guest_port: 0 }), E('add_hostfwd: bad arguments.guest_addr')],
  // other addresses in the network, extra keys ignored, arguments ignored by list
  [tcp({ guest_addr: '10.0.2.15', host_port: 8084, comment: 'x' }), '{"return":{"id":9}}'],
  ['{"execute":"list_hostfwd","arguments":{"id":3}}', `{"entries":[${[
    entry(2, 'udp', '0.0.0.0', 5353, '10.0.2.100', 53),
    entry(3, 'tcp', '0.0.0.0', 8081, '10.0.2.100', 81),
    entry(4, 'tcp', '0.0.0.0', 8082, '10.0.2.100', 82),
    entry(5, 'udp', '127.0.0.1', 8080, '10.0.2.100', 80),
    entry(6, 'tcp', '0.0.0.0', 40000, '10.0.2.100', 22),
    entry(7, 'tcp', '::1', 8083, '10.0.2.100', 83),
    entry(8, 'tcp', '0.0.0.0', 8080, '10.0.2.100', 80),
    entry(9, 'tcp', '0.0.0.0', 8084, '10.0.2.15', 80),
  ].join(',')}]}`],
];

test('request/response table over the socket (one reply, one chunk, no newline)', async () => {
  await withServer(async (server) => {
    for (const [req, want] of TABLE) {
      const r = await ask(server.path, req);
      assert.equal(r.text, want, `request ${req}`);
      assert.equal(r.first, want, `reply to ${req} arrived in more than one read`);
    }
  });
});

test('the same table through handleApiRequest directly', async () => {
  const ctx = { backend: createFakeHostFwdBackend({ busyPorts: [9999] }), network: NETWORK };
  for (const [req, want] of TABLE) assert.equal(await handleApiRequest(req, ctx), want, req);
});

test('trailing whitespace and newlines are accepted', async () => {
  await withServer(async (server) => {
    for (const tail of ['\n', '\r\n', '  \n\n', '\t']) {
      const r = await ask(server.path, `{"execute":"list_hostfwd"}${tail}`);
      assert.equal(r.text, '{"entries":[]}');
    }
    const r = await ask(server.path, `${tcp({ host_port: 7000 })}\n`);
    assert.equal(r.text, '{"return":{"id":1}}');
  });
});

test('requests of 4096 bytes or more: too large message; 4095 is fine', async () => {
  await withServer(async (server) => {
    const base = '{"execute":"list_hostfwd"}';
    const ok = base + ' '.repeat(4095 - base.length);
    assert.equal(Buffer.byteLength(ok), 4095);
    assert.equal((await ask(server.path, ok)).text, '{"entries":[]}');
    const tooBig = base + ' '.repeat(4096 - base.length);
    assert.equal((await ask(server.path, tooBig)).text, E('too large message'));
    // A big body that is JSON-valid: still too large.
    const bigAdd = tcp({ padding: 'x'.repeat(5000) });
    assert.equal((await ask(server.path, bigAdd)).text, E('too large message'));
    // Far larger than the socket buffers, sent in one go.
    assert.equal((await ask(server.path, Buffer.alloc(1 << 20, 0x7b))).text, E('too large message'));
    // Multi-byte characters count as bytes.
    const utf = `{"execute":"list_hostfwd","x":"${'é'.repeat(2040)}"}`;
    assert.ok(utf.length < 4096 && Buffer.byteLength(utf) >= 4096);
    assert.equal((await ask(server.path, utf)).text, E('too large message'));
    // The server is still there.
    assert.equal((await ask(server.path, base)).text, '{"entries":[]}');
  });
});

test('clients that never half-close still get their reply', async () => {
  await withServer(async (server) => {
    const r = await ask(server.path, '{"execute":"list_hostfwd"}', { halfClose: false });
    assert.equal(r.text, '{"entries":[]}');
  });
});

test('a request sent in pieces with pauses is put together', async () => {
  await withServer(async (server) => {
    const text = await new Promise<string>((resolve, reject) => {
      const c = net.connect(server.path);
      let got = '';
      c.on('data', (d) => { got += d.toString(); });
      c.on('error', reject);
      c.on('close', () => resolve(got));
      c.on('connect', () => {
        c.write('{"execute":"add_');
        setTimeout(() => c.write('hostfwd","arguments":{"proto":"tcp",'), 50);
        setTimeout(() => { c.write('"host_port":7001,"guest_port":1}}'); c.end(); }, 100);
      });
    });
    assert.equal(text, '{"return":{"id":1}}');
  }, { requestTimeoutMs: 1000 });
});

test('a partial request with no half-close times out into "cannot parse JSON"', async () => {
  await withServer(async (server) => {
    const t0 = Date.now();
    const r = await ask(server.path, '{"execute":"list_', { halfClose: false });
    assert.equal(r.text, E('cannot parse JSON'));
    assert.ok(Date.now() - t0 >= 250);
  }, { requestTimeoutMs: 300 });
});

test('ids start at 1, count only successes and are never reused', async () => {
  await withServer(async (server) => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const port = 7100 + i;
      assert.match((await ask(server.path, tcp({ host_port: 9999 }))).text, /slirp_add_hostfwd failed/);
      const r = JSON.parse((await ask(server.path, tcp({ host_port: port }))).text) as { return: { id: number } };
      ids.push(r.return.id);
      assert.equal((await ask(server.path, JSON.stringify({ execute: 'remove_hostfwd', arguments: { id: r.return.id } }))).text, '{"return":{}}');
    }
    assert.deepEqual(ids, [1, 2, 3, 4, 5]);
  });
});

test('removing a forward closes its listener; the port can be added again', async () => {
  await withServer(async (server, backend) => {
    assert.equal((await ask(server.path, tcp({ host_port: 7200 }))).text, '{"return":{"id":1}}');
    assert.equal(backend.bound.size, 1);
    assert.equal((await ask(server.path, '{"execute":"remove_hostfwd","arguments":{"id":1}}')).text, '{"return":{}}');
    assert.equal(backend.bound.size, 0);
    assert.equal((await ask(server.path, tcp({ host_port: 7200 }))).text, '{"return":{"id":2}}');
  });
});

test('concurrent adds of one port: exactly one wins, ids stay dense', async () => {
  await withServer(async (server) => {
    const replies = await Promise.all(Array.from({ length: 10 }, () => ask(server.path, tcp({ host_port: 7300 }))));
    const wins = replies.filter((r) => r.text.startsWith('{"return"'));
    assert.equal(wins.length, 1);
    assert.equal(wins[0]?.text, '{"return":{"id":1}}');
    const list = await ask(server.path, '{"execute":"list_hostfwd"}');
    assert.equal((JSON.parse(list.text) as { entries: unknown[] }).entries.length, 1);
  });
});

test('host_port 0 without the extension is slirp4netns\'s error', async () => {
  await withServer(async (server) => {
    assert.equal((await ask(server.path, tcp({ host_port: 0 }))).text, E('add_hostfwd: bad arguments.host_port'));
  }, { allowEphemeralHostPort: false });
});

test('remove failure text; throwing backends do not kill the server', async () => {
  await withServer(async (server) => {
    assert.equal((await ask(server.path, tcp({ host_port: 7400 }))).text, '{"return":{"id":1}}');
    assert.equal((await ask(server.path, '{"execute":"remove_hostfwd","arguments":{"id":1}}')).text,
      E('remove_hostfwd: slirp_remove_hostfwd failed'));
  }, { backend: createFakeHostFwdBackend({ failClose: true }) });

  const throwing: HostFwdBackend = {
    add: () => Promise.reject(new Error('boom')),
    remove: () => { throw new Error('boom'); },
    list: () => [],
  };
  const logs: string[] = [];
  const ctx = { backend: throwing, network: NETWORK, log: (m: string) => logs.push(m) };
  assert.equal(await handleApiRequest(tcp({}), ctx), E('add_hostfwd: slirp_add_hostfwd failed'));
  assert.equal(await handleApiRequest('{"execute":"remove_hostfwd","arguments":{"id":1}}', ctx),
    E('remove_hostfwd: slirp_remove_hostfwd failed'));
  assert.equal(logs.length, 2);
});

test('HostFwdTable: a listener that fails to open consumes no id', async () => {
  let fail = true;
  const table = new HostFwdTable(async (rule) => {
    if (fail) throw new Error('listen EACCES');
    return { hostPort: rule.hostPort, close: async () => undefined };
  });
  const rule = { proto: 'tcp' as const, hostAddr: '0.0.0.0', hostPort: 80, guestAddr: '10.0.2.100', guestPort: 80 };
  assert.deepEqual(await table.add(rule), { ok: false, reason: 'listen EACCES' });
  fail = false;
  const r = await table.add(rule);
  assert.ok(r.ok && r.entry.id === 1);
  assert.equal(await table.remove(2), 'not-found');
  await table.closeAll();
  assert.deepEqual(table.list(), []);
});

test('200 garbage requests get an error reply each and do not kill the server', async () => {
  await withServer(async (server) => {
    const arbs = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      fc.json({ maxDepth: 3 }),
      fc.record({ execute: fc.constantFrom('add_hostfwd', 'remove_hostfwd', 'list_hostfwd', 'x'), arguments: fc.anything({ maxDepth: 2 }) })
        .map((o) => JSON.stringify(o) ?? ''),
      fc.record({
        proto: fc.oneof(fc.constantFrom('tcp', 'udp'), fc.anything({ maxDepth: 0 })),
        host_addr: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 20 })),
        host_port: fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.double(), fc.string({ maxLength: 5 })),
        guest_addr: fc.oneof(fc.constant('10.0.2.100'), fc.ipV4(), fc.string({ maxLength: 20 })),
        guest_port: fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.double()),
      }, { requiredKeys: [] }).map((a) => JSON.stringify({ execute: 'add_hostfwd', arguments: a })),
    );
    const samples = fc.sample(arbs, { numRuns: 200, seed: 5 });
    for (const s of samples) {
      const r = await ask(server.path, s);
      assert.equal(r.first, r.text);
      const v = JSON.parse(r.text) as Record<string, unknown>;
      assert.ok('error' in v || 'return' in v || 'entries' in v, `reply ${r.text} to ${String(s)}`);
      assert.ok(!r.text.includes('\n'));
    }
    // Abrupt clients: connect and vanish, send half a request and vanish.
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const c = net.connect(server.path, () => {
          if (i % 2) c.write('{"execute":');
          c.destroy();
          resolve();
        });
        c.on('error', () => resolve());
      });
    }
    assert.equal((await ask(server.path, '{"execute":"list_hostfwd"}')).first.startsWith('{"entries":['), true);
  });
});

test('socket file: stale socket replaced, other files refused, long paths refused, close removes it', async () => {
  const dir = tmpDir();
  try {
    const p = path.join(dir, 's.sock');
    const backend = createFakeHostFwdBackend();
    // A stale socket left by a killed instance (RootlessKit SIGKILLs slirp4netns).
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(p, r));
    // Drop the server without unlinking (as a SIGKILL would): libuv unlinks the path on close.
    fs.renameSync(p, `${p}.keep`);
    await new Promise<void>((r) => stale.close(() => r()));
    fs.renameSync(`${p}.keep`, p);
    assert.ok(fs.lstatSync(p).isSocket());
    const s = await startApiServer({ path: p, backend, network: NETWORK });
    assert.equal((await ask(p, '{"execute":"list_hostfwd"}')).text, '{"entries":[]}');
    await s.close();
    assert.equal(fs.existsSync(p), false);
    s.unlinkSync(); // twice is fine

    fs.writeFileSync(p, 'not a socket');
    await assert.rejects(startApiServer({ path: p, backend, network: NETWORK }),
      (e: unknown) => isTapswitchError(e) && /is not a socket/.test(e.message));
    assert.equal(fs.readFileSync(p, 'utf8'), 'not a socket');

    const long = path.join(dir, 'x'.repeat(120));
    await assert.rejects(startApiServer({ path: long, backend, network: NETWORK }),
      (e: unknown) => isTapswitchError(e) && e.message === 'the specified API socket path is too long (>= 108)');
    await assert.rejects(startApiServer({ path: path.join(dir, 'no', 'such', 'dir.sock'), backend, network: NETWORK }),
      (e: unknown) => isTapswitchError(e) && /cannot listen on API socket/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('parseIpv4Strict follows inet_pton', () => {
  assert.equal(parseIpv4Strict('10.0.2.100'), 0x0a000264);
  assert.equal(parseIpv4Strict('0.0.0.0'), 0);
  assert.equal(parseIpv4Strict('255.255.255.255'), 0xffffffff);
  for (const bad of ['01.0.0.0', '1.2.3', '1.2.3.4.5', '256.1.1.1', ' 1.2.3.4', '1.2.3.4 ', '0x1.2.3.4', '']) {
    assert.equal(parseIpv4Strict(bad), null, bad);
  }
});

test('real socket backend: TCP and UDP forwards bind, hand traffic to the hooks, and unbind on remove', async () => {
  const tcpSeen: Array<{ id: number; guest: string }> = [];
  const backend = createSocketHostFwdBackend({
    onTcpConnection: (entry, socket) => {
      tcpSeen.push({ id: entry.id, guest: `${entry.guestAddr}:${entry.guestPort}` });
      socket.resume();
      socket.on('data', (d) => socket.end(`guest ${entry.guestPort} got ${d.toString()}`));
    },
    onUdpDatagram: (entry, flow, payload, reply) => {
      reply(Buffer.from(`guest ${entry.guestPort} got ${payload.toString()} from ${flow.clientAddr}`));
    },
  });
  const dir = tmpDir();
  const server = await startApiServer({ path: path.join(dir, 'api.sock'), backend, network: NETWORK });
  try {
    const t = JSON.parse((await ask(server.path, tcp({ host_addr: '127.0.0.1', host_port: 0, guest_port: 80 }))).text) as { return: { id: number; host_port: number } };
    assert.equal(t.return.id, 1);
    const tcpPort = t.return.host_port;
    assert.ok(tcpPort > 0);
    const echoed = await new Promise<string>((resolve, reject) => {
      const c = net.connect(tcpPort, '127.0.0.1', () => c.end('hi'));
      let got = '';
      c.on('data', (d) => { got += d.toString(); });
      c.on('close', () => resolve(got));
      c.on('error', reject);
    });
    assert.equal(echoed, 'guest 80 got hi');
    assert.deepEqual(tcpSeen, [{ id: 1, guest: '10.0.2.100:80' }]);

    // The same port is taken now: a second forward on it fails like slirp4netns.
    assert.equal((await ask(server.path, tcp({ host_addr: '127.0.0.1', host_port: tcpPort }))).text,
      E('add_hostfwd: slirp_add_hostfwd failed'));

    const u = JSON.parse((await ask(server.path, add({ proto: 'udp', host_addr: '127.0.0.1', host_port: 0, guest_port: 53 }))).text) as { return: { id: number; host_port: number } };
    assert.equal(u.return.id, 2);
    const dg = dgram.createSocket('udp4');
    const reply = await new Promise<string>((resolve, reject) => {
      dg.on('message', (m) => resolve(m.toString()));
      dg.on('error', reject);
      dg.send('q', u.return.host_port, '127.0.0.1');
    });
    dg.close();
    assert.equal(reply, 'guest 53 got q from 127.0.0.1');

    const list = JSON.parse((await ask(server.path, '{"execute":"list_hostfwd"}')).text) as { entries: Array<{ host_port: number }> };
    assert.deepEqual(list.entries.map((e) => e.host_port), [tcpPort, u.return.host_port]);

    // A connection still open while its forward is removed: the remove does not wait for it.
    const held = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(tcpPort, '127.0.0.1', () => resolve(c));
      c.on('error', reject);
    });
    await waitForCount(() => tcpSeen.length === 2);
    assert.equal((await ask(server.path, '{"execute":"remove_hostfwd","arguments":{"id":1}}')).text, '{"return":{}}');
    const heldReply = new Promise<string>((resolve) => {
      let got = '';
      held.on('data', (d) => { got += d.toString(); });
      held.on('close', () => resolve(got));
    });
    held.write('still');
    assert.equal(await heldReply, 'guest 80 got still');
    await assert.rejects(new Promise((resolve, reject) => {
      const c = net.connect(tcpPort, '127.0.0.1', () => { c.destroy(); resolve(undefined); });
      c.on('error', reject);
    }), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    assert.equal((await ask(server.path, '{"execute":"remove_hostfwd","arguments":{"id":2}}')).text, '{"return":{}}');
    // A port can be reused after removal; ids keep counting.
    const again = JSON.parse((await ask(server.path, tcp({ host_addr: '127.0.0.1', host_port: tcpPort }))).text) as { return: { id: number } };
    assert.equal(again.return.id, 3);
  } finally {
    await backend.closeAll();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function waitForCount(pred: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
