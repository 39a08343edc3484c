// A guest for translator tests: builds the frames a container's kernel would send, feeds them to a
// translator through a MemoryDevice (so slots are retained/released exactly as with a TAP), and
// parses what the translator sends back.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { MemoryDevice } from '../../src/link/memory';
import { checksum, fold, pseudoHeaderSum4, sum16 } from '../../src/wire/checksum';
import { EthernetView } from '../../src/wire/ethernet';
import { Ipv4View } from '../../src/wire/ipv4';
import { Ipv6View } from '../../src/wire/ipv6';
import { parseIpv4 } from '../../src/wire/addr';
import { parseIpv6Address } from '../../src/wire/ipv6-addr';
import { pseudoHeaderSum6 } from '../../src/wire/checksum';
import type { Counters, Frame } from '../../src/wire/frame';
import type { GuestSink, Logger, ProtocolTranslator, TranslatorContext } from '../../src/translate/types';
import type { DataPlaneConfig, LogLevel } from '../../src/worker/protocol';

export function ip(s: string): number {
  const v = parseIpv4(s);
  if (v === null) throw new Error(`bad address ${s}`);
  return v;
}

export const GUEST = ip('10.0.2.100');
export const GATEWAY = ip('10.0.2.2');
export const DNS = ip('10.0.2.3');
export function ip6(s: string): Uint8Array {
  const v = parseIpv6Address(s);
  if (v === null) throw new Error(`bad IPv6 address ${s}`);
  return v;
}

/** slirp4netns -6: the guest's SLAAC address, the gateway (host ::1), the DNS address. */
export const GUEST6 = ip6('fd00::5054:ff:fe12:3456');
export const GATEWAY6 = ip6('fd00::2');
export const DNS6 = ip6('fd00::3');
/** The IPv6 part of config() (slirp4netns -6 defaults). */
export const IPV6_CONFIG = { prefix: 'fd00::', prefixLength: 64 as const, gateway: 'fd00::2', dns: 'fd00::3', linkLocal: 'fe80::2' };

export const GUEST_MAC = Uint8Array.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x64]);
export const GW_MAC = Uint8Array.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);

export function config(over: Partial<DataPlaneConfig> = {}): DataPlaneConfig {
  return {
    mtu: 1500, network: ip('10.0.2.0'), prefixLength: 24, gateway: GATEWAY, dns: DNS, guest: GUEST,
    dhcpStart: ip('10.0.2.15'), dhcpCount: 16, gatewayMac: [...GW_MAC], hostLoopback: true,
    dnsUpstreams: [], logLevel: 'warn', ipv6: IPV6_CONFIG, ...over,
  };
}

export class TestLog implements Logger {
  readonly lines: Array<{ level: LogLevel; msg: string }> = [];
  enabled(): boolean { return true; }
  log(level: LogLevel, msg: string): void { this.lines.push({ level, msg }); }
  count(level: LogLevel): number { return this.lines.filter((l) => l.level === level).length; }
}

/** A GuestSink over a MemoryDevice; the guest's MAC is known unless `knowsMac` is false. */
export class Harness {
  readonly dev = new MemoryDevice('mem0', 16);
  readonly counters: Counters = {};
  readonly log = new TestLog();
  readonly sink: GuestSink;
  readonly ctx: TranslatorContext;
  knowsMac = true;
  private translator: ProtocolTranslator | null = null;
  private readonly eth = new EthernetView();
  private readonly ipv = new Ipv4View();
  private readonly ipv6 = new Ipv6View();

