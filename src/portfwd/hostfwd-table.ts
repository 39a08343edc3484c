// The host side of port forwards (slirp4netns's add_hostfwd): the id table and the real listeners.
//
// HostFwdTable keeps the ids (from 1, never reused), refuses binds that collide with an existing
// forward, and serialises operations so two adds of one port cannot race. Behind it,
// `OpenHostFwdListener` binds the host side: createSocketHostFwdBackend binds real ones (net.Server
// for TCP, portfwd/udp-forward for UDP) and hands accepted connections and client datagrams to
// hooks the data path supplies (they become flows into the guest). createFakeHostFwdBackend is an
// in-memory stand-in with bind-conflict semantics for tests.
//
// The real listeners must live on the thread that owns the data path they feed (a net.Socket
// cannot move between threads): in tapswitch that is data-plane worker 0 (see worker/hostfwd.ts);
// the API socket on the main thread reaches them through control messages.
import * as net from 'node:net';
import { UdpForwarder, type UdpClientFlow, type UdpFlowCloseReason } from './udp-forward';

export type HostFwdProto = 'tcp' | 'udp';

export interface HostFwdRule {
  proto: HostFwdProto;
  /** IPv4 dotted quad (canonical) or an IPv6 address. */
  hostAddr: string;
  /** 1..65535, or 0 for an OS-chosen port. */
  hostPort: number;
  /** IPv4 dotted quad inside the network. */
  guestAddr: string;
  guestPort: number;
}

export interface HostFwdEntry extends HostFwdRule {
  readonly id: number;
  /** The bound port (the OS's choice when the rule asked for 0). */
  hostPort: number;
}

export type HostFwdAddResult =
  | { ok: true; entry: HostFwdEntry }
  /** `reason` is for the log (e.g. "listen EADDRINUSE 0.0.0.0:8080"); clients see the fixed text. */
  | { ok: false; reason: string };

export type HostFwdRemoveResult = 'removed' | 'not-found' | 'failed';

/** What the API socket needs from the port-forwarding side. */
export interface HostFwdBackend {
  /** Open the host listener for a rule and give it the next id (ids start at 1, never reused). */
  add(rule: HostFwdRule): Promise<HostFwdAddResult>;
  /** Close a forward's listener and forget it. */
  remove(id: number): Promise<HostFwdRemoveResult>;
  /** Current forwards in id order (a backend in another thread answers asynchronously). */
  list(): readonly HostFwdEntry[] | Promise<readonly HostFwdEntry[]>;
}

/** An open host-side listener of one forward. */
export interface HostFwdListener {
  /** The port actually bound. */
  readonly hostPort: number;
  close(): Promise<void>;
}

/** Bind the host side of a forward; reject (with an Error whose message says why) when it cannot. */
export type OpenHostFwdListener = (rule: HostFwdRule, id: number) => Promise<HostFwdListener>;

function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::';
}

/** Two binds of the same proto/port collide when the addresses are equal or one is a wildcard. */
function collides(a: HostFwdRule, b: HostFwdRule): boolean {
  return a.proto === b.proto && a.hostPort !== 0 && a.hostPort === b.hostPort
    && (a.hostAddr === b.hostAddr || isWildcard(a.hostAddr) || isWildcard(b.hostAddr));
}

/**
 * The id table over any listener implementation: ids, conflicts, serialisation of operations.
 * This is the HostFwdBackend the data path plugs its listeners into.
 */
export class HostFwdTable implements HostFwdBackend {
  private readonly openListener: OpenHostFwdListener;
  private readonly entries = new Map<number, { entry: HostFwdEntry; listener: HostFwdListener }>();
  private nextId = 1;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(open: OpenHostFwdListener) {
    this.openListener = open;
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const p = this.chain.then(op, op);
    this.chain = p.catch(() => undefined);
    return p;
  }

  add(rule: HostFwdRule): Promise<HostFwdAddResult> {
    return this.addAs(rule, null);
  }

  /**
   * Open a forward under a given id (a restarted data-plane worker re-opening the forwards it had,
   * so clients' ids stay valid). Later adds get ids above it.
   */
  restore(rule: HostFwdRule, id: number): Promise<HostFwdAddResult> {
    if (!Number.isSafeInteger(id) || id < 1 || this.entries.has(id)) {
      return Promise.resolve({ ok: false as const, reason: `id ${id} is invalid or in use` });
    }
    return this.addAs(rule, id);
  }

  private addAs(rule: HostFwdRule, fixedId: number | null): Promise<HostFwdAddResult> {
    return this.serial(async () => {
      for (const { entry } of this.entries.values()) {
        if (collides(rule, entry)) {
          return { ok: false as const, reason: `${rule.proto} ${rule.hostAddr}:${rule.hostPort} collides with forward ${entry.id}` };
        }
      }
      const id = fixedId ?? this.nextId;
      let listener: HostFwdListener;
      try {
        listener = await this.openListener({ ...rule }, id);
      } catch (e) {
        return { ok: false as const, reason: e instanceof Error ? e.message : String(e) };
      }
      this.nextId = Math.max(this.nextId, id + 1);
      const entry: HostFwdEntry = { id, ...rule, hostPort: listener.hostPort };
      this.entries.set(id, { entry, listener });
      return { ok: true as const, entry: { ...entry } };
    });
  }

