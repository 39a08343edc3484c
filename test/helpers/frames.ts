// The frame layout and the gateway set-up the Router and DHCP unit tests share: frames as a TAP
// with the virtio-net header carries them, and a Router on a Switch whose one guest port is a
// MemoryDevice (what the router sends lands in dev's queue), on a clock the test advances.
import { Router, type ForwardFn, type RouterConfig } from '../../src/gateway/router';
import { MemoryDevice } from '../../src/link/memory';
import { Switch, TapPort } from '../../src/switch/switch';
import { ETH_HDR_LEN } from '../../src/wire/ethernet';
import { IPV4_HDR_LEN } from '../../src/wire/ipv4';
import { VNET_HDR_LEN } from '../../src/wire/vnet';

/** Offsets in a frame: the Ethernet header, the IPv4 header, the layer-4 header. */
export const ETH = VNET_HDR_LEN;
export const IP = ETH + ETH_HDR_LEN;
export const L4 = IP + IPV4_HDR_LEN;

export const GW_MAC: Uint8Array = Uint8Array.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
export const BCAST: Uint8Array = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** 10.0.2.2 and 10.0.2.3. */
export const GW = 0x0a000202;
export const DNS = 0x0a000203;

/** 10.0.2.0/24, leases 10.0.2.15-30, MTU 1500. */
export const ROUTER_CFG: RouterConfig = {
  network: 0x0a000200, prefixLength: 24, gateway: GW, dns: DNS, dhcpStart: 0x0a00020f, dhcpCount: 16,
  gatewayMac: [...GW_MAC], mtu: 1500,
};

/** A Router on a Switch with one started guest port over a MemoryDevice; time starts at `startMs`. */
export function gatewayOnMemory(cfg: RouterConfig, startMs: number, onForward: ForwardFn,
  counters: Record<string, number> = {}) {
  let t = startMs;
  const now = () => t;
  const sw = new Switch({ now, counters });
  const dev = new MemoryDevice('guest');
  const port = new TapPort(1, dev);
  sw.addPort(port);
  port.start(sw);
  const router = new Router(cfg, { switch: sw, counters, now, onForward });
  return { sw, dev, router, counters, advance: (ms: number) => { t += ms; } };
}
