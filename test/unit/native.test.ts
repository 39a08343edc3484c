// Tests of the C addon against the real kernel. Each kernel test gets a throwaway user+net
// namespace (`unshare -Urn sleep 30`), opens its TAP there through native.openTap, and uses the
// namespace's own stack as the peer: `ip` shows what the link config did, and traffic the namespace
// sends (ARP, UDP, TCP) must come out of readBatch, while frames written with writev must reach it.
//
// Requirements, each skipped with a reason when missing: /dev/net/tun openable, user namespaces
// (`unshare -Urn`), nsenter and ip. The Poller tests need none of these (they poll a FIFO).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as dgram from 'node:dgram';
import { native } from '../../src/link/native';
import { dgramFd } from '../../src/translate/host-batch';
import type { OpenTapError } from '../../native/index';

const execFileAsync = (file: string, args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve(stdout)));

// ---------------------------------------------------------------------------------------------
// What the machine offers

function missingForKernelTests(): string | false {
  try {
    fs.closeSync(fs.openSync('/dev/net/tun', 'r+'));
  } catch (e) {
    return `/dev/net/tun cannot be opened (${(e as NodeJS.ErrnoException).code})`;
  }
  for (const [cmd, args] of [['nsenter', ['--version']], ['ip', ['-V']], ['unshare', ['--version']]] as const) {
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    if (r.error) return `${cmd} is not installed (${(r.error as NodeJS.ErrnoException).code})`;
  }
  const r = spawnSync('unshare', ['-Urn', 'true'], { encoding: 'utf8' });
  if (r.status !== 0) return `user namespaces are unavailable: unshare -Urn failed: ${(r.stderr || '').trim()}`;
  return false;
}

const kernelSkip = missingForKernelTests();
if (kernelSkip) console.log(`# native kernel tests skipped: ${kernelSkip}`);

// ---------------------------------------------------------------------------------------------
// A throwaway namespace and the fds we open in it

const liveChildren = new Set<ChildProcess>();
const openFds = new Set<number>();
process.on('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
});
after(() => {
  for (const fd of openFds) native.close(fd);
  openFds.clear();
  for (const c of liveChildren) c.kill('SIGKILL');
});

function track<T extends { fds: number[] }>(r: T): T {
  for (const fd of r.fds) openFds.add(fd);
  return r;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    assert.equal(native.close(fd), 0);
    openFds.delete(fd);
  }
}

class Sandbox {
  private constructor(readonly child: ChildProcess, readonly pid: number) {}

  /** Starts `unshare -Urn sleep 30` and waits until it has written its uid map and exec'd. */
  static async start(): Promise<Sandbox> {
    const child = spawn('unshare', ['-Urn', 'sleep', '30'], { stdio: ['ignore', 'ignore', 'pipe'] });
    liveChildren.add(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const pid = child.pid;
    if (pid === undefined) throw new Error('unshare did not start');
    const deadline = Date.now() + 5000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`unshare exited: ${stderr}`);
      try {
        if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep') break;
      } catch {
        // not there yet
      }
      if (Date.now() > deadline) throw new Error('unshare -Urn sleep did not come up');
      await new Promise((r) => setTimeout(r, 2));
    }
    return new Sandbox(child, pid);
  }

  get userns(): string {
    return `/proc/${this.pid}/ns/user`;
  }

  get netns(): string {
    return `/proc/${this.pid}/ns/net`;
  }

  private nsenterArgs(args: string[]): string[] {
    return ['-t', String(this.pid), '-U', '-n', '--preserve-credentials', ...args];
  }

  /** Runs a command inside the namespace and returns its stdout. */
  run(...args: string[]): Promise<string> {
    return execFileAsync('nsenter', this.nsenterArgs(args));
  }

  /** Runs a command inside the namespace; resolves true when it exits 0. */
  async succeeds(...args: string[]): Promise<boolean> {
    try {
      await this.run(...args);
      return true;
    } catch {
      return false;
    }
  }

  /** A long-running process inside the namespace, killed at the end of the test file. */
  spawn(...args: string[]): ChildProcess {
    const c = spawn('nsenter', this.nsenterArgs(args), { stdio: 'ignore' });
    liveChildren.add(c);
    return c;
  }

  async json<T>(...args: string[]): Promise<T> {
    return JSON.parse(await this.run('ip', '-j', ...args)) as T;
  }

  stop(): void {
    this.child.kill('SIGKILL');
    liveChildren.delete(this.child);
  }
}