  constructor(readonly cfg: DataPlaneConfig, offloads = true) {
    const dev = this.dev;
    this.sink = {
      gatewayMac: GW_MAC,
      macFor: (a: number) => (this.knowsMac && a === cfg.guest ? GUEST_MAC : null),
      macFor6: (b: Uint8Array, o: number) => (this.knowsMac && GUEST6.every((x, i) => b[o + i] === x) ? GUEST_MAC : null),
      send: (parts: readonly Uint8Array[]) => dev.send(parts),
      offloads,
    };
    this.ctx = { config: cfg, sink: this.sink, counters: this.counters, log: this.log };
    dev.start((b) => {
      for (let i = 0; i < b.count; i++) {
        const off = b.offsets[i]!;
        const len = b.lengths[i]!;
        const frame: Frame = { buf: b.buf, off, len, slot: b.slots[i]!, owner: dev };
        if (!this.eth.bind(b.buf, off + 10, len - 10)) continue;
        if (this.eth.etherType === 0x86dd) {
          if (this.ipv6.bind(b.buf, this.eth.payloadOffset, this.eth.payloadLength)) this.translator?.onPacket6(frame, this.eth, this.ipv6);
          continue;
        }
        if (!this.ipv.bind(b.buf, this.eth.payloadOffset, this.eth.payloadLength)) continue;
        this.translator?.onPacket(frame, this.eth, this.ipv);
      }
    });
  }

  use(t: ProtocolTranslator): void { this.translator = t; }

  inject(...frames: Uint8Array[]): void { this.dev.inject(...frames); }

  get sent(): Uint8Array[] { return this.dev.sent; }
}

export interface UdpSpec {
  src?: number; dst: number; sport: number; dport: number; payload: Uint8Array; ttl?: number;
}

function ipv4Header(b: Uint8Array, o: number, total: number, proto: number, src: number, dst: number, ttl = 64): void {
  b[o] = 0x45; b[o + 1] = 0;
  b[o + 2] = total >> 8; b[o + 3] = total & 0xff;
  b[o + 4] = 0x12; b[o + 5] = 0x34; b[o + 6] = 0x40; b[o + 7] = 0;
  b[o + 8] = ttl; b[o + 9] = proto; b[o + 10] = 0; b[o + 11] = 0;
  new DataView(b.buffer, b.byteOffset).setUint32(o + 12, src);
  new DataView(b.buffer, b.byteOffset).setUint32(o + 16, dst);
  const ck = checksum(b, o, 20);
  b[o + 10] = ck >> 8; b[o + 11] = ck & 0xff;
}

function ethHeader(b: Uint8Array): void {
  b.set(GW_MAC, 10); b.set(GUEST_MAC, 16); b[22] = 0x08; b[23] = 0x00;
}

/** vnet (zero) + Ethernet + IPv4 + UDP, with a correct UDP checksum. */
export function udpFrame(s: UdpSpec): Uint8Array {
  const src = s.src ?? GUEST;
  const udpLen = 8 + s.payload.length;
  const b = new Uint8Array(10 + 14 + 20 + udpLen);
  ethHeader(b);
  ipv4Header(b, 24, 20 + udpLen, 17, src, s.dst, s.ttl);
  const u = 44;
  b[u] = s.sport >> 8; b[u + 1] = s.sport & 0xff; b[u + 2] = s.dport >> 8; b[u + 3] = s.dport & 0xff;
  b[u + 4] = udpLen >> 8; b[u + 5] = udpLen & 0xff;
  b.set(s.payload, u + 8);
  const ck = checksum(b, u, udpLen, pseudoHeaderSum4(src, s.dst, 17, udpLen)) || 0xffff;
  b[u + 6] = ck >> 8; b[u + 7] = ck & 0xff;
  return b;
}

/** vnet + Ethernet + IPv4 + ICMP echo request. */
export function echoFrame(dst: number, id: number, seq: number, data: Uint8Array, src = GUEST, type = 8): Uint8Array {
  const icmpLen = 8 + data.length;
  const b = new Uint8Array(10 + 14 + 20 + icmpLen);
  ethHeader(b);
  ipv4Header(b, 24, 20 + icmpLen, 1, src, dst);
  const o = 44;
  b[o] = type; b[o + 1] = 0; b[o + 4] = id >> 8; b[o + 5] = id & 0xff; b[o + 6] = seq >> 8; b[o + 7] = seq & 0xff;
  b.set(data, o + 8);
  const ck = checksum(b, o, icmpLen);
  b[o + 2] = ck >> 8; b[o + 3] = ck & 0xff;
  return b;
}

