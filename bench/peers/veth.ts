// The kernel path, the limit: a plain veth pair between the sandbox host and the container netns.
// "Port forwarding" here is a direct connection to the container's address (no forwarder exists).
import { netnsHolder, sh, stop } from '../sandbox';
import type { Container, Peer, PeerConfig } from './types';

const HOST = '10.200.0.1';
const CONT = '10.200.0.2';

export const veth: Peer = {
  system: 'veth',
  unavailable: () => null,
  version: () => `kernel ${sh('uname', ['-r']).trim()}`,
  async setup(cfg: PeerConfig): Promise<Container> {
    const h = await netnsHolder();
    const ns = ['nsenter', `--net=${h.netns}`, '--'];
    try {
      sh('ip', ['link', 'add', 'bveth0', 'mtu', String(cfg.mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(cfg.mtu), 'netns', String(h.pid)]);
      sh('ip', ['addr', 'add', `${HOST}/24`, 'dev', 'bveth0']);
      sh('ip', ['link', 'set', 'bveth0', 'up']);
      sh(ns[0] as string, [...ns.slice(1), 'ip', 'addr', 'add', `${CONT}/24`, 'dev', 'eth0']);
      sh(ns[0] as string, [...ns.slice(1), 'ip', 'link', 'set', 'eth0', 'up']);
      sh(ns[0] as string, [...ns.slice(1), 'ip', 'route', 'add', 'default', 'via', HOST]);
    } catch (e) {
      await stop(h.child, 500);
      throw e;
    }
    return {
      exec: h.exec,
      hostAddr: HOST,
      forward: (p) => ({ host: CONT, port: p, note: 'direct to the container address (no forwarder)' }),
      dataPlanePid: null,
      async teardown() {
        await stop(h.child, 500); // the netns and with it the veth pair vanish
      },
    };
  },
};