async function withSandbox(fn: (sb: Sandbox) => Promise<void>): Promise<void> {
  const sb = await Sandbox.start();
  try {
    await fn(sb);
  } finally {
    sb.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Frames

const TAP_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const PEER_MAC = Uint8Array.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
const TAP_IP = 0x0a000264; // 10.0.2.100
const GW_IP = 0x0a000202; // 10.0.2.2
const VNET = 10;
const ETH = 14;

interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

function parseVnet(f: Buffer): VnetHeader {
  return {
    flags: f[0]!,
    gsoType: f[1]!,
    hdrLen: f.readUInt16LE(2),
    gsoSize: f.readUInt16LE(4),
    csumStart: f.readUInt16LE(6),
    csumOffset: f.readUInt16LE(8),
  };
}

const macString = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
const ipString = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

function isArpRequestFor(f: Buffer, target: number): boolean {
  return f.length >= VNET + ETH + 28 && f.readUInt16BE(VNET + 12) === 0x0806 &&
    f.readUInt16BE(VNET + ETH + 6) === 1 && f.readUInt32BE(VNET + ETH + 24) === target;
}

/** IPv4 (no options checked) with the given protocol and destination. */
function isIpv4To(f: Buffer, proto: number, dst: number): boolean {
  return f.length >= VNET + ETH + 20 && f.readUInt16BE(VNET + 12) === 0x0800 &&
    f[VNET + ETH + 9] === proto && f.readUInt32BE(VNET + ETH + 16) === dst;
}

function arpReply(): Buffer {
  const f = Buffer.alloc(ETH + 28);
  f.set(TAP_MAC, 0);
  f.set(PEER_MAC, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16); // IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(2, 20); // reply
  f.set(PEER_MAC, 22);
  f.writeUInt32BE(GW_IP, 28);
  f.set(TAP_MAC, 32);
  f.writeUInt32BE(TAP_IP, 38);
  return f;
}

function checksum(b: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length & 1) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A SYN-ACK from 10.0.2.2:80 answering `syn` (a frame with vnet header), MSS 1460, wscale 7. */
function synAck(syn: Buffer): Buffer {
  const ip = VNET + ETH;
  const tcp = ip + (syn[ip]! & 15) * 4;
  const f = Buffer.alloc(ETH + 20 + 28);
  f.set(TAP_MAC, 0);
  f.set(PEER_MAC, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 28, 16);
  f.writeUInt16BE(0x4000, 20); // DF
  f[22] = 64;
  f[23] = 6;
  f.writeUInt32BE(GW_IP, 26);
  f.writeUInt32BE(TAP_IP, 30);
  f.writeUInt16BE(checksum(f.subarray(14, 34)), 24);
  const t = 34;
  f.writeUInt16BE(80, t);
  f.writeUInt16BE(syn.readUInt16BE(tcp), t + 2);
  f.writeUInt32BE(1000, t + 4);
  f.writeUInt32BE((syn.readUInt32BE(tcp + 4) + 1) >>> 0, t + 8);
  f[t + 12] = 7 << 4;
  f[t + 13] = 0x12; // SYN|ACK
  f.writeUInt16BE(65535, t + 14);
  f.set([2, 4, 0x05, 0xb4, 1, 3, 3, 7], t + 20); // MSS 1460, NOP, wscale 7
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(GW_IP, 0);
  pseudo.writeUInt32BE(TAP_IP, 4);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(28, 10);
  f.writeUInt16BE(checksum(Buffer.concat([pseudo, f.subarray(t)])), t + 16);
  return f;
}

const SLOT = 65536 + 128; // a 64 KiB superframe plus its vnet header fits
const SLOTS = 8;

/**
 * Polls `fd` with a Poller, draining it with readBatch, until `pick` accepts a frame (copied out
 * of the slab). Counts the callbacks to show the Poller, not a timer, delivered the frames.
 */
function waitForFrame(fd: number, pick: (f: Buffer) => boolean, timeoutMs = 4000):
  Promise<{ frame: Buffer; callbacks: number }> {
  const slab = Buffer.alloc(SLOT * SLOTS);
  const slots = Int32Array.from({ length: SLOTS }, (_, i) => SLOTS - 1 - i); // reversed on purpose
  const lengths = new Int32Array(SLOTS);
  return new Promise((resolve, reject) => {
    let callbacks = 0;
    const poller = new native.Poller(fd, () => {
      callbacks++;
      for (;;) {
        const n = native.readBatch(fd, slab, SLOT, 0, slots, SLOTS, lengths);
        if (n < 0) return finish(new Error(`readBatch: ${n}`));
        if (n === 0) return;
        for (let i = 0; i < n; i++) {
          const start = slots[i]! * SLOT;
          const f = Buffer.from(slab.subarray(start, start + lengths[i]!));
          if (pick(f)) return finish(undefined, f);
        }
      }
    });
    const timer = setTimeout(() => finish(new Error('timed out waiting for a frame')), timeoutMs);
    function finish(err?: Error, frame?: Buffer) {
      clearTimeout(timer);
      poller.close();
      if (err) reject(err);
      else resolve({ frame: frame!, callbacks });
    }
    poller.start();
  });
}

// ---------------------------------------------------------------------------------------------
// The kernel tests

interface IpAddr {
  ifname: string;
  flags: string[];
  mtu: number;
  address: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

describe('openTap and frame I/O in a throwaway namespace', { skip: kernelSkip }, () => {
  test('configures the link in one visit and frames flow both ways', async (t) => {
    await withSandbox(async (sb) => {
      const t0 = process.hrtime.bigint();
      const tap = track(native.openTap({
        userns: sb.userns, netns: sb.netns, name: 'tap0', queues: 1, vnetHdr: true,
        offloads: native.TUN_F.CSUM | native.TUN_F.TSO4 | native.TUN_F.TSO6, loopbackUp: true,
        link: { mtu: 1400, address: TAP_IP, prefixLength: 24, gateway: GW_IP, mac: TAP_MAC },
      }));
      t.diagnostic(`openTap with link config: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2)} ms`);
      assert.equal(tap.fds.length, 1);
      assert.equal(tap.vnetHdr, true);
      assert.equal(tap.offloads, 7);
      assert.deepEqual(Array.from(tap.mac), Array.from(TAP_MAC));
      const fd = tap.fds[0]!;

      const links = await sb.json<IpAddr[]>('addr', 'show');
      const tap0 = links.find((l) => l.ifname === 'tap0');
      const lo = links.find((l) => l.ifname === 'lo');
      assert.ok(tap0 && lo);
      assert.ok(tap0.flags.includes('UP'), `tap0 flags ${tap0.flags}`);
      assert.equal(tap0.mtu, 1400);
      assert.equal(tap0.address, macString(TAP_MAC));
      assert.ok(tap0.addr_info.some((a) => a.family === 'inet' && a.local === '10.0.2.100' && a.prefixlen === 24));
      assert.ok(lo.flags.includes('UP'));
      const [route] = await sb.json<{ dst: string; gateway: string; dev: string }[]>('route', 'show', 'default');
      assert.deepEqual({ dst: route?.dst, gateway: route?.gateway, dev: route?.dev },
        { dst: 'default', gateway: '10.0.2.2', dev: 'tap0' });
      const [link] = await sb.json<{ ifindex: number }[]>('link', 'show', 'tap0');
      assert.equal(tap.ifindex, link?.ifindex);

      // A UDP datagram to the gateway: the namespace must first ask for its MAC.
      const udpCode = "require('dgram').createSocket('udp4').send('hi', 9, '10.0.2.2', () => process.exit(0))";
      const arpWait = waitForFrame(fd, (f) => isArpRequestFor(f, GW_IP));
      await sb.run(process.execPath, '-e', udpCode);
      const { frame: arp, callbacks } = await arpWait;
      assert.ok(callbacks >= 1);
      assert.deepEqual(Array.from(arp.subarray(VNET, VNET + 6)), [255, 255, 255, 255, 255, 255]);
      assert.deepEqual(Array.from(arp.subarray(VNET + 6, VNET + 12)), Array.from(TAP_MAC));
      assert.equal(arp.readUInt32BE(VNET + ETH + 14), TAP_IP, 'ARP sender is 10.0.2.100');
      assert.equal(parseVnet(arp).gsoType, 0);

      // Answer it: the kernel learns the neighbour and releases the queued datagram to our MAC.
      const udpWait = waitForFrame(fd, (f) => isIpv4To(f, 17, GW_IP));
      const reply = arpReply();
      assert.equal(native.writev(fd, [new Uint8Array(VNET), reply]), VNET + reply.length);
      const { frame: udp } = await udpWait;
      assert.deepEqual(Array.from(udp.subarray(VNET, VNET + 6)), Array.from(PEER_MAC));
      const vh = parseVnet(udp);
      assert.equal(vh.gsoType, 0);
      const ipLen = (udp[VNET + ETH]! & 15) * 4;
      assert.equal(udp.readUInt16BE(VNET + ETH + ipLen + 2), 9, 'UDP destination port');
      if (vh.flags & 1) {
        // NEEDS_CSUM (checksum offload): the kernel points at the UDP checksum field.
        assert.equal(vh.csumStart, ETH + ipLen);
        assert.equal(vh.csumOffset, 6);
      }
      t.diagnostic(`UDP frame vnet header: ${JSON.stringify(vh)}`);

      const neigh = await sb.json<{ dst: string; lladdr?: string; state: string[] }[]>('neigh', 'show', 'dev', 'tap0');
      const gw = neigh.find((n) => n.dst === '10.0.2.2');
      assert.ok(gw, JSON.stringify(neigh));
      assert.equal(gw.lladdr, macString(PEER_MAC));
      assert.ok(!gw.state.includes('INCOMPLETE') && !gw.state.includes('FAILED'), `state ${gw.state}`);

      // Once drained, readBatch returns 0 rather than blocking. The namespace may still be emitting
      // IPv6 link-local chatter (router solicitations, MLD reports) now that tap0 is up: drain it.
      const lengths = new Int32Array(1);
      let got = 0;
      let drained = 0;
      while ((got = native.readBatch(fd, Buffer.alloc(SLOT), SLOT, 0, Int32Array.of(0), 1, lengths)) > 0 && drained < 64) drained += got;
      assert.equal(got, 0, `still reading after ${drained} frames`);

      closeAll(tap.fds);
      // No TUNSETPERSIST: the TAP is gone with its fd.
      assert.equal(await sb.succeeds('ip', 'link', 'show', 'tap0'), false);
    });
  });

  test('TSO: the namespace hands over a TCP superframe with a parseable vnet header', async () => {
    await withSandbox(async (sb) => {
      const tap = track(native.openTap({
        userns: sb.userns, netns: sb.netns, name: 'tap0', queues: 1, vnetHdr: true,
        offloads: native.TUN_F.CSUM | native.TUN_F.TSO4 | native.TUN_F.TSO6,
        link: { mtu: 1500, address: TAP_IP, prefixLength: 24, gateway: GW_IP, mac: TAP_MAC },
      }));
      const fd = tap.fds[0]!;
      await sb.run('ip', 'neigh', 'add', '10.0.2.2', 'lladdr', macString(PEER_MAC), 'dev', 'tap0');

      const synWait = waitForFrame(fd, (f) => isIpv4To(f, 6, GW_IP) && (f[VNET + ETH + 20 + 13]! & 0x12) === 0x02);
      sb.spawn(process.execPath, '-e',
        "const s = require('net').connect(80, '10.0.2.2', () => s.write(Buffer.alloc(1 << 20)));" +
        "s.on('error', () => {}); setTimeout(() => process.exit(0), 5000);");
      const { frame: syn } = await synWait;

      const superWait = waitForFrame(fd, (f) => isIpv4To(f, 6, GW_IP) && parseVnet(f).gsoType !== 0);
      const sa = synAck(syn);
      assert.equal(native.write(fd, Buffer.concat([Buffer.alloc(VNET), sa]), 0, VNET + sa.length), VNET + sa.length);
      const { frame } = await superWait;
      const vh = parseVnet(frame);
      assert.equal(vh.gsoType & 0x7f, 1, 'VIRTIO_NET_HDR_GSO_TCPV4');
      assert.equal(vh.gsoSize, 1460);
      assert.ok(frame.length - VNET > 1514, `superframe of ${frame.length - VNET} bytes`);
      assert.equal(vh.flags & 1, 1, 'NEEDS_CSUM');
      assert.equal(vh.csumStart, ETH + 20);
      assert.equal(vh.csumOffset, 16);
      closeAll(tap.fds);
    });
  });

  test('multi-queue: two distinct fds on one multi_queue TAP', async () => {
    await withSandbox(async (sb) => {
      const tap = track(native.openTap({
        userns: sb.userns, netns: sb.netns, name: 'mq0', queues: 2, vnetHdr: true,
        offloads: native.TUN_F.CSUM, up: true,
      }));
      assert.equal(tap.fds.length, 2);
      assert.notEqual(tap.fds[0], tap.fds[1]);
      const [link] = await sb.json<{ flags: string[]; linkinfo: { info_data: Record<string, unknown> } }[]>(
        '-d', 'link', 'show', 'mq0');
      assert.ok(link && link.flags.includes('UP'));
      assert.equal(link.linkinfo.info_data.multi_queue, true);
      assert.equal(link.linkinfo.info_data.numqueues, 2);
      assert.equal(link.linkinfo.info_data.vnet_hdr, true);
      closeAll(tap.fds);
    });
  });

  test('attach to a TAP made by `ip tuntap add` (no vnet header)', async () => {
    await withSandbox(async (sb) => {
      await sb.run('ip', 'tuntap', 'add', 'name', 'tap1', 'mode', 'tap');
      const base = { userns: sb.userns, netns: sb.netns, name: 'tap1', queues: 1, offloads: 0 };
      // Older kernels refuse the mismatch with EINVAL; 6.x attaches and switches the header on.
      try {
        const withHdr = track(native.openTap({ ...base, vnetHdr: true }));
        assert.equal(withHdr.vnetHdr, true);
        closeAll(withHdr.fds);
      } catch (e) {
        assert.equal((e as OpenTapError).code, 'EINVAL');
      }
      const plain = track(native.openTap({ ...base, vnetHdr: false, up: true }));
      assert.equal(plain.vnetHdr, false);
      assert.equal(plain.offloads, 0);
      const [link] = await sb.json<{ flags: string[]; linkinfo: { info_data: Record<string, unknown> } }[]>(
        '-d', 'link', 'show', 'tap1');
      assert.equal(link?.linkinfo.info_data.vnet_hdr, false);
      assert.ok(link.flags.includes('UP'));
      // A second attach to a single-queue TAP in use is refused.
      assert.throws(() => native.openTap({ ...base, vnetHdr: false }),
        (e: OpenTapError) => e.code === 'EBUSY' && e.step === 'tunsetiff');
      closeAll(plain.fds);
    });
  });

  test('errors carry code, errno, syscall and step, and leak no fd', async (t) => {
    const fdCount = () => fs.readdirSync('/proc/self/fd').length;
    const before = fdCount();
    assert.throws(() => native.openTap({ netns: '/nonexistent/ns/net', name: 'tap0', queues: 1, vnetHdr: true, offloads: 0 }),
      (e: OpenTapError) => {
        assert.ok(e instanceof Error);
        assert.equal(e.code, 'ENOENT');
        assert.equal(e.errno, os.constants.errno.ENOENT);
        assert.equal(e.syscall, 'open');
        assert.equal(e.step, 'open-netns');
        assert.equal(e.message, 'openTap: open-netns failed: No such file or directory (ENOENT)');
        return true;
      });
    assert.throws(() => native.openTap({ userns: '/nonexistent/user', netns: '/proc/self/ns/net', name: 'tap0', queues: 1, vnetHdr: true, offloads: 0 }),
      { code: 'ENOENT', step: 'open-userns' });

    await withSandbox(async (sb) => {
      const base = { userns: sb.userns, netns: sb.netns, queues: 2, vnetHdr: true, offloads: 0 };
      // Fails after both queues are open and the link is half configured: all must be undone.
      assert.throws(() => native.openTap({ ...base, name: 'tap0',
        link: { mtu: 1500, address: TAP_IP, prefixLength: 24, gateway: 0xc0a80101 } }),
      { code: 'ENETUNREACH', step: 'route', syscall: 'ioctl' });
      assert.equal(await sb.succeeds('ip', 'link', 'show', 'tap0'), false, 'the TAP vanished with its fds');
      assert.throws(() => native.openTap({ ...base, name: 'tap0', offloads: 0x80 }),
        { code: 'EINVAL', step: 'tunsetoffload' });
      assert.throws(() => native.openTap({ ...base, name: 'tap0', link: { mtu: 65535, address: TAP_IP, prefixLength: 24, gateway: 0 } }),
        { code: 'EINVAL', step: 'mtu' });
    });
    assert.equal(fdCount(), before, 'no fd leaked by failed visits');

    const bad = native.openTap as unknown as (o: unknown) => unknown;
    assert.throws(() => bad(undefined), TypeError);
    assert.throws(() => bad({ netns: '/proc/self/ns/net', name: 'x'.repeat(16), queues: 1, vnetHdr: true, offloads: 0 }), TypeError);
    assert.throws(() => bad({ netns: '/proc/self/ns/net', name: 'tap0', queues: 17, vnetHdr: true, offloads: 0 }), TypeError);
    assert.throws(() => bad({ netns: '/proc/self/ns/net', name: 'tap0', queues: 1, vnetHdr: true, offloads: 0,
      link: { mtu: 1500, address: 1, prefixLength: 24, gateway: 0, mac: new Uint8Array(5) } }), TypeError);
    t.diagnostic('argument errors are TypeErrors');
  });

  test('openTap cost (create, configure, close)', async (t) => {
    await withSandbox(async (sb) => {
      const times: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = process.hrtime.bigint();
        const tap = track(native.openTap({
          userns: sb.userns, netns: sb.netns, name: 'tap0', queues: 1, vnetHdr: true, offloads: 7,
          loopbackUp: true, link: { mtu: 1500, address: TAP_IP, prefixLength: 24, gateway: GW_IP },
        }));
        times.push(Number(process.hrtime.bigint() - t0) / 1e3);
        closeAll(tap.fds);
      }
      times.sort((a, b) => a - b);
      t.diagnostic(`openTap: median ${times[10]!.toFixed(0)} µs, min ${times[0]!.toFixed(0)} µs, max ${times[19]!.toFixed(0)} µs`);
      // Heap size must not matter (CLONE_VM: nothing is copied). Grow it and compare.
      const ballast = Array.from({ length: 64 }, () => Buffer.alloc(4 << 20, 1));
      const t0 = process.hrtime.bigint();
      const tap = track(native.openTap({ userns: sb.userns, netns: sb.netns, name: 'tap0', queues: 1, vnetHdr: true, offloads: 7 }));
      const big = Number(process.hrtime.bigint() - t0) / 1e3;
      closeAll(tap.fds);
      t.diagnostic(`openTap with ${ballast.length * 4} MiB more RSS: ${big.toFixed(0)} µs`);
      assert.ok(big < 50_000);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Syscall wrappers, argument checks, ping sockets

describe('frame I/O primitives', () => {
  test('readBatch, write, writev and close on a pipe; bad arguments throw TypeError', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapswitch-native-'));
    const fifo = path.join(dir, 'f');
    try {
      spawnSync('mkfifo', [fifo]);
      const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      try {
        const slab = new Uint8Array(4 * 64);
        const lengths = new Int32Array(4);
        assert.equal(native.readBatch(fd, slab, 64, 8, Int32Array.of(3), 1, lengths), 0, 'empty: 0');
        assert.equal(native.write(fd, Buffer.from('xxhelloxx'), 2, 5), 5);
        assert.equal(native.writev(fd, [Buffer.from(' '), new Uint8Array([119, 111]), Buffer.from('rld')]), 6);
        // A pipe merges the writes; one read takes at most slotSize - headroom = 56 bytes.
        assert.equal(native.readBatch(fd, slab, 64, 8, Int32Array.of(3, 0), 2, lengths), 1);
        assert.equal(lengths[0], 11);
        assert.equal(Buffer.from(slab.subarray(3 * 64 + 8, 3 * 64 + 8 + 11)).toString(), 'hello world');
        assert.ok(slab.subarray(0, 3 * 64 + 8).every((b) => b === 0), 'nothing written before the slot');

        const readBatch = native.readBatch as unknown as (...a: unknown[]) => number;
        const args = (over: Record<number, unknown>) =>
          [fd, slab, 64, 8, Int32Array.of(0), 1, lengths].map((v, i) => (i in over ? over[i] : v));
        for (const over of [
          { 4: Int32Array.of(4) }, { 4: Int32Array.of(-1) }, { 4: Int32Array.of(0, 1, 9), 5: 3 },
          { 2: 0 }, { 3: 64 }, { 3: -1 }, { 5: 2 }, { 6: new Int32Array(0) }, { 1: new Uint16Array(8) },
          { 4: new Uint32Array(1) }, { 0: -1 }, { 0: '3' }, { 2: 1.5 }, { 1: new Uint8Array(100), 2: 101 },
        ]) {
          assert.throws(() => readBatch(...args(over)), TypeError, JSON.stringify(Object.keys(over)));
        }
        assert.throws(() => readBatch(fd, slab), TypeError);
        const write = native.write as unknown as (...a: unknown[]) => number;
        assert.throws(() => write(fd, Buffer.alloc(4), 2, 3), TypeError);
        assert.throws(() => write(fd, Buffer.alloc(4), 5, 0), TypeError);
        assert.throws(() => write(fd, 'text', 0, 1), TypeError);
        const writev = native.writev as unknown as (...a: unknown[]) => number;
        assert.throws(() => writev(fd, Array.from({ length: 65 }, () => Buffer.alloc(1))), TypeError);
        assert.throws(() => writev(fd, [Buffer.alloc(1), 'no']), TypeError);
        assert.throws(() => writev(fd, Buffer.alloc(1)), TypeError);
      } finally {
        fs.closeSync(fd);
      }
      // Syscall errors come back as -errno.
      const { EBADF } = os.constants.errno;
      assert.equal(native.write(fd, Buffer.alloc(1), 0, 1), -EBADF);
      assert.equal(native.writev(fd, [Buffer.alloc(1)]), -EBADF);
      assert.equal(native.readBatch(fd, new Uint8Array(64), 64, 0, Int32Array.of(0), 1, new Int32Array(1)), -EBADF);
      assert.equal(native.close(fd), -EBADF);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('TUN_F bits', () => {
    assert.deepEqual({ ...native.TUN_F }, { CSUM: 1, TSO4: 2, TSO6: 4, TSO_ECN: 8, UFO: 0x10, USO4: 0x20, USO6: 0x40 });
    assert.ok(Object.isFrozen(native.TUN_F));
  });

  test('openPingSocket returns an fd, or -EACCES where ping_group_range excludes us', (t) => {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number);
    const groups = [process.getegid!(), ...(process.getgroups?.() ?? [])];
    const allowed = groups.some((g) => g >= lo! && g <= hi!);
    for (const family of [4, 6] as const) {
      const r = native.openPingSocket(family);
      t.diagnostic(`openPingSocket(${family}) = ${r} (ping_group_range ${lo} ${hi})`);
      if (allowed) {
        assert.ok(r >= 0, `fd expected, got ${r}`);
        assert.equal(native.close(r), 0);
      } else {
        assert.equal(r, -os.constants.errno.EACCES);
      }
    }
    assert.throws(() => (native.openPingSocket as unknown as (f: number) => number)(5), TypeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Poller: on a FIFO, in the main thread and in workers

function makeFifo(): { fd: number; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapswitch-poller-'));
  const fifo = path.join(dir, 'f');
  spawnSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  return { fd, cleanup: () => { fs.closeSync(fd); fs.rmSync(dir, { recursive: true, force: true }); } };
}

function drain(fd: number): number {
  const slab = new Uint8Array(4096);
  const lengths = new Int32Array(1);
  let total = 0;
  while (native.readBatch(fd, slab, 4096, 0, Int32Array.of(0), 1, lengths) > 0) total += lengths[0]!;
  return total;
}

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

const nativeModule = path.resolve(__dirname, '../../src/link/native.js');
const workerCode = `
const { parentPort, workerData } = require('node:worker_threads');
const { native } = require(workerData.nativeModule);
const { fd, mode } = workerData;
const slab = new Uint8Array(4096), lengths = new Int32Array(1), slots = Int32Array.of(0);
const poller = new native.Poller(fd, () => {
  const n = native.readBatch(fd, slab, 4096, 0, slots, 1, lengths);
  if (mode === 'throw') throw new Error('thrown from onReadable');
  parentPort.postMessage({ n, len: lengths[0] });
  if (mode === 'exit') process.exit(7);
});
poller.start();
parentPort.postMessage('ready');
`;

function runWorker(mode: 'exit' | 'terminate' | 'throw' | 'idle', fd: number) {
  const worker = new Worker(workerCode, { eval: true, workerData: { nativeModule, fd, mode } });
  const messages: unknown[] = [];
  let error: Error | undefined;
  const ready = new Promise<void>((resolve) => worker.on('message', (m) => (m === 'ready' ? resolve() : messages.push(m))));
  worker.on('error', (e) => (error = e));
  const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
  return { worker, messages, ready, exited, error: () => error };
}

describe('Poller', () => {
  test('start, stop, close on the main thread', async () => {
    const { fd, cleanup } = makeFifo();
    try {
      let calls = 0;
      const poller = new native.Poller(fd, () => {
        calls++;
        drain(fd);
      });
      fs.writeSync(fd, 'a');
      await tick();
      assert.equal(calls, 0, 'not started yet');
      poller.start();
      poller.start(); // idempotent
      await tick();
      assert.equal(calls, 1);
      poller.stop();
      fs.writeSync(fd, 'b');
      await tick();
      assert.equal(calls, 1, 'stopped');
      poller.start();
      await tick();
      assert.equal(calls, 2);
      poller.close();
      poller.close(); // idempotent
      fs.writeSync(fd, 'c');
      await tick();
      assert.equal(calls, 2, 'closed');
      assert.throws(() => poller.start(), /closed/);
      drain(fd);

      // One polling uv_poll per fd and loop: a second is refused; closing the first frees the fd.
      const a = new native.Poller(fd, () => {});
      const b = new native.Poller(fd, () => {}); // not polling yet: no conflict
      a.start();
      assert.throws(() => b.start(), { code: 'EEXIST' });
      a.close();
      b.start();
      b.close();

      const P = native.Poller as unknown as new (...a: unknown[]) => unknown;
      assert.throws(() => new P(fd), TypeError);
      assert.throws(() => new P(-1, () => {}), TypeError);
      assert.throws(() => (native.Poller as unknown as (...a: unknown[]) => unknown)(fd, () => {}), TypeError);
    } finally {
      cleanup();
    }
  });

  test('a started poller survives GC; an unreferenced stopped one is closed by it', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const { fd, cleanup } = makeFifo();
    try {
      let calls = 0;
      let closeNext = false;
      (() => {
        // onReadable runs with `this` set to the Poller.
        new native.Poller(fd, function (this: { close(): void }) {
          calls++;
          drain(fd);
          if (closeNext) this.close();
        }).start();
      })();
      for (let i = 0; i < 3; i++) {
        gc();
        await tick(1);
      }
      fs.writeSync(fd, 'x');
      await tick();
      assert.equal(calls, 1, 'the unreferenced started poller still fires');
      closeNext = true;
      fs.writeSync(fd, 'y');
      await tick();
      assert.equal(calls, 2);
      // Closed from inside its own callback: the fd is free for a new poller.
      new native.Poller(fd, () => {}).close();
    } finally {
      cleanup();
    }
    // A stopped poller nobody references is finalized: it lets go of its callback and handle.
    const second = makeFifo();
    try {
      let weakCallback: WeakRef<() => void> | undefined;
      (() => {
        const cb = () => {};
        weakCallback = new WeakRef(cb);
        const p = new native.Poller(second.fd, cb);
        p.start();
        p.stop();
      })();
      // deref() keeps its target alive until the current job ends: never gc() in the same job.
      let released = false;
      for (let i = 0; i < 20 && !released; i++) {
        await tick(1);
        gc();
        await tick(5);
        released = weakCallback!.deref() === undefined;
      }
      assert.ok(released, 'the callback was released');
      let calls = 0;
      const p = new native.Poller(second.fd, () => {
        calls++;
        drain(second.fd);
      });
      p.start();
      fs.writeSync(second.fd, 'z');
      await tick();
      p.close();
      assert.equal(calls, 1);
    } finally {
      second.cleanup();
    }
  });

  test('works in a worker; a worker exiting or terminated with a started poller is clean', async () => {
    const fifos = [makeFifo(), makeFifo(), makeFifo(), makeFifo()];
    try {
      // 1. Fires in the worker, then process.exit() from inside the callback.
      const w1 = runWorker('exit', fifos[0]!.fd);
      await w1.ready;
      fs.writeSync(fifos[0]!.fd, 'hello');
      assert.equal(await w1.exited, 7);
      assert.deepEqual(w1.messages, [{ n: 1, len: 5 }]);

      // 2. terminate() while started and idle.
      const w2 = runWorker('terminate', fifos[1]!.fd);
      await w2.ready;
      fs.writeSync(fifos[1]!.fd, 'x');
      for (let i = 0; i < 100 && w2.messages.length === 0; i++) await tick(5);
      assert.deepEqual(w2.messages, [{ n: 1, len: 1 }]);
      await w2.worker.terminate();
      assert.equal(await w2.exited, 1);

      // 3. A throwing callback is not swallowed: it is the worker's uncaught exception.
      const w3 = runWorker('throw', fifos[2]!.fd);
      await w3.ready;
      fs.writeSync(fifos[2]!.fd, 'x');
      assert.equal(await w3.exited, 1);
      assert.match(w3.error()?.message ?? '', /thrown from onReadable/);

      // 4. Terminated right after start, before any event.
      const w4 = runWorker('idle', fifos[3]!.fd);
      await w4.ready;
      await w4.worker.terminate();

      // The main thread's loop is unaffected.
      let calls = 0;
      const p = new native.Poller(fifos[0]!.fd, () => {
        calls++;
        drain(fifos[0]!.fd);
      });
      p.start();
      fs.writeSync(fifos[0]!.fd, 'y');
      await tick();
      p.close();
      assert.equal(calls, 1);
    } finally {
      for (const f of fifos) f.cleanup();
    }
  });
});

describe('sendDatagrams4', () => {
  const bound = (): Promise<dgram.Socket> => new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
  const collect = (s: dgram.Socket, n: number): Promise<{ data: string; port: number }[]> => new Promise((resolve) => {
    const got: { data: string; port: number }[] = [];
    s.on('message', (m, r) => { got.push({ data: m.toString(), port: r.port }); if (got.length === n) resolve(got); });
  });

  test('runs of datagrams per fd leave in order from the right socket; failures per datagram', async () => {
    const [a, b, rx1, rx2] = await Promise.all([bound(), bound(), bound(), bound()]);
    try {
      const fdA = dgramFd(a);
      const fdB = dgramFd(b);
      assert.ok(fdA >= 0 && fdB >= 0, 'dgram fds');
      const text = 'one|two|three|four|five';
      const buf = Buffer.from(text);
      const words = text.split('|');
      const offsets = new Int32Array(8);
      const lengths = new Int32Array(8);
      let o = 0;
      words.forEach((w, i) => { offsets[i] = o; lengths[i] = w.length; o += w.length + 1; });
      const lo = 0x7f000001;
      const p1 = (rx1.address() as { port: number }).port;
      const p2 = (rx2.address() as { port: number }).port;
      // one, two from a to rx1; three from b to rx2; four, five from a to rx1 and rx2.
      const fds = Int32Array.from([fdA, fdA, fdB, fdA, fdA, 0, 0, 0]);
      const addrs = Uint32Array.from([lo, lo, lo, lo, lo, 0, 0, 0]);
      const ports = Int32Array.from([p1, p1, p2, p1, p2, 1, 1, 1]);
      const results = new Int32Array(8).fill(99);
      const want1 = collect(rx1, 3);
      const want2 = collect(rx2, 2);
      assert.equal(native.sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, 5, results), 0);
      assert.deepEqual([...results.subarray(0, 5)], [0, 0, 0, 0, 0]);
      const pa = (a.address() as { port: number }).port;
      const pb = (b.address() as { port: number }).port;
      assert.deepEqual(await want1, [{ data: 'one', port: pa }, { data: 'two', port: pa }, { data: 'four', port: pa }]);
      const got2 = await want2;
      assert.deepEqual(got2, [{ data: 'three', port: pb }, { data: 'five', port: pa }]);

      // A non-socket fd fails its own datagrams only (ENOTSOCK), the rest still go out.
      const r = fs.openSync('/dev/null', 'r');
      try {
        const more = collect(rx1, 1);
        fds.set([r, fdA]);
        ports.set([p1, p1]);
        const failed = native.sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, 2, results);
        assert.equal(failed, 1);
        assert.equal(results[0], -os.constants.errno.ENOTSOCK);
        assert.equal(results[1], 0);
        assert.deepEqual(await more, [{ data: 'two', port: pa }]);
      } finally {
        fs.closeSync(r);
      }
      // Ranges, ports and counts are checked before anything is sent.
      const bad = (f: () => void) => assert.throws(f, (e: NodeJS.ErrnoException) => e instanceof TypeError);
      bad(() => native.sendDatagrams4(fds, buf, Int32Array.from([buf.length]), Int32Array.from([1]), addrs, ports, 1, results));
      bad(() => native.sendDatagrams4(fds, buf, offsets, lengths, addrs, Int32Array.from([0]), 1, results));
      bad(() => native.sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, 65, results));
      bad(() => native.sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, 9, results));
      bad(() => native.sendDatagrams4(fds, buf, offsets, lengths, new Int32Array(8) as unknown as Uint32Array, ports, 1, results));
      assert.equal(native.sendDatagrams4(fds, buf, offsets, lengths, addrs, ports, 0, results), 0);
    } finally {
      for (const s of [a, b, rx1, rx2]) s.close();
    }
  });
});
