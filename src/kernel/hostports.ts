// Host ports held while they are published, as Docker does: a listening TCP socket (or a bound UDP
// socket) on HOSTIP:HOSTPORT keeps every host service off the port for as long as the DNAT rules
// forward it, and binding it first is how a port some host service already holds is refused before
// anything is created. `tapswitch run` (control/kernel-run.ts) holds its ports for CMD's lifetime.
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { KernelError } from './errors';
import { portSpecToString, type PortSpec } from './validate';

export type Reservation = net.Server | dgram.Socket;

export async function reservePort(p: PortSpec): Promise<Reservation> {
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
  releasePorts([await reservePort(p)]);
}

export function releasePorts(r: readonly Reservation[]): void {
  for (const x of r) {
    try {
      x.close();
    } catch { /* already closed */ }
  }
}
