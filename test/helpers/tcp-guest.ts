// A scripted guest TCP stack for TcpTranslator tests, for IPv4 and IPv6: frame builders/parsers,
// a MemoryDevice-backed GuestSink and translator (Harness), and a Guest endpoint with enough of a
// TCP stack (retransmission, windows, FIN) to move megabytes through the translator. A Guest whose
// `dst` is 16 bytes speaks IPv6 (frames with EtherType 0x86dd, the guest at GUEST6).
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { MemoryDevice } from '../../src/link/memory';
import { checksum, fold, pseudoHeaderSum4, pseudoHeaderSum6 } from '../../src/wire/checksum';
import { EthernetView } from '../../src/wire/ethernet';
import { Ipv4View } from '../../src/wire/ipv4';
import { Ipv6View } from '../../src/wire/ipv6';
import { parseIpv6Address } from '../../src/wire/ipv6-addr';
import type { Counters, Frame } from '../../src/wire/frame';
import type { GuestSink, Logger, TranslatorContext } from '../../src/translate/types';
import type { DataPlaneConfig } from '../../src/worker/protocol';
import { TcpTranslator, type TcpTranslatorOptions } from '../../src/translate/tcp';

export const GUEST = 0x0a000264; // 10.0.2.100
export const GATEWAY = 0x0a000202; // 10.0.2.2
export const DNS = 0x0a000203;
export const GUEST_MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x64]);
export const GW_MAC = Uint8Array.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
export const F = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 } as const;

export function ip6(s: string): Uint8Array {
  const a = parseIpv6Address(s);
  if (a === null) throw new Error(`bad IPv6 address ${s}`);
  return a;
}
/** slirp4netns -6: the guest's SLAAC address, the gateway (host ::1) and the DNS address. */
export const GUEST6 = ip6('fd00::5054:ff:fe12:3456');
export const GATEWAY6 = ip6('fd00::2');
export const DNS6 = ip6('fd00::3');

