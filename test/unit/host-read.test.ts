// HostReadPool / HostReader (src/translate/host-read.ts) against real loopback TCP sockets: bytes
// arrive complete and in order whichever buffer they were read into, a flow that fills the shared
// buffer moves to a private one, quiet flows go back, and the private-buffer bound holds.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { HostReadPool, HOST_READ_SHARED } from '../../src/translate/host-read';

interface Received { chunks: Buffer[]; mores: boolean[]; streamingSeen: boolean }

/** A server that writes `writes` in order (each after the previous was flushed), then ends. */
async function transfer(pool: HostReadPool, writes: Buffer[], opts: { pauseFirstMs?: number } = {}): Promise<Received> {
  const server = net.createServer((s) => {
    void (async () => {
      for (const w of writes) await new Promise<void>((r) => s.write(w, () => r()));
      s.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const got: Received = { chunks: [], mores: [], streamingSeen: false };
  try {
    await new Promise<void>((resolve, reject) => {
      let reader: ReturnType<HostReadPool['reader']>;
      // eslint-disable-next-line prefer-const
      reader = pool.reader((b, more) => {
        got.chunks.push(Buffer.from(b)); // copy: the test keeps them past the reader's reuse
        got.mores.push(more);
        if (reader.isStreaming) got.streamingSeen = true;
      });
      const sock = net.connect({ host: '127.0.0.1', port, onread: { buffer: reader.buffer, callback: reader.callback } });
      if (opts.pauseFirstMs !== undefined) {
        // Let the server fill the socket before the first read, so reads come back full.
        sock.pause();
        sock.once('connect', () => setTimeout(() => sock.resume(), opts.pauseFirstMs));
      }
      sock.on('end', () => { reader.release(); sock.destroy(); resolve(); });
      sock.on('error', reject);
    });
  } finally {
    server.close();
  }
  return got;
}

const sha = (bs: Buffer[]): string => {
  const h = createHash('sha256');
  for (const b of bs) h.update(b);
  return h.digest('hex');
};

describe('HostReadPool', () => {
  test('small messages are copied out of the shared buffer, in order', async () => {
    const pool = new HostReadPool();
    const writes = Array.from({ length: 20 }, (_, i) => Buffer.from(`message ${i};`));
    const got = await transfer(pool, writes);
    assert.equal(Buffer.concat(got.chunks).toString(), writes.map(String).join(''));
    assert.equal(got.streamingSeen, false);
    assert.equal(pool.streaming, 0);
  });

  test('a bulk transfer moves to a private buffer and arrives intact; release returns the slot', async () => {
    const pool = new HostReadPool();
    const writes = Array.from({ length: 16 }, () => randomBytes(256 * 1024));
    const got = await transfer(pool, writes, { pauseFirstMs: 100 });
    assert.equal(sha(got.chunks), sha(writes));
    assert.equal(got.streamingSeen, true, 'a full shared read should switch to a private buffer');
    assert.ok(got.chunks.some((c) => c.length > HOST_READ_SHARED), 'private reads are larger than 64 KiB');
    assert.equal(pool.streaming, 0);
  });

  test('chunks kept from a private buffer are not overwritten by later reads', async () => {
    const pool = new HostReadPool();
    const writes = Array.from({ length: 24 }, () => randomBytes(128 * 1024));
    const kept: Buffer[] = [];
    const server = net.createServer((s) => { for (const w of writes) s.write(w); s.end(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      await new Promise<void>((resolve, reject) => {
        const reader = pool.reader((b) => { kept.push(b); }); // no copy: views stay as they are
        const sock = net.connect({ host: '127.0.0.1', port, onread: { buffer: reader.buffer, callback: reader.callback } });
        sock.pause();
        sock.once('connect', () => setTimeout(() => sock.resume(), 100));
        sock.on('end', () => { reader.release(); sock.destroy(); resolve(); });
        sock.on('error', reject);
      });
    } finally {
      server.close();
    }
    assert.equal(sha(kept), sha(writes));
  });

  test('at most maxStreaming readers hold a private buffer', async () => {
    const pool = new HostReadPool(256 * 1024, 1);
    const a = pool.reader(() => {});
    const b = pool.reader(() => {});
    const full = a.buffer();
    assert.equal(full.length, HOST_READ_SHARED);
    a.callback(full.length, full);
    assert.equal(a.isStreaming, true);
    const full2 = b.buffer();
    b.callback(full2.length, full2);
    assert.equal(b.isStreaming, false, 'the second reader stays on the shared buffer');
    assert.equal(pool.streaming, 1);
    // A short read ends streaming; release is idempotent.
    const room = a.buffer();
    assert.ok(room.length > HOST_READ_SHARED);
    a.callback(100, room);
    assert.equal(a.isStreaming, false);
    a.release();
    assert.equal(pool.streaming, 0);
  });
});

describe('HostReader buffer reuse', () => {
  test('a carved-out buffer returns to the pool once acknowledged past its last chunk, not before', () => {
    const pool = new HostReadPool(256 * 1024, 4);
    const chunks: Buffer[] = [];
    const r = pool.reader((b) => { chunks.push(b); });
    const K = 1024;
    let room = r.buffer();
    r.callback(room.length, room); // a full shared read: streaming, private buffer 1
    assert.equal(pool.allocated, 1);
    room = r.buffer();
    r.callback(200 * K, room); // 56 KiB of room left (< 64 KiB): buffer 1 retired, buffer 2 taken
    assert.equal(pool.allocated, 2);
    const end1 = HOST_READ_SHARED + 200 * K; // stream offset just past buffer 1's last chunk
    r.acked(end1 - 1); // not all of buffer 1 acknowledged: it stays out
    room = r.buffer();
    r.callback(room.length, room); // buffer 2 full: retired, buffer 3 newly allocated
    assert.equal(pool.allocated, 3);
    assert.equal(pool.reused, 0);
    r.acked(end1);
    room = r.buffer();
    r.callback(room.length, room); // buffer 3 full: retired; the next one is buffer 1 again
    assert.equal(pool.reused, 1);
    assert.equal(pool.allocated, 3);
    assert.equal(chunks.reduce((n, c) => n + c.length, 0), HOST_READ_SHARED + 200 * K + 2 * 256 * K);
    r.release();
    assert.equal(pool.streaming, 0);
  });
});
