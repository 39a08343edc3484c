// Host -> guest framing with offloads: bulk bytes from a host socket go to the guest as full
// superframes (44 x MSS 1460 = 64240 bytes), not as a superframe plus a runt per host read (the
// tail of a read waits for the next one while the socket is still delivering, see trySend), and
// a busy socket is read through the pooled big buffers (host-read.ts) without losing or
// reordering a byte. Guest: the scripted stack of test/helpers/tcp-guest.ts over a MemoryDevice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { F, Guest, Harness, handshake, listen, sha, waitFor } from '../helpers/tcp-guest';

const FULL = 44 * 1460;

test('bulk host -> guest: full superframes, data intact, FIN after the last byte', async () => {
  const data = randomBytes(6 * 1024 * 1024 + 1234);
  // The server writes everything at once and ends: the host socket is always backlogged.
  const srv = await listen((s) => { s.end(data); });
  const h = new Harness();
  try {
    const g = new Guest(h, srv.port);
    g.rcvWnd = 8 << 20;
    await handshake(h, srv.port, g);
    await waitFor(() => g.finReceived, () => `FIN (got ${g.recvBytes} of ${data.length})`, 20_000);
    assert.equal(sha(g.received()), sha(data), 'bytes intact and in order');
    const frames = h.framesTo(g.sport).filter((s) => s.payload.length > 0);
    const sizes = frames.map((s) => s.payload.length);
    assert.ok(sizes.every((n) => n <= FULL), 'no superframe above 44 x MSS');
    const runts = sizes.slice(0, -1).filter((n) => n < FULL).length;
    // Before the tail hold every 64 KiB read made a 1296-byte runt (one per full frame). Now a
    // short frame appears only where a read came back short (the socket momentarily empty).
    assert.ok(runts * 4 <= frames.length, `${runts} short frames among ${frames.length}`);
    const last = frames[frames.length - 1]!;
    assert.ok((last.flags & F.FIN) !== 0 || h.framesTo(g.sport).some((s) => (s.flags & F.FIN) !== 0), 'FIN sent');
  } finally {
    h.close();
    await srv.close();
  }
});

test('several bulk flows at once keep their bytes apart', async () => {
  const blobs = [randomBytes(3 << 20), randomBytes((2 << 20) + 77), randomBytes(5 << 20)];
  let next = 0;
  const srv = await listen((s) => { s.end(blobs[next++]!); });
  const h = new Harness();
  try {
    const guests: Guest[] = [];
    for (let i = 0; i < blobs.length; i++) {
      const g = new Guest(h, srv.port);
      g.rcvWnd = 4 << 20;
      await handshake(h, srv.port, g); // one at a time: connection i gets blob i
      guests.push(g);
    }
    await waitFor(() => guests.every((g) => g.finReceived), 'all FINs', 20_000);
    guests.forEach((g, i) => assert.equal(sha(g.received()), sha(blobs[i]!), `flow ${i}`));
  } finally {
    h.close();
    await srv.close();
  }
});
