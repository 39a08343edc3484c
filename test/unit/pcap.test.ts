// The pcap writer: files that libpcap readers accept, byte-exact records, bounded buffering and
// no exceptions into the data path.
import { test, describe, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
// The module object itself (not an import namespace), so a test can mock one of its methods.
import fsModule = require('node:fs');
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FIXTURE_NAMES, loadFixture } from '../fixtures/load';
import {
  PcapWriter, PcapOpenError, PCAP_MAGIC_USEC, LINKTYPE_ETHERNET, PCAP_DEFAULT_SNAPLEN,
  PCAP_GLOBAL_HDR_LEN, PCAP_RECORD_HDR_LEN,
} from '../../src/link/pcap';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapswitch-pcap-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmpFile = (): string => path.join(dir, `t${fileNo++}.pcap`);

interface Rec { sec: number; usec: number; incl: number; orig: number; data: Uint8Array }
interface Pcap { magic: number; major: number; minor: number; zone: number; sigfigs: number; snaplen: number; linktype: number; recs: Rec[] }

/** A strict reader for what the writer produces: fails on any trailing partial record. */
function readPcap(file: string): Pcap {
  const b = fs.readFileSync(file);
  assert.ok(b.length >= PCAP_GLOBAL_HDR_LEN, 'global header present');
  const p: Pcap = {
    magic: b.readUInt32LE(0), major: b.readUInt16LE(4), minor: b.readUInt16LE(6), zone: b.readInt32LE(8),
    sigfigs: b.readUInt32LE(12), snaplen: b.readUInt32LE(16), linktype: b.readUInt32LE(20), recs: [],
  };
  let o = PCAP_GLOBAL_HDR_LEN;
  while (o < b.length) {
    assert.ok(o + PCAP_RECORD_HDR_LEN <= b.length, 'record header complete');
    const incl = b.readUInt32LE(o + 8);
    assert.ok(o + PCAP_RECORD_HDR_LEN + incl <= b.length, 'record data complete');
    p.recs.push({
      sec: b.readUInt32LE(o), usec: b.readUInt32LE(o + 4), incl, orig: b.readUInt32LE(o + 12),
      data: new Uint8Array(b.subarray(o + 16, o + 16 + incl)),
    });
    o += PCAP_RECORD_HDR_LEN + incl;
  }
  return p;
}

const fixedClock = (): number => 1_795_000_000_123.456;
const fixtures = FIXTURE_NAMES.map((n) => loadFixture(n));