export function config(over: Partial<DataPlaneConfig> = {}): DataPlaneConfig {
  return {
    mtu: 1500, network: 0x0a000200, prefixLength: 24, gateway: GATEWAY, dns: DNS, guest: GUEST,
    dhcpStart: 0x0a00020f, dhcpCount: 16, gatewayMac: [...GW_MAC], hostLoopback: true,
    dnsUpstreams: [], logLevel: 'warn',
    ipv6: { prefix: 'fd00::', prefixLength: 64, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2' },
    ...over,
  };
}

export const quietLog: Logger = { enabled: () => false, log: () => {} };

// ------------------------------------------------------------------------------------------------
// Frames

export type Addr = number | Uint8Array;

export interface SegSpec {
  /** A Uint8Array dst (16 bytes) makes an IPv6 frame; src then defaults to GUEST6. */
  src?: Addr; dst?: Addr; sport: number; dport: number; seq: number; ack?: number; flags: number;
  win?: number; payload?: Uint8Array; options?: number[]; gsoSize?: number;
}

export function tcpFrame(s: SegSpec): Uint8Array {
  if (s.dst instanceof Uint8Array) return tcpFrame6(s);
  const src = (s.src ?? GUEST) as number;
  const dst = (s.dst ?? GATEWAY) as number;
  const opts = s.options ?? [];
  const optLen = (opts.length + 3) & ~3;
  const hl = 20 + optLen;
  const pl = s.payload?.length ?? 0;
  const b = new Uint8Array(10 + 14 + 20 + hl + pl);
  const dv = new DataView(b.buffer);
  // vnet: NEEDS_CSUM (+ GSO for superframes), as a TSO guest sends them
  b[0] = 1;
  const gso = s.gsoSize ?? 1448;
  if (pl > gso) { b[1] = 1; dv.setUint16(4, gso, true); }
  dv.setUint16(2, 54 + optLen, true); dv.setUint16(6, 34, true); dv.setUint16(8, 16, true);
  b.set(GW_MAC, 10); b.set(GUEST_MAC, 16); dv.setUint16(22, 0x0800);
  const ip = 24;
  b[ip] = 0x45; dv.setUint16(ip + 2, 20 + hl + pl); dv.setUint16(ip + 4, 0x1234); dv.setUint16(ip + 6, 0x4000);
  b[ip + 8] = 64; b[ip + 9] = 6; dv.setUint32(ip + 12, src); dv.setUint32(ip + 16, dst);
  dv.setUint16(ip + 10, checksum(b, ip, 20));
  const t = 44;
  dv.setUint16(t, s.sport); dv.setUint16(t + 2, s.dport); dv.setUint32(t + 4, s.seq >>> 0);
  dv.setUint32(t + 8, (s.ack ?? 0) >>> 0); b[t + 12] = (hl / 4) << 4; b[t + 13] = s.flags;
  dv.setUint16(t + 14, s.win ?? 65535);
  for (let i = 0; i < opts.length; i++) b[t + 20 + i] = opts[i]!;
  for (let i = opts.length; i < optLen; i++) b[t + 20 + i] = 1; // NOP padding
  if (s.payload) b.set(s.payload, t + hl);
  dv.setUint16(t + 16, fold(pseudoHeaderSum4(src, dst, 6, hl + pl)));
  return b;
}

/** The IPv6 twin of tcpFrame: vnet (NEEDS_CSUM, GSO TCPV6 for superframes), Ethernet, IPv6, TCP. */
function tcpFrame6(s: SegSpec): Uint8Array {
  const src = (s.src ?? GUEST6) as Uint8Array;
  const dst = s.dst as Uint8Array;
  const opts = s.options ?? [];
  const optLen = (opts.length + 3) & ~3;
  const hl = 20 + optLen;
  const pl = s.payload?.length ?? 0;
  const b = new Uint8Array(10 + 14 + 40 + hl + pl);
  const dv = new DataView(b.buffer);
  b[0] = 1;
  const gso = s.gsoSize ?? 1428;
  if (pl > gso) { b[1] = 4; dv.setUint16(4, gso, true); }
  dv.setUint16(2, 74 + optLen, true); dv.setUint16(6, 54, true); dv.setUint16(8, 16, true);
  b.set(GW_MAC, 10); b.set(GUEST_MAC, 16); dv.setUint16(22, 0x86dd);
  const ip = 24;
  b[ip] = 0x60; dv.setUint16(ip + 4, hl + pl); b[ip + 6] = 6; b[ip + 7] = 64;
  b.set(src, ip + 8); b.set(dst, ip + 24);
  const t = 64;
  dv.setUint16(t, s.sport); dv.setUint16(t + 2, s.dport); dv.setUint32(t + 4, s.seq >>> 0);
  dv.setUint32(t + 8, (s.ack ?? 0) >>> 0); b[t + 12] = (hl / 4) << 4; b[t + 13] = s.flags;
  dv.setUint16(t + 14, s.win ?? 65535);
  for (let i = 0; i < opts.length; i++) b[t + 20 + i] = opts[i]!;
  for (let i = opts.length; i < optLen; i++) b[t + 20 + i] = 1;
  if (s.payload) b.set(s.payload, t + hl);
  dv.setUint16(t + 16, fold(pseudoHeaderSum6(b, ip + 8, b, ip + 24, 6, hl + pl)));
  return b;
}

/** SYN options as Linux sends them, minus SACK/timestamps unless asked. */
export function synOptions(mss = 1460, ws = 7, sack = false): number[] {
  const o = [2, 4, mss >> 8, mss & 0xff];
  if (sack) o.push(4, 2);
  if (ws >= 0) o.push(1, 3, 3, ws);
  return o;
}

export interface Seg {
  raw: Uint8Array;
  /** 4 or 6; for IPv6 src/dst are 0 and src6/dst6 hold the addresses, proto the Next Header. */
  family: number; src6: Uint8Array; dst6: Uint8Array; etherType: number;
  vnetFlags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number;
  ethDst: Uint8Array; ethSrc: Uint8Array;
  proto: number; src: number; dst: number; ipId: number; df: boolean; ipOk: boolean; ipTotal: number;
  sport: number; dport: number; seq: number; ack: number; flags: number; win: number; hl: number;
  csumField: number; options: Uint8Array; payload: Uint8Array;
  icmpType?: number; icmpCode?: number; icmpQuote?: Uint8Array;
}

export function parseFrame(f: Uint8Array): Seg {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (dv.getUint16(22) === 0x86dd) return parseFrame6(f, dv);
  const ip = 24;
  const ihl = (f[ip]! & 15) * 4;
  const total = dv.getUint16(ip + 2);
  const t = ip + ihl;
  const s: Seg = {
    raw: f, family: 4, src6: new Uint8Array(16), dst6: new Uint8Array(16), etherType: 0x0800,
    vnetFlags: f[0]!, gsoType: f[1]!, hdrLen: dv.getUint16(2, true), gsoSize: dv.getUint16(4, true),
    csumStart: dv.getUint16(6, true), csumOffset: dv.getUint16(8, true),
    ethDst: f.slice(10, 16), ethSrc: f.slice(16, 22),
    proto: f[ip + 9]!, src: dv.getUint32(ip + 12), dst: dv.getUint32(ip + 16), ipId: dv.getUint16(ip + 4),
    df: (dv.getUint16(ip + 6) & 0x4000) !== 0, ipOk: checksum(f, ip, ihl) === 0, ipTotal: total,
    sport: 0, dport: 0, seq: 0, ack: 0, flags: 0, win: 0, hl: 0, csumField: 0,
    options: new Uint8Array(0), payload: new Uint8Array(0),
  };
  if (s.proto === 6) {
    s.sport = dv.getUint16(t); s.dport = dv.getUint16(t + 2); s.seq = dv.getUint32(t + 4);
    s.ack = dv.getUint32(t + 8); s.hl = (f[t + 12]! >> 4) * 4; s.flags = f[t + 13]!; s.win = dv.getUint16(t + 14);
    s.csumField = dv.getUint16(t + 16);
    s.options = f.slice(t + 20, t + s.hl);
    s.payload = f.subarray(t + s.hl, ip + total);
  } else if (s.proto === 1) {
    s.icmpType = f[t]; s.icmpCode = f[t + 1]; s.icmpQuote = f.slice(t + 8, ip + total);
  }
  return s;
}

function parseFrame6(f: Uint8Array, dv: DataView): Seg {
  const ip = 24;
  const pl = dv.getUint16(ip + 4);
  const t = ip + 40;
  const s: Seg = {
    raw: f, family: 6, src6: f.slice(ip + 8, ip + 24), dst6: f.slice(ip + 24, ip + 40), etherType: 0x86dd,
    vnetFlags: f[0]!, gsoType: f[1]!, hdrLen: dv.getUint16(2, true), gsoSize: dv.getUint16(4, true),
    csumStart: dv.getUint16(6, true), csumOffset: dv.getUint16(8, true),
    ethDst: f.slice(10, 16), ethSrc: f.slice(16, 22),
    proto: f[ip + 6]!, src: 0, dst: 0, ipId: 0, df: true, ipOk: (f[ip]! >> 4) === 6, ipTotal: 40 + pl,
    sport: 0, dport: 0, seq: 0, ack: 0, flags: 0, win: 0, hl: 0, csumField: 0,
    options: new Uint8Array(0), payload: new Uint8Array(0),
  };
  if (s.proto === 6) {
    s.sport = dv.getUint16(t); s.dport = dv.getUint16(t + 2); s.seq = dv.getUint32(t + 4);
    s.ack = dv.getUint32(t + 8); s.hl = (f[t + 12]! >> 4) * 4; s.flags = f[t + 13]!; s.win = dv.getUint16(t + 14);
    s.csumField = dv.getUint16(t + 16);
    s.options = f.slice(t + 20, t + s.hl);
    s.payload = f.subarray(t + s.hl, ip + 40 + pl);
  } else if (s.proto === 58) {
    s.icmpType = f[t]; s.icmpCode = f[t + 1]; s.icmpQuote = f.slice(t + 8, ip + 40 + pl);
  }
  return s;
}

/**
 * Is the TCP checksum of an IPv6 frame right as the guest's kernel would judge it? NEEDS_CSUM: the
 * field must hold the folded pseudo-header sum (finish it from csum_start as the kernel does);
 * otherwise the full sum must verify.
 */
export function tcp6ChecksumOk(s: Seg): boolean {
  const f = s.raw;
  const len = s.ipTotal - 40;
  const seed = pseudoHeaderSum6(f, 32, f, 48, 6, len);
  if (s.vnetFlags & 1) {
    if (s.csumField !== fold(seed)) return false;
    return s.csumStart === 54 && s.csumOffset === 16;
  }
  return checksum(f, 64, len, seed) === 0;
}

export function parseSynAckOptions(o: Uint8Array): { mss: number; ws: number; other: number[] } {
  const r = { mss: 0, ws: -1, other: [] as number[] };
  for (let i = 0; i < o.length;) {
    const k = o[i]!;
    if (k === 0) break;
    if (k === 1) { i++; continue; }
    const len = o[i + 1]!;
    if (k === 2) r.mss = (o[i + 2]! << 8) | o[i + 3]!;
    else if (k === 3) r.ws = o[i + 2]!;
    else r.other.push(k);
    i += len;
  }
  return r;
}

// ------------------------------------------------------------------------------------------------
// Harness: a MemoryDevice-backed GuestSink and a translator

export class Harness {
  readonly dev = new MemoryDevice('mem0', 64);
  readonly counters: Counters = {};
  readonly sink: GuestSink;
  readonly ctx: TranslatorContext;
  readonly tcp: TcpTranslator;
  readonly guests = new Map<number, Guest>();
  /** Every frame the translator sent, parsed. */
  readonly out: Seg[] = [];
  private inbox: Seg[] = [];
  private scheduled = false;
  private readonly eth = new EthernetView();
  private readonly ip = new Ipv4View();
  private readonly ip6v = new Ipv6View();

  constructor(cfg = config(), opts: TcpTranslatorOptions = {}, offloads = true) {
    this.sink = {
      gatewayMac: GW_MAC,
      macFor: (a: number) => (a === GUEST ? GUEST_MAC : null),
      macFor6: (b: Uint8Array, o: number) => (GUEST6.every((x, i) => b[o + i] === x) ? GUEST_MAC : null),
      send: (parts) => this.dev.send(parts),
      offloads,
    };
    this.ctx = { config: cfg, sink: this.sink, counters: this.counters, log: quietLog };
    this.tcp = new TcpTranslator(this.ctx, opts);
    this.dev.start((b) => {
      for (let i = 0; i < b.count; i++) {
        const off = b.offsets[i]!;
        const len = b.lengths[i]!;
        const frame: Frame = { buf: b.buf, off, len, slot: b.slots[i]!, owner: this.dev };
        if (!this.eth.bind(b.buf, off + 10, len - 10)) continue;
        if (this.eth.etherType === 0x86dd) {
          if (this.ip6v.bind(b.buf, this.eth.payloadOffset, this.eth.payloadLength)) this.tcp.onPacket6(frame, this.eth, this.ip6v);
          continue;
        }
        if (!this.ip.bind(b.buf, this.eth.payloadOffset, this.eth.payloadLength)) continue;
        this.tcp.onPacket(frame, this.eth, this.ip);
      }
    });
    // Frames reach the scripted guests asynchronously, as through a real TAP (no re-entrancy).
    this.dev.onSend = (f) => {
      if (this.lossToGuest > 0 && Math.random() < this.lossToGuest) return; // lost on the way
      const s = parseFrame(f);
      this.out.push(s);
      this.inbox.push(s);
      if (!this.scheduled) { this.scheduled = true; setImmediate(() => this.deliver()); }
    };
  }

  private deliver(): void {
    this.scheduled = false;
    const box = this.inbox;
    this.inbox = [];
    for (const s of box) this.guests.get(s.proto === 6 ? s.dport : -1)?.onFrame(s);
  }

  /** Probability that a frame is lost toward the guest / from the guest (lossy-link tests). */
  lossToGuest = 0;
  lossFromGuest = 0;

  inject(...frames: Uint8Array[]): void {
    if (this.lossFromGuest > 0) frames = frames.filter(() => Math.random() >= this.lossFromGuest);
    if (frames.length > 0) this.dev.inject(...frames);
  }

  framesTo(port: number): Seg[] { return this.out.filter((s) => s.proto === 6 && s.dport === port); }

  close(): void {
    for (const g of this.guests.values()) g.stop();
    this.tcp.close();
  }
}

let nextPort = 40000 + Math.floor(Math.random() * 10000);

/** A scripted guest TCP endpoint: enough of a stack to drive the translator from the guest side. */
export class Guest {
  sport = nextPort++;
  /** Listening (for inbound flows): answer a SYN with a SYN-ACK (or RST when refuse is set). */
  passive = false;
  refuse = false;
  silent = false;
  synSeen: Seg | null = null;
  isn = (Math.random() * 0xffffffff) >>> 0;
  sndUna = 0; sndNxt = 0;
  rcvNxt = 0;
  peerWnd = 0; peerShift = 0; peerMss = 0;
  synAck: Seg | null = null;
  rst: Seg | null = null;
  finReceived = false;
  finAcked = false;
  readonly recv: Buffer[] = [];
  recvBytes = 0;
  readonly hash = createHash('sha256');
  autoAck = true;
  /** Window we advertise, in bytes (scaled by ourShift when scaling is on). */
  rcvWnd = 1 << 20;
  ourShift = 7;
  segSize = 65000;
  private data: Buffer = Buffer.alloc(0);
  private dataBase = 0; // stream offset of data[0] (relative to isn+1)
  private finWanted = false;
  private finSent = false;
  private rtx: NodeJS.Timeout | null = null;
  private lastProgress = Date.now();
  retransmits = 0;
  /** ACK the SYN-ACK (off: pretend it was lost). */
  ackSynAck = true;

  constructor(readonly h: Harness, public dport: number, public dst: Addr = GATEWAY, listenPort = 0) {
    if (listenPort) { this.sport = listenPort; this.passive = true; }
    h.guests.set(this.sport, this);
  }

  get established(): boolean { return this.synAck !== null; }

  syn(opts = synOptions(1460, this.ourShift), retransmitMs = 0): void {
    this.sndUna = this.sndNxt = (this.isn + 1) >>> 0;
    this.h.inject(tcpFrame({ sport: this.sport, dport: this.dport, dst: this.dst, seq: this.isn, flags: F.SYN, win: 64240, options: opts }));
    if (retransmitMs > 0) {
      // Like a kernel: retransmit the SYN until answered.
      const t = setInterval(() => {
        if (this.synAck || this.rst) clearInterval(t);
        else this.h.inject(tcpFrame({ sport: this.sport, dport: this.dport, dst: this.dst, seq: this.isn, flags: F.SYN, win: 64240, options: opts }));
      }, retransmitMs);
      t.unref();
    }
  }

  winField(): number { return Math.min(0xffff, Math.floor(this.rcvWnd / (1 << (this.synAck && this.peerShift >= 0 ? this.ourShift : 0)))); }

  ack(): void {
    this.h.inject(tcpFrame({ sport: this.sport, dport: this.dport, dst: this.dst, seq: this.sndNxt, ack: this.rcvNxt, flags: F.ACK, win: this.winField() }));
  }

  /** Send raw flags at the current sequence point. */
  send(flags: number, payload?: Uint8Array, seq = this.sndNxt, ack = this.rcvNxt): void {
    this.h.inject(tcpFrame({ sport: this.sport, dport: this.dport, dst: this.dst, seq, ack, flags, win: this.winField(), payload }));
  }

  write(b: Buffer): void {
    this.data = Buffer.concat([this.data, b]);
    this.pump();
  }

  end(): void { this.finWanted = true; this.pump(); }

  onFrame(s: Seg): void {
    if (s.flags & F.RST) { this.rst = s; return; }
    if (this.passive && (s.flags & (F.SYN | F.ACK)) === F.SYN) {
      this.synSeen = s;
      if (this.silent) return;
      this.dport = s.sport;
      this.dst = s.family === 6 ? s.src6 : s.src;
      if (this.refuse) { this.send(F.RST | F.ACK, undefined, 0, (s.seq + 1) >>> 0); return; }
      const o = parseSynAckOptions(s.options);
      this.peerShift = o.ws;
      this.peerMss = o.mss;
      this.peerWnd = s.win;
      if (o.ws < 0) this.ourShift = 0;
      this.rcvNxt = (s.seq + 1) >>> 0;
      this.sndUna = this.sndNxt = (this.isn + 1) >>> 0;
      this.h.inject(tcpFrame({ sport: this.sport, dport: this.dport, dst: this.dst, seq: this.isn, ack: this.rcvNxt,
        flags: F.SYN | F.ACK, win: Math.min(this.rcvWnd, 65535), options: synOptions(1460, o.ws >= 0 ? this.ourShift : -1) }));
      return;
    }
    if (this.passive && !this.synAck && this.synSeen && (s.flags & F.ACK) && s.ack === ((this.isn + 1) >>> 0)) {
      // The handshake's final ACK: established. synAck holds the peer's SYN (its ISN is the base).
      this.synAck = this.synSeen;
      this.startRtx();
    }
    if ((s.flags & (F.SYN | F.ACK)) === (F.SYN | F.ACK)) {
      this.synAck = s;
      this.rcvNxt = (s.seq + 1) >>> 0;
      const o = parseSynAckOptions(s.options);
      this.peerShift = o.ws;
      this.peerMss = o.mss;
      this.peerWnd = s.win;
      if (o.ws < 0) this.ourShift = 0;
      if (!this.ackSynAck) return;
      this.ack();
      this.startRtx();
      this.pump();
      return;
    }
    if (!this.synAck) return;
    // ACK side
    if (s.flags & F.ACK) {
      const d = (s.ack - this.sndUna) | 0;
      if (d > 0) { this.sndUna = s.ack; this.lastProgress = Date.now(); }
      this.peerWnd = s.win << Math.max(this.peerShift, 0);
      if (this.finSent && s.ack === this.sndNxt) this.finAcked = true;
    }
    // data side
    let p = s.payload;
    const fin = (s.flags & F.FIN) !== 0;
    const d = (this.rcvNxt - s.seq) | 0;
    if (d < 0) { if (this.autoAck) this.ack(); return; } // out of order: drop
    if (d > 0) {
      if (d >= p.length) { if (p.length > 0 || fin) { if (this.autoAck) this.ack(); } this.pump(); return; }
      p = p.subarray(d);
    }
    if (p.length > 0) {
      const copy = Buffer.from(p);
      this.recv.push(copy);
      this.hash.update(copy);
      this.recvBytes += p.length;
      this.rcvNxt = (this.rcvNxt + p.length) >>> 0;
    }
    if (fin && !this.finReceived) { this.finReceived = true; this.rcvNxt = (this.rcvNxt + 1) >>> 0; }
    if ((p.length > 0 || fin) && this.autoAck) this.ack();
    this.pump();
  }

  pump(): void {
    if (!this.synAck) return;
    const base = (this.isn + 1) >>> 0;
    for (;;) {
      const nxtOff = (this.sndNxt - base) >>> 0;
      const unaOff = (this.sndUna - base) >>> 0;
      const inflight = nxtOff - unaOff;
      const have = this.dataBase + this.data.length - nxtOff;
      if (have > 0) {
        const room = this.peerWnd - inflight;
        if (room <= 0) return;
        const n = Math.min(have, room, this.segSize);
        const from = nxtOff - this.dataBase;
        this.send(F.ACK | F.PSH, this.data.subarray(from, from + n));
        this.sndNxt = (this.sndNxt + n) >>> 0;
        continue;
      }
      if (this.finWanted && !this.finSent) {
        this.finSent = true;
        this.send(F.ACK | F.FIN);
        this.sndNxt = (this.sndNxt + 1) >>> 0;
      }
      return;
    }
  }

  private startRtx(): void {
    this.rtx = setInterval(() => {
      if (this.sndUna !== this.sndNxt && Date.now() - this.lastProgress > 300) {
        // go back N
        this.retransmits++;
        this.lastProgress = Date.now();
        const finWasSent = this.finSent;
        const base = (this.isn + 1) >>> 0;
        const dataEnd = base + this.dataBase + this.data.length;
        this.sndNxt = this.sndUna;
        if (finWasSent && this.sndUna === (dataEnd >>> 0) + 1) this.sndNxt = (this.sndUna - 1) >>> 0;
        this.finSent = false;
        if (finWasSent) this.finWanted = true;
        this.pump();
      }
    }, 50);
    this.rtx.unref();
  }

  stop(): void { if (this.rtx) clearInterval(this.rtx); }

  received(): Buffer { return Buffer.concat(this.recv); }
}

export async function waitFor(cond: () => boolean, what: string | (() => string), ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Server { port: number; conns: net.Socket[]; server: net.Server; close(): Promise<void> }

/** A TCP server on 127.0.0.1 (or `host`, e.g. '::1') recording its connections. */
export async function listen(onConn: (s: net.Socket) => void = () => {}, opts: net.ServerOpts = {},
  host = '127.0.0.1'): Promise<Server> {
  const conns: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true, ...opts }, (s) => { conns.push(s); s.on('error', () => {}); onConn(s); });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port, conns, server,
    close: () => new Promise<void>((r) => { for (const c of conns) c.destroy(); server.close(() => r()); }),
  };
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = await listen(() => {}, {}, host);
  await s.close();
  return s.port;
}

export async function handshake(h: Harness, port: number, g = new Guest(h, port)): Promise<Guest> {
  g.syn();
  await waitFor(() => g.established || g.rst !== null, 'SYN-ACK');
  assert.ok(g.established, 'handshake completed');
  await sleep(5);
  return g;
}

export function sha(b: Uint8Array): string { return createHash('sha256').update(b).digest('hex'); }
