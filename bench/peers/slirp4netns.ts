// slirp4netns, started the way RootlessKit and Podman start it: a holder process owns a fresh
// netns, then `slirp4netns --configure --mtu=M --ready-fd=3 --api-socket=S --netns-type=path
// /proc/PID/ns/net tap0`; ready when it writes "1" to fd 3. 10.0.2.2 reaches the host's loopback.
// Port forwards through the API socket's add_hostfwd (host 127.0.0.1:P -> 10.0.2.100:P).
import * as net from 'node:net';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { haveCommand, netnsHolder, spawnTracked, stop } from '../sandbox';
import type { Container, Peer, PeerConfig } from './types';

function apiCall(sockPath: string, req: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sockPath);
    let reply = '';
    s.on('connect', () => s.end(JSON.stringify(req)));
    s.on('data', (d) => { reply += d.toString(); });
    s.on('end', () => resolve(reply));
    s.on('error', reject);
    s.setTimeout(5000, () => {
      s.destroy();
      reject(new Error('slirp4netns API timed out'));
    });
  });
}

export const slirp4netns: Peer = {
  system: 'slirp4netns',
  unavailable: () => (haveCommand('slirp4netns') ? null : 'slirp4netns not installed (Debian package slirp4netns)'),
  version() {
    const r = spawnSync('slirp4netns', ['--version'], { encoding: 'utf8' });
    const lines = (r.stdout ?? '').split('\n');
    return [lines[0], lines.find((l) => l.startsWith('libslirp'))].filter(Boolean).join(', ');
  },
  async setup(cfg: PeerConfig): Promise<Container> {
    const h = await netnsHolder();
    const api = `/tmp/tswbench-slirp-${process.pid}.sock`;
    fs.rmSync(api, { force: true });
    const child = spawnTracked('slirp4netns', ['--configure', `--mtu=${cfg.mtu}`, '--ready-fd=3', `--api-socket=${api}`,
      '--netns-type=path', h.netns, 'tap0'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      await new Promise<void>((resolve, reject) => {
        const ready = child.stdio[3] as NodeJS.ReadableStream | null;
        const t = setTimeout(() => reject(new Error(`slirp4netns not ready after 10 s: ${stderr.trim()}`)), 10_000);
        ready?.on('data', (d: Buffer) => {
          if (d.toString().includes('1')) {
            clearTimeout(t);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(t);
          reject(new Error(`slirp4netns exited (${code}): ${stderr.trim()}`));
        });
      });
      for (const p of cfg.forwardPorts) {
        const reply = await apiCall(api, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: p, guest_port: p } });
        if (!reply.includes('"return"')) throw new Error(`slirp4netns add_hostfwd ${p}: ${reply}`);
      }
    } catch (e) {
      await stop(child, 500);
      await stop(h.child, 500);
      throw e;
    }
    return {
      exec: h.exec,
      hostAddr: '10.0.2.2',
      forward: (p) => ({ host: '127.0.0.1', port: p }),
      dataPlanePid: child.pid ?? null,
      async teardown() {
        await stop(child, 2000);
        await stop(h.child, 500);
        fs.rmSync(api, { force: true });
      },
    };
  },
};
