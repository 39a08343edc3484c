// The DHCPv4 server of a tapswitch network (RFC 2131), behaving like slirp4netns's: leases from
// network+15, 16 of them, server identifier = the gateway, 24-hour leases.
//
// Theory of operation
// -------------------
// The pool is a fixed array of `dhcpCount` slots, slot i holding address dhcpStart+i. A slot
// remembers the MAC that last held it even after release or expiry, so a container that comes
// back (same MAC) gets the same address again while nobody else needed it. A client is its
// Ethernet address (chaddr); the client identifier option is not used.
//
//   DISCOVER  -> OFFER: the client's own slot if it has one, else the address it asks for (option
//                50) if free, else the lowest never-used slot, else the free/expired slot unused
//                longest. The offer holds the slot for OFFER_HOLD_MS. Nothing free: no answer.
//   REQUEST   -> ACK when the address (option 50, or ciaddr when renewing) is in the pool and free
//                or already this client's; else NAK (an address that is not ours, e.g. from another
//                network after a reboot). A REQUEST naming another server (option 54) withdraws
//                our offer silently.
//   RELEASE   -> the slot is free (still remembered for its MAC). No answer.
//   DECLINE   -> the address is in use by someone else on the link: the slot is parked for
//                DECLINE_HOLD_MS. No answer.
//   INFORM    -> ACK with parameters only (no address, no lease time), unicast to ciaddr.
//
// Replies (RFC 2131 4.1, simplified for a server with no relay agents): NAK, and any reply to a
// client that set the broadcast flag or has no address yet (ciaddr 0), go to 255.255.255.255 at
// ff:ff:ff:ff:ff:ff; other replies go to ciaddr at chaddr. giaddr is echoed but not routed to.
//
// Options sent: 53 message type, 54 server id (gateway), 51 lease time (24 h), 1 subnet mask,
// 3 router (gateway), 6 DNS server (the DNS address; omitted when the DNS forwarder is disabled,
// since nothing would answer there), 26 interface MTU. Replies are padded to BOOTP's 300 bytes.
//
// Nothing here throws on input: malformed messages are counted and dropped.
import { macKey, prefixMask } from '../wire/addr';
import {
  BootpOp, DHCP_FLAG_BROADCAST, DhcpMessageType, DhcpOption, DhcpView, emitDhcpEnd, emitDhcpHeader,
  emitDhcpOptionU16, emitDhcpOptionU32, emitDhcpOptionU8,
} from '../wire/dhcp';
import { type Counters, count } from '../wire/frame';
import type { DataPlaneConfig } from '../worker/protocol';

export type DhcpServerConfig = Pick<DataPlaneConfig, 'prefixLength' | 'gateway' | 'dns' | 'dhcpStart' | 'dhcpCount' | 'mtu'>;

export interface DhcpServerOptions {
  counters?: Counters;
  /** Monotonic clock in milliseconds. Default: performance.now(). */
  now?: () => number;
  /** Lease time in seconds. Default 86 400 (24 h). */
  leaseTimeS?: number;
}

/** How long an OFFER reserves its address for the client's REQUEST. */
export const OFFER_HOLD_MS = 60_000;
/** How long a DECLINEd address stays out of the pool. */
export const DECLINE_HOLD_MS = 600_000;
/** The largest reply handle() writes (options fit well inside BOOTP's 300 bytes). */
export const DHCP_MAX_REPLY = 300;

export const LeaseState = { FREE: 0, OFFERED: 1, BOUND: 2, DECLINED: 3 } as const;
export type LeaseState = (typeof LeaseState)[keyof typeof LeaseState];
const STATE_NAMES = ['free', 'offered', 'bound', 'declined'] as const;

/** No MAC: a slot never used, or parked after a DECLINE. */
const NOBODY = -1;

export interface LeaseInfo {
  ip: number;
  /** macKey() of the client, -1 for none. */
  mac: number;
  state: (typeof STATE_NAMES)[number];
  /** Milliseconds until the offer/lease/decline runs out (0 for free slots). */
  remainingMs: number;
}

export class DhcpServer {
  readonly counters: Counters;
  /** Where the last reply handle() produced must go (see the theory above). */
  replyBroadcast = false;
  /** Destination IPv4 address of the last reply (255.255.255.255 when broadcast). */
  replyDstIp = 0;
  private readonly now: () => number;
  private readonly leaseTimeS: number;
  private readonly view = new DhcpView();
  private readonly owner: Float64Array;
  private readonly state: Uint8Array;
  private readonly expires: Float64Array;
  private readonly lastUse: Float64Array;
  private readonly mask: number;

