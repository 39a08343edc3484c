// What every benchmarked system provides: set up a container network namespace served by it, say how
// to run a command in there, which address reaches the host's servers, and how a host client
// reaches a port inside (port forwarding).

export type SystemName = 'tapswitch' | 'slirp4netns' | 'pasta' | 'veth';
export const SYSTEMS: readonly SystemName[] = ['tapswitch', 'slirp4netns', 'pasta', 'veth'];

export interface PeerConfig {
  system: SystemName;
  mtu: number;
  /** tapswitch only: TAP queues (one worker each). */
  queues?: number;
  /** Container ports that must be reachable from the host (forwards are set up front). */
  forwardPorts: number[];
}

/** How a host client reaches a container port, or why it cannot. */
export type Forward = { host: string; port: number; note?: string } | { na: string };

export interface Container {
  /** argv prefix that runs a command inside the container's network namespace. */
  exec: string[];
  /** Address that, from inside the container, reaches the host's servers on 127.0.0.1. */
  hostAddr: string;
  forward(containerPort: number): Forward;
  /** The userspace data-plane process, for CPU and memory accounting (null: kernel path). */
  dataPlanePid: number | null;
  teardown(): Promise<void>;
}

export interface Peer {
  system: SystemName;
  /** Null when usable, else the reason to skip it. */
  unavailable(): string | null;
  version(): string;
  setup(cfg: PeerConfig): Promise<Container>;
}

/** Stable id of a configuration, e.g. "tapswitch@1500" or "tapswitch@1500q2". */
export function configId(c: { system: SystemName; mtu: number; queues?: number }): string {
  const base = c.system === 'veth' ? 'veth' : `${c.system}@${c.mtu}`;
  return c.queues !== undefined && c.queues !== 1 ? `${base}q${c.queues}` : base;
}
