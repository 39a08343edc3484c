// The kernel driver's operations: networks (create, remove, list, inspect), containers' endpoints
// (start, stop) and runtime publishing. Each public method is one locked transaction:
//
//   lock -> load -> reconcile -> [save intent -> touch kernel -> save records, clear intent] -> unlock
//
// On a failure half-way the operation undoes what it did (from its intent) before rethrowing; if
// the process dies instead, the next command's reconcile does the same from the saved intent.
import { randomBytes } from 'node:crypto';
import { ipv4ToString, type Ipv4 } from '../wire/addr';
import { flushPublish } from './conntrack';
import { KernelError } from './errors';
import { allocateAddress, chooseSubnet, defaultGateway, findOverlap, macForAddress, routesFromIpJson, type Occupied } from './ipam';
import { readRoutesJson, requireForwardingAllowed } from './host';
import { createBridge, createEndpoint, createNetns } from './links';
import { portsClash } from './nft-rules';
import { destroyIntent, intentForContainer, reconcile, syncRules, type ReconcileReport } from './reconcile';
import {
  StateStore, selfId,
  type ContainerRecord, type EndpointRecord, type Intent, type KernelState, type NetworkRecord, type ProcessId,
} from './state';
import {
  checkHostAddress, checkMtu, checkName, cidrToString, parseAddress, parseCidr, parseMacAddress, portSpecToString,
  type PortSpec,
} from './validate';

/** Names with a meaning of their own in `run --network`. */
export const RESERVED_NETWORKS = ['none', 'host', 'bridge', 'default'] as const;
export const DEFAULT_NETWORK = 'bridge';

export interface CreateNetworkOptions {
  name: string;
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  /** Bridge MTU, also the default of the network's endpoints. */
  mtu?: number;
}

export interface StartContainerOptions {
  /** Network name, or "none" for a namespace with only lo. */
  network: string;
  name?: string;
  ip?: string;
  mac?: string;
  ports?: PortSpec[];
  /** veth MTU (default: the network's, else the kernel's 1500). */
  mtu?: number;
  /** Who owns the container (default: this process). */
  owner?: ProcessId;
}

export interface NetworkInspect {
  id: string;
  name: string;
  driver: 'kernel';
  subnet: string;
  gateway: string;
  bridge: string;
  internal: boolean;
  mtu?: number;
  created: string;
  endpoints: Array<{ container: string; id: string; ip: string; mac: string; mtu?: number; hostVeth: string; netns: string; ports: string[] }>;
  ports: Array<{ container: string; hostIp: string; hostPort: number; containerIp: string; containerPort: number; proto: string }>;
}

/**
 * Fault injection for the crash tests: `TAPSWITCH_TEST_CRASH=<point>` kills us with SIGKILL there;
 * `TAPSWITCH_TEST_SIGNAL=<point>` sends us SIGTERM there (handled once the transaction returns, as
 * a signal arriving mid-set-up would be).
 */
function crashPoint(name: string): void {
  if (process.env.TAPSWITCH_TEST_CRASH === name) process.kill(process.pid, 'SIGKILL');
  if (process.env.TAPSWITCH_TEST_SIGNAL === name) process.kill(process.pid, 'SIGTERM');
}

function newId(): string {
  return randomBytes(32).toString('hex');
}

function randomBridgeMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export class KernelDriver {
  readonly store: StateStore;
  lastReconcile: ReconcileReport | undefined;

  constructor(store: StateStore = new StateStore()) {
    this.store = store;
  }

  /** Lock, load, reconcile (saving its repairs), then run `fn` on the state. */
  private transaction<T>(fn: (s: KernelState) => T): T {
    return this.store.withLock(() => {
      const s = this.store.load();
      const before = JSON.stringify(s);
      try {
        this.lastReconcile = reconcile(s);
      } finally {
        if (JSON.stringify(s) !== before) this.store.save(s);
      }
      return fn(s);
    });
  }

  /** Run reconcile alone (every command does it anyway). */
  repair(): ReconcileReport {
    return this.transaction(() => this.lastReconcile ?? { intentsRecovered: 0, containersReaped: [] });
  }

  listNetworks(): NetworkRecord[] {
    return this.transaction((s) => s.networks.map((n) => ({ ...n })));
  }

  listContainers(): ContainerRecord[] {
    return this.transaction((s) => s.containers.map((c) => ({ ...c })));
  }

  inspectNetwork(name: string): NetworkInspect {
    return this.transaction((s) => {
      const n = findNetwork(s, name);
      const members = s.containers.filter((c) => c.endpoint?.network === n.id);
      return {
        ...n,
        endpoints: members.map((c) => ({
          container: c.name ?? c.id.slice(0, 12), id: c.id, ip: c.endpoint!.ip, mac: c.endpoint!.mac,
          ...(c.endpoint!.mtu !== undefined ? { mtu: c.endpoint!.mtu } : {}), hostVeth: c.endpoint!.hostVeth, netns: c.netns, ports: c.endpoint!.ports.map(portSpecToString),
        })),
        ports: members.flatMap((c) => c.endpoint!.ports.map((p) => ({
          container: c.name ?? c.id.slice(0, 12), hostIp: p.hostIp ?? '0.0.0.0', hostPort: p.hostPort,
          containerIp: c.endpoint!.ip, containerPort: p.containerPort, proto: p.proto,
        }))),
      };
    });
  }

  createNetwork(o: CreateNetworkOptions): NetworkRecord {
    checkName(o.name, 'network');
    if ((RESERVED_NETWORKS as readonly string[]).includes(o.name)) {
      throw new KernelError('ERR_NETWORK_RESERVED', `network name ${JSON.stringify(o.name)} is reserved`,
        `"${DEFAULT_NETWORK}" is created on first use by \`run\`; "none" and "host" are modes; pick another name`);
    }
    return this.transaction((s) => this.createNetworkLocked(s, o));
  }

  private createNetworkLocked(s: KernelState, o: CreateNetworkOptions): NetworkRecord {
    if (s.networks.some((n) => n.name === o.name)) {
      throw new KernelError('ERR_NETWORK_EXISTS', `network ${JSON.stringify(o.name)} already exists`,
        'pick another name, or remove it first with `tapswitch network rm`');
    }
    // Validate everything before the kernel sees anything.
    const given = o.subnet === undefined ? undefined : parseCidr(o.subnet);
    const gwGiven = o.gateway === undefined ? undefined : parseAddress(o.gateway, 'gateway');
    const mtu = o.mtu === undefined ? undefined : checkMtu(o.mtu);
    if (gwGiven !== undefined && given === undefined) {
      throw new KernelError('ERR_BAD_VALUE', '--gateway needs --subnet', 'pass the subnet the gateway belongs to');
    }
    requireForwardingAllowed();
    const occupied: Occupied[] = [
      ...s.networks.map((n) => ({ cidr: parseCidr(n.subnet), owner: `network ${n.name}` })),
      ...routesFromIpJson(readRoutesJson()).map((c) => ({ cidr: c, owner: `route ${cidrToString(c)}` })),
    ];
    let subnet;
    if (given) {
      const clash = findOverlap(given, occupied);
      if (clash) {
        throw new KernelError('ERR_SUBNET_OVERLAP', `subnet ${cidrToString(given)} overlaps ${clash.owner}`,
          'pick a subnet that no route and no other network uses, or leave --subnet out to get a free one');
      }
      subnet = given;
    } else {
      subnet = chooseSubnet(occupied);
    }
    const gateway = gwGiven ?? defaultGateway(subnet);
    checkHostAddress(subnet, gateway, 'gateway');

    let id = newId();
    while (s.networks.some((n) => n.bridge === `tsw-br-${id.slice(0, 8)}`)) id = newId();
    const rec: NetworkRecord = {
      id, name: o.name, driver: 'kernel', subnet: cidrToString(subnet), gateway: ipv4ToString(gateway),
      bridge: `tsw-br-${id.slice(0, 8)}`, bridgeMac: randomBridgeMac(), internal: o.internal === true,
      ...(mtu !== undefined ? { mtu } : {}), created: new Date().toISOString(),
    };
    const intent: Intent = { op: 'network-create', owner: selfId(), bridges: [rec.bridge], veths: [], netns: [] };
    s.intents.push(intent);
    this.store.save(s);
    try {
      crashPoint('network-create:before-bridge');
      createBridge({
        bridge: rec.bridge, mac: rec.bridgeMac, gatewayCidr: `${rec.gateway}/${subnet.prefix}`,
        ...(rec.mtu !== undefined ? { mtu: rec.mtu } : {}),
      });
      crashPoint('network-create:after-bridge');
      s.networks.push(rec);
      syncRules(s);
    } catch (e) {
      s.networks = s.networks.filter((n) => n !== rec);
      this.undo(s, intent);
      throw e;
    }
    s.intents = s.intents.filter((i) => i !== intent);
    this.store.save(s);
    return rec;
  }

  /** Best-effort rollback of a failed operation: destroy its objects, re-sync rules, save. */
  private undo(s: KernelState, intent: Intent): void {
    try {
      destroyIntent(intent);
      s.intents = s.intents.filter((i) => i !== intent);
      syncRules(s);
    } catch { /* the intent stays saved; the next command's reconcile retries */ }
    this.store.save(s);
  }

  removeNetwork(name: string): void {
    this.transaction((s) => {
      const n = findNetwork(s, name);
      const users = s.containers.filter((c) => c.endpoint?.network === n.id);
      if (users.length) {
        throw new KernelError('ERR_NETWORK_IN_USE',
          `network ${JSON.stringify(name)} has ${users.length} attached container(s): ` +
          users.map((c) => c.name ?? c.id.slice(0, 12)).join(', '),
          'stop them first (their `tapswitch run` ends the endpoint when CMD exits)');
      }
      const intent: Intent = { op: 'network-rm', owner: selfId(), bridges: [n.bridge], veths: [], netns: [] };
      s.networks = s.networks.filter((x) => x !== n);
      s.intents.push(intent);
      this.store.save(s);
      syncRules(s);
      destroyIntent(intent);
      s.intents = s.intents.filter((i) => i !== intent);
      this.store.save(s);
    });
  }

  findContainer(name: string): ContainerRecord {
    return this.transaction((s) => ({ ...findContainer(s, name) }));
  }

  /** Create a container's netns (and endpoint unless network is "none"); owned by `o.owner`. */
  startContainer(o: StartContainerOptions): ContainerRecord {
    if (o.name !== undefined) checkName(o.name, 'container');
    const ports = o.ports ?? [];
    const ipGiven = o.ip === undefined ? undefined : parseAddress(o.ip, 'container address');
    const macGiven = o.mac === undefined ? undefined : parseMacAddress(o.mac);
    const mtuGiven = o.mtu === undefined ? undefined : checkMtu(o.mtu);
    if (o.network === 'none' && (ipGiven !== undefined || macGiven !== undefined || mtuGiven !== undefined || ports.length)) {
      throw new KernelError('ERR_BAD_VALUE', '--ip, --mac, --mtu and --publish need a network',
        '`--network none` gives the container only lo');
    }
    for (let i = 0; i < ports.length; i++) {
      for (let j = 0; j < i; j++) {
        if (portsClash(ports[i]!, ports[j]!)) {
          throw new KernelError('ERR_PORT_IN_USE', `--publish ${portSpecToString(ports[i]!)} clashes with ${portSpecToString(ports[j]!)}`,
            'publish each host port once');
        }
      }
    }
    return this.transaction((s) => {
      if (o.name !== undefined && s.containers.some((c) => c.name === o.name)) {
        throw new KernelError('ERR_CONTAINER_EXISTS', `a container named ${JSON.stringify(o.name)} is running`,
          'pick another --name');
      }
      let net: NetworkRecord | undefined;
      if (o.network !== 'none') {
        net = s.networks.find((n) => n.name === o.network);
        if (!net && o.network === DEFAULT_NETWORK) net = this.createNetworkLocked(s, { name: DEFAULT_NETWORK });
        if (!net) throw notFound(o.network);
        if (ports.length && net.internal) {
          throw new KernelError('ERR_PUBLISH_REFUSED', `network ${JSON.stringify(net.name)} is internal`,
            'internal networks have no outside connectivity; publish on a non-internal network');
        }
        requireForwardingAllowed();
        for (const p of ports) {
          const owner = findPortOwner(s, p);
          if (owner) {
            throw new KernelError('ERR_PORT_IN_USE', `host port ${portSpecToString(p)} is already published by ${owner}`,
              'pick another host port');
          }
        }
      }
      let id = newId();
      while (s.containers.some((c) => c.netns === `tsw-${id.slice(0, 12)}`)) id = newId();
      const rec: ContainerRecord = {
        id, netns: `tsw-${id.slice(0, 12)}`, owner: o.owner ?? selfId(), created: new Date().toISOString(),
        ...(o.name !== undefined ? { name: o.name } : {}),
      };
      let prefix = 0;
      if (net) {
        const subnet = parseCidr(net.subnet);
        prefix = subnet.prefix;
        const gateway = parseAddress(net.gateway);
        const used = new Set<Ipv4>(s.containers.filter((c) => c.endpoint?.network === net!.id)
          .map((c) => parseAddress(c.endpoint!.ip)));
        let addr: Ipv4;
        if (ipGiven !== undefined) {
          checkHostAddress(subnet, ipGiven, 'container address');
          if (ipGiven === gateway || used.has(ipGiven)) {
            throw new KernelError('ERR_ADDRESS_IN_USE', `${ipv4ToString(ipGiven)} is already in use on network ${net.name}`,
              'pick another --ip or leave it out to get a free one');
          }
          addr = ipGiven;
        } else {
          addr = allocateAddress(subnet, gateway, used);
        }
        const mac = macGiven ?? macForAddress(addr);
        const macUser = s.containers.find((c) => c.endpoint?.network === net!.id && c.endpoint.mac === mac);
        if (macUser) {
          throw new KernelError('ERR_ADDRESS_IN_USE', `MAC ${mac} is already in use on network ${net.name}`, 'pick another --mac');
        }
        const mtu = mtuGiven ?? net.mtu;
        const ep: EndpointRecord = {
          network: net.id, ip: ipv4ToString(addr), mac, hostVeth: `tsw-v${id.slice(0, 10)}`, ports: [...ports],
          ...(mtu !== undefined ? { mtu } : {}),
        };
        rec.endpoint = ep;
      }
      const intent = intentForContainer(rec, 'container-create', selfId());
      s.intents.push(intent);
      this.store.save(s);
      try {
        crashPoint('container-create:before-netns');
        createNetns(rec.netns);
        if (net && rec.endpoint) {
          createEndpoint({
            netns: rec.netns, hostVeth: rec.endpoint.hostVeth, bridge: net.bridge, mac: rec.endpoint.mac,
            addressCidr: `${rec.endpoint.ip}/${prefix}`, gateway: net.gateway,
            ...(rec.endpoint.mtu !== undefined ? { mtu: rec.endpoint.mtu } : {}),
          });
        }
        crashPoint('container-create:after-endpoint');
        s.containers.push(rec);
        if (rec.endpoint?.ports.length) syncRules(s);
      } catch (e) {
        s.containers = s.containers.filter((c) => c !== rec);
        this.undo(s, intent);
        throw e;
      }
      s.intents = s.intents.filter((i) => i !== intent);
      this.store.save(s);
      return { ...rec };
    });
  }

  /** Tear a container's endpoint and netns down (idempotent: gone already is fine). */
  stopContainer(id: string): void {
    this.transaction((s) => {
      const c = s.containers.find((x) => x.id === id);
      if (!c) return; // reaped by someone's reconcile already
      const intent = intentForContainer(c, 'container-rm', selfId());
      s.containers = s.containers.filter((x) => x !== c);
      s.intents.push(intent);
      this.store.save(s);
      if (c.endpoint?.ports.length) syncRules(s);
      destroyIntent(intent);
      s.intents = s.intents.filter((i) => i !== intent);
      this.store.save(s);
    });
  }

  /**
   * Refuse publishes that another container already holds (the same check `publish` and
   * `startContainer` make under the lock; callers use it first for a precise message before they
   * probe the host port with a socket).
   */
  checkPublishable(ports: readonly PortSpec[]): void {
    this.transaction((s) => {
      for (const p of ports) {
        const owner = findPortOwner(s, p);
        if (owner) throw new KernelError('ERR_PORT_IN_USE', `host port ${portSpecToString(p)} is already published by ${owner}`, 'pick another host port');
      }
    });
  }

  /** Publish a port of a running container (takes effect at once, one nft transaction). */
  publish(container: string, p: PortSpec): void {
    this.transaction((s) => {
      const c = findContainer(s, container);
      const ep = c.endpoint;
      if (!ep) throw new KernelError('ERR_PUBLISH_REFUSED', `container ${container} has no network endpoint`, 'it runs with --network none');
      const net = s.networks.find((n) => n.id === ep.network);
      if (net?.internal) {
        throw new KernelError('ERR_PUBLISH_REFUSED', `network ${JSON.stringify(net.name)} is internal`, 'internal networks cannot publish ports');
      }
      const owner = findPortOwner(s, p);
      if (owner) throw new KernelError('ERR_PORT_IN_USE', `host port ${portSpecToString(p)} is already published by ${owner}`, 'pick another host port');
      ep.ports.push(p);
      syncRules(s);
      this.store.save(s);
    });
  }

  unpublish(container: string, p: PortSpec): void {
    this.transaction((s) => {
      const c = findContainer(s, container);
      const ep = c.endpoint;
      const idx = ep ? ep.ports.findIndex((x) => x.hostPort === p.hostPort && x.proto === p.proto &&
        (x.hostIp ?? '') === (p.hostIp ?? '')) : -1;
      if (!ep || idx < 0) {
        throw new KernelError('ERR_BAD_VALUE', `container ${container} does not publish ${portSpecToString(p)}`,
          'see `tapswitch network inspect NETWORK` for what it publishes');
      }
      const [gone] = ep.ports.splice(idx, 1);
      syncRules(s);
      this.store.save(s);
      if (gone) flushPublish(gone);
    });
  }
}

function notFound(name: string): KernelError {
  return new KernelError('ERR_NETWORK_NOT_FOUND', `no network named ${JSON.stringify(name)}`,
    'see `tapswitch network ls`; create it with `tapswitch network create NAME`');
}

function findNetwork(s: KernelState, name: string): NetworkRecord {
  const n = s.networks.find((x) => x.name === name || (name.length >= 12 && x.id.startsWith(name)));
  if (!n) throw notFound(name);
  return n;
}

function findContainer(s: KernelState, name: string): ContainerRecord {
  const c = s.containers.find((x) => x.name === name || (name.length >= 12 && x.id.startsWith(name)));
  if (!c) {
    throw new KernelError('ERR_CONTAINER_NOT_FOUND', `no running container named ${JSON.stringify(name)}`,
      'start it with `tapswitch run --name NAME ...` first');
  }
  return c;
}

function findPortOwner(s: KernelState, p: PortSpec): string | undefined {
  for (const c of s.containers) {
    for (const q of c.endpoint?.ports ?? []) {
      if (portsClash(p, q)) return `container ${c.name ?? c.id.slice(0, 12)} (${portSpecToString(q)})`;
    }
  }
  return undefined;
}