  constructor(private readonly cfg: DhcpServerConfig, opts: DhcpServerOptions = {}) {
    this.counters = opts.counters ?? {};
    this.now = opts.now ?? (() => performance.now());
    this.leaseTimeS = opts.leaseTimeS ?? 86_400;
    const n = Math.max(0, cfg.dhcpCount | 0);
    this.owner = new Float64Array(n).fill(NOBODY);
    this.state = new Uint8Array(n);
    this.expires = new Float64Array(n);
    this.lastUse = new Float64Array(n);
    this.mask = prefixMask(cfg.prefixLength);
  }

  /**
   * Handle one DHCP message from a client: the UDP payload b[o, o+n). A reply, if any, is written
   * as a whole DHCP message to out[oo, oo+returned) (at most DHCP_MAX_REPLY bytes), and
   * replyBroadcast/replyDstIp say where it goes; its client MAC is the reply's chaddr. Returns 0
   * when there is nothing to send.
   */
  handle(b: Uint8Array, o: number, n: number, out: Uint8Array, oo: number): number {
    const c = this.counters;
    const v = this.view;
    count(c, 'dhcp_rx');
    if (!v.bind(b, o, n)) { count(c, 'dhcp_malformed'); return 0; }
    if (v.op !== BootpOp.REQUEST) { count(c, 'dhcp_not_request'); return 0; }
    if (v.htype !== 1 || v.hlen !== 6) { count(c, 'dhcp_malformed'); return 0; }
    const mac = macKey(b, v.chaddrOffset);
    if (mac === 0 || (b[v.chaddrOffset]! & 1) === 1) { count(c, 'dhcp_bad_chaddr'); return 0; }
    const type = v.messageType;
    if (out.length - oo < DHCP_MAX_REPLY) { count(c, 'dhcp_no_buffer'); return 0; }
    switch (type) {
      case DhcpMessageType.DISCOVER: return this.discover(mac, out, oo);
      case DhcpMessageType.REQUEST: return this.request(mac, out, oo);
      case DhcpMessageType.RELEASE: this.release(mac); return 0;
      case DhcpMessageType.DECLINE: this.decline(mac); return 0;
      case DhcpMessageType.INFORM: return this.inform(out, oo);
      case -1: count(c, 'dhcp_bootp_ignored'); return 0;
      default: count(c, 'dhcp_unexpected_type'); return 0;
    }
  }

  /** Snapshot of the pool (control path: stats, tests). */
  leases(): LeaseInfo[] {
    const now = this.now();
    const out: LeaseInfo[] = [];
    for (let i = 0; i < this.state.length; i++) {
      const st = this.live(i, now) ? this.state[i]! : LeaseState.FREE;
      out.push({
        ip: (this.cfg.dhcpStart + i) >>> 0,
        mac: this.owner[i]!,
        state: STATE_NAMES[st]!,
        remainingMs: st === LeaseState.FREE ? 0 : Math.max(0, this.expires[i]! - now),
      });
    }
    return out;
  }

  // ---- message handlers ----

  private discover(mac: number, out: Uint8Array, oo: number): number {
    const c = this.counters;
    count(c, 'dhcp_discover');
    const now = this.now();
    const requested = this.view.optionU32(DhcpOption.REQUESTED_IP);
    const i = this.pick(mac, requested, now);
    if (i < 0) { count(c, 'dhcp_pool_exhausted'); return 0; }
    if (!(this.state[i] === LeaseState.BOUND && this.owner[i] === mac && this.live(i, now))) {
      this.state[i] = LeaseState.OFFERED;
      this.expires[i] = now + OFFER_HOLD_MS;
    }
    this.owner[i] = mac;
    this.lastUse[i] = now;
    count(c, 'dhcp_offer');
    return this.reply(DhcpMessageType.OFFER, this.addr(i), true, out, oo);
  }

  private request(mac: number, out: Uint8Array, oo: number): number {
    const c = this.counters;
    const v = this.view;
    count(c, 'dhcp_request');
    const now = this.now();
    const serverId = v.optionU32(DhcpOption.SERVER_ID);
    if (serverId !== -1 && serverId !== this.cfg.gateway) {
      // The client took another server's offer: withdraw ours.
      const mine = this.slotOf(mac);
      if (mine >= 0 && this.state[mine] === LeaseState.OFFERED) this.state[mine] = LeaseState.FREE;
      count(c, 'dhcp_request_other_server');
      return 0;
    }
    const opt = v.optionU32(DhcpOption.REQUESTED_IP);
    const requested = opt !== -1 ? opt : v.ciaddr;
    const i = this.index(requested);
    // Ours to give: this client's slot (DECLINE clears the owner), or one nobody holds now.
    if (i < 0 || (this.owner[i] !== mac && this.live(i, now))) {
      count(c, 'dhcp_nak');
      return this.reply(DhcpMessageType.NAK, 0, true, out, oo);
    }
    // One address per client: give up any other slot it held.
    for (let j = 0; j < this.owner.length; j++) {
      if (j !== i && this.owner[j] === mac && this.state[j] !== LeaseState.FREE) this.state[j] = LeaseState.FREE;
    }
    this.owner[i] = mac;
    this.state[i] = LeaseState.BOUND;
    this.expires[i] = now + this.leaseTimeS * 1000;
    this.lastUse[i] = now;
    count(c, 'dhcp_ack');
    return this.reply(DhcpMessageType.ACK, requested, true, out, oo);
  }