  remove(id: number): Promise<HostFwdRemoveResult> {
    return this.serial(async () => {
      const found = this.entries.get(id);
      if (!found) return 'not-found' as const;
      try {
        await found.listener.close();
      } catch {
        return 'failed' as const;
      }
      this.entries.delete(id);
      return 'removed' as const;
    });
  }

  list(): readonly HostFwdEntry[] {
    return [...this.entries.values()].map(({ entry }) => ({ ...entry })).sort((a, b) => a.id - b.id);
  }

  /** Close every listener (shutdown). */
  async closeAll(): Promise<void> {
    await this.serial(async () => {
      const all = [...this.entries.values()];
      this.entries.clear();
      await Promise.allSettled(all.map(({ listener }) => listener.close()));
    });
  }
}

export interface FakeHostFwdOptions {
  /** Ports that fail to bind as if taken by another program (EADDRINUSE). */
  busyPorts?: Iterable<number>;
  /** First port handed out for host_port 0 (default 40000). */
  ephemeralBase?: number;
  /** Make close() fail (to exercise remove_hostfwd's failure text). */
  failClose?: boolean;
}

/** In-memory backend for tests: bind semantics without sockets. `bound` lists open listeners by id. */
export function createFakeHostFwdBackend(opts: FakeHostFwdOptions = {}): HostFwdTable & { bound: Map<number, HostFwdRule> } {
  const busy = new Set(opts.busyPorts ?? []);
  let ephemeral = opts.ephemeralBase ?? 40000;
  const bound = new Map<number, HostFwdRule>();
  const table = new HostFwdTable(async (rule, id) => {
    if (busy.has(rule.hostPort)) throw new Error(`listen EADDRINUSE: address already in use ${rule.hostAddr}:${rule.hostPort}`);
    const hostPort = rule.hostPort === 0 ? ephemeral++ : rule.hostPort;
    bound.set(id, { ...rule, hostPort });
    return {
      hostPort,
      close: async () => {
        if (opts.failClose) throw new Error('close failed');
        bound.delete(id);
      },
    };
  });
  return Object.assign(table, { bound });
}

/** What the data path does with traffic arriving at real host listeners. */
export interface SocketHostFwdHooks {
  /**
   * A host client connected to a TCP forward (the socket is paused: resume it once the guest side
   * is wired). The hook owns the socket; if it throws, the socket is destroyed.
   */
  onTcpConnection: (entry: HostFwdEntry, socket: net.Socket) => void;
  /**
   * A datagram from a host client of a UDP forward. `reply` sends a guest datagram back to that
   * client (false when the flow has expired).
   */
  onUdpDatagram: (entry: HostFwdEntry, flow: UdpClientFlow, payload: Buffer,
    reply: (payload: Uint8Array) => boolean) => void;
  onUdpFlowClosed?: (entry: HostFwdEntry, flow: UdpClientFlow, reason: UdpFlowCloseReason) => void;
  /** UDP flow idle timeout (default 60 s). */
  udpIdleTimeoutMs?: number;
}

function listenTcp(rule: HostFwdRule, id: number, hooks: SocketHostFwdHooks): Promise<HostFwdListener> {
  const server = net.createServer({ pauseOnConnect: true });
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen({ host: rule.hostAddr, port: rule.hostPort, exclusive: true }, () => {
      server.off('error', onError);
      server.on('error', () => undefined); // accept errors (EMFILE): node retries; nothing to do
      const address = server.address() as net.AddressInfo;
      const entry: HostFwdEntry = { id, ...rule, hostPort: address.port };
      server.on('connection', (socket) => {
        try {
          hooks.onTcpConnection({ ...entry }, socket);
        } catch {
          socket.destroy();
        }
      });
      resolve({
        hostPort: address.port,
        // Stop listening only: connections already forwarded live on (as in slirp4netns), and
        // server.close()'s callback would wait for all of them.
        close: () => new Promise<void>((done) => {
          server.close();
          setImmediate(done);
        }),
      });
    });
  });
}

async function listenUdp(rule: HostFwdRule, id: number, hooks: SocketHostFwdHooks): Promise<HostFwdListener> {
  let entry: HostFwdEntry = { id, ...rule };
  const fwd: UdpForwarder = await UdpForwarder.open({
    hostAddr: rule.hostAddr,
    hostPort: rule.hostPort,
    ...(hooks.udpIdleTimeoutMs === undefined ? {} : { idleTimeoutMs: hooks.udpIdleTimeoutMs }),
    deliverToGuest: (flow, payload) => hooks.onUdpDatagram({ ...entry }, flow, payload,
      (reply) => fwd.sendToClient(flow.clientAddr, flow.clientPort, reply)),
    onFlowClosed: (flow, reason) => hooks.onUdpFlowClosed?.({ ...entry }, flow, reason),
  });
  entry = { ...entry, hostPort: fwd.hostPort };
  return { hostPort: fwd.hostPort, close: () => fwd.close() };
}

/**
 * The real backend: TCP forwards are net.Servers, UDP forwards UdpForwarders, bound on the host;
 * what arrives goes to `hooks` (the data path opens flows into the guest).
 */
export function createSocketHostFwdBackend(hooks: SocketHostFwdHooks): HostFwdTable {
  return new HostFwdTable((rule, id) => (rule.proto === 'tcp' ? listenTcp(rule, id, hooks) : listenUdp(rule, id, hooks)));
}