describe('pcap writer', () => {
  test('global header: a1b2c3d4, 2.4, UTC, snaplen, LINKTYPE_ETHERNET', () => {
    const f = tmpFile();
    PcapWriter.open(f, { flushIntervalMs: 0 }).close();
    const p = readPcap(f);
    assert.deepEqual(fs.readFileSync(f).subarray(0, 4), Buffer.from([0xd4, 0xc3, 0xb2, 0xa1]));
    assert.equal(p.magic, PCAP_MAGIC_USEC);
    assert.equal(p.major, 2);
    assert.equal(p.minor, 4);
    assert.equal(p.zone, 0);
    assert.equal(p.sigfigs, 0);
    assert.equal(p.snaplen, PCAP_DEFAULT_SNAPLEN);
    assert.ok(p.snaplen >= 65535 + 14);
    assert.equal(p.linktype, LINKTYPE_ETHERNET);
    assert.equal(p.recs.length, 0);
  });

  test('records: virtio-net header stripped, bytes exact, timestamps in microseconds', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0, now: fixedClock });
    // Frames live at offsets inside one slab, as on the receive path.
    const slab = new Uint8Array(fixtures.reduce((n, x) => n + x.length + 7, 0));
    let off = 3;
    for (const fr of fixtures) {
      slab.set(fr, off);
      w.writeFrame(slab, off, fr.length);
      off += fr.length + 7;
    }
    w.close();
    const p = readPcap(f);
    assert.equal(p.recs.length, fixtures.length);
    p.recs.forEach((r, i) => {
      const fr = fixtures[i]!;
      assert.equal(r.sec, 1_795_000_000);
      assert.equal(r.usec, 123_456);
      assert.equal(r.incl, fr.length - 10);
      assert.equal(r.orig, fr.length - 10);
      assert.deepEqual(r.data, fr.subarray(10));
    });
    assert.equal(w.counters.frames, fixtures.length);
    assert.equal(w.counters.bytes, fixtures.reduce((n, x) => n + x.length - 10, 0));
    assert.equal(w.counters.dropped, 0);
    assert.equal(w.counters.errors, 0);
  });

  test('writeParts: a frame sent as [header, headers, payload] records like one buffer', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0, now: fixedClock });
    const syn = loadFixture('tcp-syn');
    const sf = loadFixture('tcp-superframe');
    w.writeParts([syn.subarray(0, 10), syn.subarray(10, 30), syn.subarray(30)]);
    w.writeParts([sf.subarray(0, 4), sf.subarray(4, 76), sf.subarray(76)]); // header split mid-way
    w.writeParts([sf.subarray(0, 10), new Uint8Array(0), sf.subarray(10)]);
    w.close();
    const p = readPcap(f);
    assert.equal(p.recs.length, 3);
    assert.deepEqual(p.recs[0]!.data, syn.subarray(10));
    assert.deepEqual(p.recs[1]!.data, sf.subarray(10));
    assert.deepEqual(p.recs[2]!.data, sf.subarray(10));
  });

  test('snaplen truncates incl_len and keeps orig_len', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0, snaplen: 96 });
    const sf = loadFixture('tcp-superframe');
    w.writeFrame(sf, 0, sf.length);
    w.writeParts([sf.subarray(0, 50), sf.subarray(50)]);
    const arp = loadFixture('arp-request');
    w.writeFrame(arp, 0, arp.length);
    w.close();
    const p = readPcap(f);
    assert.equal(p.snaplen, 96);
    for (const r of p.recs.slice(0, 2)) {
      assert.equal(r.incl, 96);
      assert.equal(r.orig, 65226);
      assert.deepEqual(r.data, sf.subarray(10, 106));
    }
    assert.equal(p.recs[2]!.incl, 42);
  });

  test('a small buffer flushes as it fills; the file is the same', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0, bufferSize: 1 }); // clamped to one max record
    for (let i = 0; i < 3; i++) for (const fr of fixtures) w.writeFrame(fr, 0, fr.length);
    assert.ok(w.counters.flushes >= 3, `flushes: ${w.counters.flushes}`);
    w.close();
    const p = readPcap(f);
    assert.equal(p.recs.length, 3 * fixtures.length);
    p.recs.forEach((r, i) => assert.deepEqual(r.data, fixtures[i % fixtures.length]!.subarray(10)));
  });

  test('the timer flushes buffered records before close', async () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 10 });
    const arp = loadFixture('arp-request');
    w.writeFrame(arp, 0, arp.length);
    assert.equal(fs.statSync(f).size, PCAP_GLOBAL_HDR_LEN, 'buffered, not yet written');
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(fs.statSync(f).size, PCAP_GLOBAL_HDR_LEN + PCAP_RECORD_HDR_LEN + 42);
    w.close();
  });

  test('bad input is dropped and counted, never thrown', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0 });
    const b = new Uint8Array(20);
    w.writeFrame(b, 0, 9);       // shorter than the virtio-net header
    w.writeFrame(b, 15, 10);     // runs past the buffer
    w.writeFrame(b, -1, 12);     // negative offset
    w.writeParts([]);            // nothing
    w.writeParts([b.subarray(0, 4)]);
    w.writeFrame(b, 0, 10);      // header only: an empty Ethernet record is still a record
    assert.equal(w.counters.dropped, 5);
    assert.equal(w.counters.frames, 1);
    w.close();
    w.writeFrame(b, 0, 20);      // after close
    w.writeParts([b]);
    w.flush();
    w.close();                   // twice
    assert.equal(w.counters.dropped, 7);
    assert.equal(w.isOpen, false);
    assert.equal(readPcap(f).recs.length, 1);
  });

  test('write errors (ENOSPC) are counted; after repeated failures the writer gives up', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0 });
    // Swap the file for /dev/full under the same descriptor number (POSIX hands out the lowest
    // free number, which is the one just closed).
    const priv = w as unknown as { fd: number };
    fs.closeSync(priv.fd);
    const full = fs.openSync('/dev/full', 'w');
    assert.equal(full, priv.fd);
    const arp = loadFixture('arp-request');
    for (let i = 0; i < 20; i++) {
      assert.doesNotThrow(() => { w.writeFrame(arp, 0, arp.length); w.flush(); });
    }
    assert.equal(w.counters.errors, 8);
    assert.equal(w.isOpen, false, 'closed itself after 8 consecutive failures');
    assert.equal(w.counters.frames, 0, 'nothing reached the file');
    assert.equal(w.counters.dropped, 20);
    assert.doesNotThrow(() => w.close());
  });

  test('a write that fails half-way is cut off: the file stays readable', () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0 });
    const arp = loadFixture('arp-request');
    const syn = loadFixture('tcp-syn');
    w.writeFrame(arp, 0, arp.length);
    w.flush();
    // The next flush writes 30 bytes of a record, then the disk fills up.
    let calls = 0;
    const real = fsModule.writeSync;
    const m = mock.method(fsModule, 'writeSync', (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => {
      if (calls++ === 0) return real(fd, buf, off, Math.min(len, 30), pos);
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    });
    try {
      w.writeFrame(syn, 0, syn.length);
      assert.doesNotThrow(() => w.flush());
    } finally {
      m.mock.restore();
    }
    assert.equal(w.counters.errors, 1);
    assert.equal(w.counters.dropped, 1);
    assert.equal(w.isOpen, true);
    assert.equal(readPcap(f).recs.length, 1, 'no partial record at the end of the file');
    w.writeFrame(syn, 0, syn.length);
    w.close();
    const p = readPcap(f);
    assert.equal(p.recs.length, 2);
    assert.deepEqual(p.recs[0]!.data, arp.subarray(10));
    assert.deepEqual(p.recs[1]!.data, syn.subarray(10));
    assert.equal(w.counters.frames, 2);
  });

  test('open: a missing directory is a coded error', () => {
    assert.throws(() => PcapWriter.open(path.join(dir, 'no', 'such', 'dir', 'x.pcap')),
      (e: unknown) => e instanceof PcapOpenError && e.code === 'ERR_PCAP_OPEN' && /cannot create/.test(e.message));
  });

  test('open: a file that cannot take the header is a coded error', () => {
    assert.throws(() => PcapWriter.open('/dev/full'),
      (e: unknown) => e instanceof PcapOpenError && /cannot write/.test(e.message));
  });

  test('open: an invalid snaplen is a coded error', () => {
    assert.throws(() => PcapWriter.open(tmpFile(), { snaplen: 0 }), PcapOpenError);
    assert.throws(() => PcapWriter.open(tmpFile(), { snaplen: 1.5 }), PcapOpenError);
  });

  const tcpdump = spawnSync('tcpdump', ['--version'], { encoding: 'utf8' });
  const noTcpdump = tcpdump.error ? `tcpdump not installed (${tcpdump.error.message})` : false;
  if (noTcpdump) console.log(`# skipping the tcpdump check: ${noTcpdump}`);

  test('tcpdump -r reads the file and decodes every captured frame', { skip: noTcpdump }, () => {
    const f = tmpFile();
    const w = PcapWriter.open(f, { flushIntervalMs: 0 });
    for (const fr of fixtures) w.writeFrame(fr, 0, fr.length);
    w.close();
    const r = spawnSync('tcpdump', ['-nn', '-r', f], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, fixtures.length, r.stdout);
    const out = r.stdout;
    assert.match(out, /ARP, Request who-has 10\.0\.2\.3 tell 10\.0\.2\.100/);
    assert.match(out, /0\.0\.0\.0\.68 > 255\.255\.255\.255\.67: BOOTP\/DHCP, Request/);
    assert.match(out, /10\.0\.2\.100 > 10\.0\.2\.2: ICMP echo request, id 7334, seq 0/);
    assert.match(out, /10\.0\.2\.100\.40053 > 10\.0\.2\.3\.53: 31324\+ A\? example\.com\./);
    assert.match(out, /10\.0\.2\.100\.41000 > 10\.0\.2\.2\.8080: Flags \[S\], seq 218931890, win 64240, options \[mss 1460,sackOK,TS val \d+ ecr 0,nop,wscale 10\]/);
    const sf = /Flags \[P\.\], seq (\d+):(\d+), ack 1, win 63, .* length 65160/.exec(out);
    assert.ok(sf, 'the superframe is one 65160-byte segment');
    assert.equal(Number(sf[2]) - Number(sf[1]), 65160);
    assert.match(out, /Flags \[F\.\]/);
    assert.match(out, /fe80::54:53ff:fe00:64 > ff02::2: ICMP6, router solicitation/);
  });
});
