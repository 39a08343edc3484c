// `tapswitch run --network MODE -- CMD` on the kernel path.
//
// Modes: a network name (or "bridge", created on first use) gives CMD a new netns with eth0 on
// that network's bridge; "none" gives a new netns with only lo; "host" runs CMD as is;
// "container:NAME" runs CMD in the netns of a running named container (no publishing).
//
// This process owns the container: its pid + start time are in the record, and it stays alive
// while CMD runs, forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT. When CMD exits, the endpoint and every
// rule it added are removed; if this process is killed instead, the next tapswitch command finds
// the owner gone and reaps the endpoint. Published host ports are also held by a listening socket
// here (as Docker does) so no host service can bind them while they are forwarded, and a port a
// host service already holds is refused before anything is created.
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { constants as osConstants } from 'node:os';
import { KernelError } from './errors';
import { DEFAULT_NETWORK, KernelDriver } from './driver';
import { requireNetAdmin } from './host';
import { netnsPath } from './links';
import { StateStore } from './state';
import { parsePortSpec, portSpecToString, type PortSpec } from './validate';

export interface KernelRunOptions {
  /** Network name, "none", "host", "container:NAME"; default "bridge". */
  network?: string;
  name?: string;
  ip?: string;
  mac?: string;
  /** `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]` strings. */
  publish?: string[];
  command: string[];
  /** Called once CMD's netns is ready, before CMD starts (tests, logging). */
  onReady?: (info: { netns?: string; ip?: string; mac?: string }) => void;
  stateDir?: string;
}

type Reservation = net.Server | dgram.Socket;

async function reservePort(p: PortSpec): Promise<Reservation> {
  const host = p.hostIp ?? '0.0.0.0';
  return new Promise<Reservation>((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException): void => {
      reject(new KernelError(e.code === 'EADDRINUSE' ? 'ERR_PORT_IN_USE' : 'ERR_BAD_VALUE',
        `cannot reserve host port ${portSpecToString(p)}: ${e.code ?? e.message}`,
        e.code === 'EADDRINUSE' ? 'a host service already uses it; pick another host port'
          : 'the host address must be one of this host\'s addresses'));
    };
    if (p.proto === 'tcp') {
      const srv = net.createServer();
      srv.once('error', fail);
      srv.listen({ port: p.hostPort, host, exclusive: true }, () => { srv.unref(); resolve(srv); });
    } else {
      const sock = dgram.createSocket('udp4');
      sock.once('error', fail);
      sock.bind({ port: p.hostPort, address: host, exclusive: true }, () => { sock.unref(); resolve(sock); });
    }
  });
}

/**
 * For `network publish` at runtime (no process stays to hold the port): fail now if a host
 * service holds the port or the host address is not ours, as `run --publish` would.
 */
export async function checkPortFree(p: PortSpec): Promise<void> {
  closeAll([await reservePort(p)]);
}

function closeAll(r: Reservation[]): void {
  for (const x of r) {
    try {
      x.close();
    } catch { /* already closed */ }
  }
}

/** Spawn CMD (optionally inside a netns), forward signals, resolve with its exit status. */
function runCommand(command: string[], netns?: string): Promise<number> {
  const [file, ...args] = netns ? ['nsenter', `--net=${netnsPath(netns)}`, '--', ...command] : command;
  return new Promise((resolve, reject) => {
    const child = spawn(file!, args, { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
    for (const s of sigs) process.on(s, forward);
    const done = (): void => {
      for (const s of sigs) process.off(s, forward);
    };
    child.once('error', (e: NodeJS.ErrnoException) => {
      done();
      if (e.code === 'ENOENT') resolve(127);
      else if (e.code === 'EACCES') resolve(126);
      else reject(e);
    });
    child.once('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? ((osConstants.signals as Record<string, number>)[signal] ?? 0) : 0));
    });
  });
}

export async function runKernelCommand(o: KernelRunOptions): Promise<number> {
  if (o.command.length === 0) {
    throw new KernelError('ERR_USAGE', 'run needs a command', 'tapswitch run --network NAME -- CMD [ARGS...]');
  }
  const mode = o.network ?? DEFAULT_NETWORK;
  const ports = (o.publish ?? []).map(parsePortSpec);

  if (mode === 'host') {
    if (ports.length || o.ip !== undefined || o.mac !== undefined) {
      throw new KernelError('ERR_PUBLISH_REFUSED', '--publish, --ip and --mac do not apply to --network host',
        'CMD uses the host\'s network as is');
    }
    o.onReady?.({});
    return runCommand(o.command);
  }

  requireNetAdmin(`run --network ${mode}`);
  const driver = new KernelDriver(o.stateDir === undefined ? undefined : new StateStore(o.stateDir));

  if (mode.startsWith('container:')) {
    if (ports.length || o.ip !== undefined || o.mac !== undefined) {
      throw new KernelError('ERR_PUBLISH_REFUSED', `--publish, --ip and --mac are not allowed with --network ${mode}`,
        'the joined container owns the network namespace: publish on that container instead');
    }
    const target = driver.findContainer(mode.slice('container:'.length));
    o.onReady?.({ netns: target.netns });
    return runCommand(o.command, target.netns);
  }

  const held: Reservation[] = [];
  try {
    if (ports.length) driver.checkPublishable(ports);
    for (const p of ports) held.push(await reservePort(p));
    const c = driver.startContainer({
      network: mode, ...(o.name !== undefined ? { name: o.name } : {}),
      ...(o.ip !== undefined ? { ip: o.ip } : {}), ...(o.mac !== undefined ? { mac: o.mac } : {}), ports,
    });
    try {
      o.onReady?.({ netns: c.netns, ...(c.endpoint ? { ip: c.endpoint.ip, mac: c.endpoint.mac } : {}) });
      return await runCommand(o.command, c.netns);
    } finally {
      driver.stopContainer(c.id);
    }
  } finally {
    closeAll(held);
  }
}
