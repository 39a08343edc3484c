// The whole surface of the C addon (native/tapswitch.c). Syscalls only: no parsing, no policy.
// Errors thrown by openTap carry `code` (e.g. 'EACCES'), `errno`, `syscall` and `step`
// (which part of the namespace visit failed, e.g. 'setns-user', 'open-tun', 'tunsetiff').
// `errno` is the positive C errno (compare with os.constants.errno), unlike Node's negative uv codes.

/** The steps of openTap's namespace visit, in order; an OpenTapError names the one that failed. */
export type OpenTapStep =
  | 'open-userns' | 'setns-user' | 'open-netns' | 'setns-net' | 'open-tun' | 'tunsetiff'
  | 'vnethdrsz' | 'tunsetoffload' | 'socket' | 'lo-up' | 'mtu' | 'hwaddr' | 'addr' | 'netmask'
  | 'link-up' | 'route' | 'getmac' | 'ifindex' | 'clone';

/** What openTap throws for a failed system call (bad arguments throw a plain TypeError). */
export interface OpenTapError extends Error {
  /** 'EPERM', 'EINVAL', ... */
  code: string;
  /** Positive errno. */
  errno: number;
  /** 'open', 'setns', 'ioctl', 'socket' or 'clone'. */
  syscall: string;
  step: OpenTapStep;
}

export interface LinkConfig {
  /** MTU of the TAP inside the namespace. */
  mtu: number;
  /** IPv4 address of the TAP, as an unsigned 32-bit number in host order (10.0.2.100 = 0x0a000264). */
  address: number;
  /** Prefix length of the address's network (1..30). */
  prefixLength: number;
  /** Default route via this IPv4 address (host order); 0 = add no route. */
  gateway: number;
  /** Optional 6-byte MAC for the TAP. */
  mac?: Uint8Array;
}

export interface OpenTapOptions {
  /** User namespace file to join first (e.g. /proc/PID/ns/user). Omitted: join none. */
  userns?: string;
  /** Ignore EPERM/EINVAL when joining `userns` (we may already be inside it). */
  usernsOptional?: boolean;
  /** Network namespace file to join (e.g. /proc/PID/ns/net). */
  netns: string;
  /** Interface name, e.g. "tap0". Created if absent, attached to if present. */
  name: string;
  /** Number of queues; > 1 sets IFF_MULTI_QUEUE (1..16). */
  queues: number;
  /** Ask for IFF_VNET_HDR. Attaching to a TAP made without it may fail: then retry with false. */
  vnetHdr: boolean;
  /** TUN_F_* bits for TUNSETOFFLOAD (ignored unless vnetHdr). */
  offloads: number;
  /** Bring `lo` up. */
  loopbackUp?: boolean;
  /** Configure the link in the same visit (up, MTU, MAC, address, netmask, default route). */
  link?: LinkConfig;
  /** Only bring the TAP up (no address); used when the client configures it. */
  up?: boolean;
}

export interface OpenTapResult {
  /** One non-blocking fd per queue, already valid in this process. */
  fds: number[];
  /** The TAP's MAC inside the namespace (6 bytes). */
  mac: Uint8Array;
  ifindex: number;
  /** Whether the fds carry the 10-byte virtio-net header. */
  vnetHdr: boolean;
  /** The offload bits that were accepted. */
  offloads: number;
}

/** Open (create or attach) a TAP inside another process's user+net namespace, in one visit. */
export function openTap(options: OpenTapOptions): OpenTapResult;

/**
 * Read up to `count` frames without blocking. Frame i goes into slot `slots[i]`, i.e. bytes
 * [slots[i]*slotSize + headroom, ...) of `slab`; its length is stored in `lengths[i]`.
 * Returns the number of frames read (0 when nothing is pending), or -errno on a hard error.
 */
export function readBatch(fd: number, slab: Uint8Array, slotSize: number, headroom: number,
  slots: Int32Array, count: number, lengths: Int32Array): number;

/** write(2) of buf[offset, offset+length). Returns bytes written or -errno. */
export function write(fd: number, buf: Uint8Array, offset: number, length: number): number;

/** writev(2) of the parts, one frame with no userspace copy. Returns bytes written or -errno. */
export function writev(fd: number, parts: readonly Uint8Array[]): number;

/**
 * A uv_poll on the calling thread's own loop (works in worker threads). `onReadable` runs
 * whenever the fd is readable (with `this` set to the Poller); read with readBatch until it
 * returns 0. An exception thrown by `onReadable` becomes the thread's uncaught exception.
 * The fd joins the loop at the first start() (EEXIST there if another poller on this loop already
 * polls it). A started poller keeps itself alive; close() it before closing its fd.
 */
export class Poller {
  constructor(fd: number, onReadable: () => void);
  start(): void;
  stop(): void;
  /** Stop and release the handle; the fd itself is not closed. */
  close(): void;
}

/**
 * Send up to 64 datagrams in as few syscalls as possible: datagram i is
 * buf[offsets[i], offsets[i] + lengths[i]) from socket fds[i] (a bound UDP socket) to the IPv4
 * address addrs[i] (host order) port ports[i]; consecutive entries with one fd are one
 * sendmmsg(2). results[i] becomes 0 (sent) or -errno; a full socket buffer (EAGAIN, ENOBUFS)
 * fails the rest of that fd's run without retrying. Returns how many failed. Ranges and ports are
 * checked (TypeError) before anything is sent.
 */
export function sendDatagrams4(fds: Int32Array, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array,
  addrs: Uint32Array, ports: Int32Array, count: number, results: Int32Array): number;

/** socket(AF_INET|AF_INET6, SOCK_DGRAM, IPPROTO_ICMP|ICMPV6), non-blocking. fd or -errno. */
export function openPingSocket(family: 4 | 6): number;

/** close(2). Returns 0 or -errno. */
export function close(fd: number): number;

/** The TUN_F_* offload bits (with USO bits defined even where headers lack them). */
export const TUN_F: {
  readonly CSUM: 0x01; readonly TSO4: 0x02; readonly TSO6: 0x04; readonly TSO_ECN: 0x08;
  readonly UFO: 0x10; readonly USO4: 0x20; readonly USO6: 0x40;
};