  private release(mac: number): void {
    const i = this.index(this.view.ciaddr);
    if (i >= 0 && this.owner[i] === mac && this.state[i] !== LeaseState.DECLINED) {
      this.state[i] = LeaseState.FREE;
      this.lastUse[i] = this.now();
      count(this.counters, 'dhcp_release');
    } else {
      count(this.counters, 'dhcp_release_unknown');
    }
  }

  private decline(mac: number): void {
    const i = this.index(this.view.optionU32(DhcpOption.REQUESTED_IP));
    if (i >= 0 && this.owner[i] === mac) {
      this.owner[i] = NOBODY;
      this.state[i] = LeaseState.DECLINED;
      this.expires[i] = this.now() + DECLINE_HOLD_MS;
      count(this.counters, 'dhcp_decline');
    } else {
      count(this.counters, 'dhcp_decline_unknown');
    }
  }

  private inform(out: Uint8Array, oo: number): number {
    count(this.counters, 'dhcp_inform');
    if (this.view.ciaddr === 0) { count(this.counters, 'dhcp_malformed'); return 0; }
    return this.reply(DhcpMessageType.ACK, 0, false, out, oo);
  }

  // ---- pool ----

  private addr(i: number): number { return (this.cfg.dhcpStart + i) >>> 0; }

  /** Slot index of an address, or -1 when it is not in the pool. */
  private index(ip: number): number {
    if (ip < 0) return -1;
    const i = (ip - this.cfg.dhcpStart) >>> 0;
    return i < this.owner.length ? i : -1;
  }

  /** The offer/lease/decline in slot i has not run out. FREE slots are never live. */
  private live(i: number, now: number): boolean {
    return this.state[i] !== LeaseState.FREE && this.expires[i]! > now;
  }

  private slotOf(mac: number): number {
    for (let i = 0; i < this.owner.length; i++) if (this.owner[i] === mac) return i;
    return -1;
  }

  private pick(mac: number, requested: number, now: number): number {
    const own = this.slotOf(mac);
    if (own >= 0) return own;
    const r = this.index(requested);
    if (r >= 0 && !this.live(r, now)) return r;
    let best = -1;
    for (let i = 0; i < this.owner.length; i++) {
      if (this.live(i, now)) continue;
      if (this.owner[i] === NOBODY) return i; // never used (or decline expired): lowest first
      if (best < 0 || this.lastUse[i]! < this.lastUse[best]!) best = i;
    }
    return best;
  }

  // ---- reply ----

  private reply(type: number, yiaddr: number, withLease: boolean, out: Uint8Array, oo: number): number {
    const v = this.view;
    const cfg = this.cfg;
    const ciaddr = v.ciaddr;
    const broadcast = type === DhcpMessageType.NAK || v.broadcastFlag || ciaddr === 0;
    this.replyBroadcast = broadcast;
    this.replyDstIp = broadcast ? 0xffffffff : ciaddr;
    // RFC 2131 table 3: ciaddr is echoed only in ACKs; flags and giaddr always.
    let p = emitDhcpHeader(out, oo, BootpOp.REPLY, v.xid, 0, v.flags & DHCP_FLAG_BROADCAST,
      type === DhcpMessageType.ACK ? ciaddr : 0, yiaddr, 0, v.giaddr, v.b, v.chaddrOffset);
    p = emitDhcpOptionU8(out, p, DhcpOption.MESSAGE_TYPE, type);
    p = emitDhcpOptionU32(out, p, DhcpOption.SERVER_ID, cfg.gateway);
    if (type !== DhcpMessageType.NAK) {
      if (withLease) p = emitDhcpOptionU32(out, p, DhcpOption.LEASE_TIME, this.leaseTimeS);
      p = emitDhcpOptionU32(out, p, DhcpOption.SUBNET_MASK, this.mask);
      p = emitDhcpOptionU32(out, p, DhcpOption.ROUTER, cfg.gateway);
      if (cfg.dns !== 0) p = emitDhcpOptionU32(out, p, DhcpOption.DNS_SERVER, cfg.dns);
      if (cfg.mtu >= 68 && cfg.mtu <= 0xffff) p = emitDhcpOptionU16(out, p, DhcpOption.INTERFACE_MTU, cfg.mtu);
    }
    return emitDhcpEnd(out, oo, p);
  }
}