function ipv6Header(b: Uint8Array, o: number, payloadLength: number, nextHeader: number, src: Uint8Array, dst: Uint8Array, hop = 64): void {
  b[o] = 0x60; b[o + 4] = payloadLength >> 8; b[o + 5] = payloadLength & 0xff; b[o + 6] = nextHeader; b[o + 7] = hop;
  b.set(src, o + 8); b.set(dst, o + 24);
}

function ethHeader6(b: Uint8Array): void {
  b.set(GW_MAC, 10); b.set(GUEST_MAC, 16); b[22] = 0x86; b[23] = 0xdd;
}

export interface Udp6Spec { src?: Uint8Array; dst: Uint8Array; sport: number; dport: number; payload: Uint8Array }

/** vnet (zero) + Ethernet + IPv6 + UDP, with a correct UDP checksum. */
export function udp6Frame(s: Udp6Spec): Uint8Array {
  const src = s.src ?? GUEST6;
  const udpLen = 8 + s.payload.length;
  const b = new Uint8Array(10 + 14 + 40 + udpLen);
  ethHeader6(b);
  ipv6Header(b, 24, udpLen, 17, src, s.dst);
  const u = 64;
  b[u] = s.sport >> 8; b[u + 1] = s.sport & 0xff; b[u + 2] = s.dport >> 8; b[u + 3] = s.dport & 0xff;
  b[u + 4] = udpLen >> 8; b[u + 5] = udpLen & 0xff;
  b.set(s.payload, u + 8);
  const ck = checksum(b, u, udpLen, pseudoHeaderSum6(b, 32, b, 48, 17, udpLen)) || 0xffff;
  b[u + 6] = ck >> 8; b[u + 7] = ck & 0xff;
  return b;
}

/** vnet + Ethernet + IPv6 + ICMPv6 echo request (type 128), checksum over the pseudo-header. */
export function echo6Frame(dst: Uint8Array, id: number, seq: number, data: Uint8Array, src = GUEST6, type = 128): Uint8Array {
  const icmpLen = 8 + data.length;
  const b = new Uint8Array(10 + 14 + 40 + icmpLen);
  ethHeader6(b);
  ipv6Header(b, 24, icmpLen, 58, src, dst);
  const o = 64;
  b[o] = type; b[o + 1] = 0; b[o + 4] = id >> 8; b[o + 5] = id & 0xff; b[o + 6] = seq >> 8; b[o + 7] = seq & 0xff;
  b.set(data, o + 8);
  const ck = checksum(b, o, icmpLen, pseudoHeaderSum6(b, 32, b, 48, 58, icmpLen));
  b[o + 2] = ck >> 8; b[o + 3] = ck & 0xff;
  return b;
}

/** An IPv6 frame as the guest would see it. */
export interface Parsed6 {
  vnetFlags: number; gsoType: number; hdrLen: number; csumStart: number; csumOffset: number;
  ethDst: Uint8Array; ethSrc: Uint8Array; etherType: number;
  payloadLength: number; nextHeader: number; hopLimit: number; src: Uint8Array; dst: Uint8Array;
  l4: number; l4Len: number;
}

export function parse6(f: Uint8Array): Parsed6 {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const pl = dv.getUint16(28);
  return {
    vnetFlags: f[0]!, gsoType: f[1]!, hdrLen: dv.getUint16(2, true), csumStart: dv.getUint16(6, true),
    csumOffset: dv.getUint16(8, true), ethDst: f.slice(10, 16), ethSrc: f.slice(16, 22), etherType: dv.getUint16(22),
    payloadLength: pl, nextHeader: f[30]!, hopLimit: f[31]!, src: f.slice(32, 48), dst: f.slice(48, 64),
    l4: 64, l4Len: pl,
  };
}

/**
 * Is the upper-layer checksum (UDP 17 / ICMPv6 58) of an unfragmented IPv6 frame right, as the
 * guest's kernel would judge it? NEEDS_CSUM: finish it from csum_start as the kernel does.
 */
