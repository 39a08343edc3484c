// pasta (passt's namespace mode), attached to a netns bound to a file (see fileNetns()):
// `pasta --config-net -f -m M -t PORTS -u none -T none -U none --runas 0 --netns FILE`. It copies
// the sandbox host's address and default route (192.0.2.1/24 via 192.0.2.254, a dead end: see
// sandbox.ts) into the container, and maps the gateway address to the host's loopback, so
// 192.0.2.254 reaches the host's servers.
// Port forwards with `-t` (host 127.0.0.1:P -> container P, pasta's loopback splice path).
import { spawnSync } from 'node:child_process';
import { DEADEND_GW, DEADEND_HOST_ADDR, fileNetns, haveCommand, spawnTracked, stop } from '../sandbox';
import type { Container, Peer, PeerConfig } from './types';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const pasta: Peer = {
  system: 'pasta',
  unavailable: () => (haveCommand('pasta') ? null : 'pasta not installed (Debian package passt)'),
  version() {
    const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'passt'], { encoding: 'utf8' });
    return r.status === 0 ? `passt ${r.stdout.trim()} (Debian)` : 'pasta (version unknown)';
  },
  async setup(cfg: PeerConfig): Promise<Container> {
    const h = fileNetns();
    const ports = cfg.forwardPorts.length > 0 ? cfg.forwardPorts.join(',') : 'none';
    const child = spawnTracked('pasta', ['--config-net', '-f', '-q', '-m', String(cfg.mtu), '-t', ports, '-u', 'none', '-T', 'none', '-U', 'none',
      '--runas', '0', '--netns', h.netns]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    let exited = false;
    child.once('exit', () => { exited = true; });
    // Ready once the container's interface carries the copied address.
    let ok = false;
    for (let i = 0; i < 100 && !exited; i++) {
      const r = spawnSync('nsenter', [`--net=${h.netns}`, '--', 'ip', '-4', 'addr', 'show'], { encoding: 'utf8' });
      if ((r.stdout ?? '').includes(`${DEADEND_HOST_ADDR}/`)) {
        ok = true;
        break;
      }
      await sleep(100);
    }
    if (!ok) {
      await stop(child, 500);
      h.remove();
      throw new Error(`pasta did not configure the namespace: ${stderr.replace(/Failed to send \d+ bytes to syslog\n?/g, '').trim()}`);
    }
    await sleep(200);
    return {
      exec: h.exec,
      hostAddr: DEADEND_GW,
      forward: (p) => ({ host: '127.0.0.1', port: p }),
      dataPlanePid: child.pid ?? null,
      async teardown() {
        await stop(child, 2000);
        h.remove();
      },
    };
  },
};