export function l4Checksum6Ok(f: Uint8Array): boolean {
  const p = parse6(f);
  const pseudo = pseudoHeaderSum6(f, 32, f, 48, p.nextHeader, p.l4Len);
  if (p.vnetFlags & 1) {
    const at = 10 + p.csumStart + p.csumOffset;
    if (u16(f, at) !== fold(pseudo)) return false;
    const g = f.slice();
    const ck = ~fold(sum16(g, 10 + p.csumStart, f.length - 10 - p.csumStart)) & 0xffff;
    g[at] = ck >> 8; g[at + 1] = ck & 0xff;
    return checksum(g, p.l4, p.l4Len, pseudo) === 0;
  }
  return checksum(f, p.l4, p.l4Len, pseudo) === 0;
}

export interface Parsed {
  vnetFlags: number; csumStart: number; csumOffset: number;
  ethDst: Uint8Array; ethSrc: Uint8Array; etherType: number;
  ipOff: number; ipHl: number; ipTotal: number; ident: number; fragField: number; ttl: number;
  proto: number; src: number; dst: number; ipChecksumOk: boolean;
  l4: number; l4Len: number;
}

export function parse(f: Uint8Array): Parsed {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const ipOff = 24;
  const hl = (f[ipOff]! & 0x0f) * 4;
  const total = dv.getUint16(ipOff + 2);
  return {
    vnetFlags: f[0]!, csumStart: dv.getUint16(6, true), csumOffset: dv.getUint16(8, true),
    ethDst: f.slice(10, 16), ethSrc: f.slice(16, 22), etherType: dv.getUint16(22),
    ipOff, ipHl: hl, ipTotal: total, ident: dv.getUint16(ipOff + 4), fragField: dv.getUint16(ipOff + 6),
    ttl: f[ipOff + 8]!, proto: f[ipOff + 9]!, src: dv.getUint32(ipOff + 12), dst: dv.getUint32(ipOff + 16),
    ipChecksumOk: checksum(f, ipOff, hl) === 0, l4: ipOff + hl, l4Len: total - hl,
  };
}

export function u16(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }

/**
 * Is the UDP checksum of this frame right, as the guest's kernel would judge it? With NEEDS_CSUM
 * the field must hold the folded pseudo-header sum; finish it as the kernel does, then verify.
 */
export function udpChecksumOk(f: Uint8Array): boolean {
  const p = parse(f);
  const pseudo = pseudoHeaderSum4(p.src, p.dst, 17, p.l4Len);
  if (p.vnetFlags & 1) {
    if (u16(f, p.l4 + 6) !== fold(pseudo)) return false;
    const g = f.slice();
    const ck = ~fold(sum16(g, 10 + p.csumStart, f.length - 10 - p.csumStart)) & 0xffff;
    const at = 10 + p.csumStart + p.csumOffset;
    g[at] = ck >> 8; g[at + 1] = ck & 0xff;
    return checksum(g, p.l4, p.l4Len, pseudo) === 0;
  }
  return checksum(f, p.l4, p.l4Len, pseudo) === 0;
}

export async function waitFor(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Can this machine make throwaway user+net namespaces? */
export function canUnshare(): boolean {
  const r = spawnSync('unshare', ['-Urn', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Run `node --test FILE` inside a fresh `unshare -Urn` sandbox with lo up, after the shell
 * commands in `setup` (e.g. a sysctl), with `env` added. The sandbox has no routes but loopback,
 * so nothing a test sends can leave the machine.
 */
export function runInSandbox(file: string, env: Record<string, string>, setup = ''): SpawnSyncReturns<string> {
  const script = `${setup ? `${setup} && ` : ''}ip link set lo up && exec "$0" --test --test-reporter=tap "$1"`;
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  // Set by a parent `node --test`: it would make the child report in the runner's binary protocol.
  delete childEnv.NODE_TEST_CONTEXT;
  return spawnSync('unshare', ['-Urn', 'sh', '-c', script, process.execPath, file], {
    env: childEnv, encoding: 'utf8', timeout: 60_000,
  });
}
