// tapswitch itself: `tapswitch run --mtu M --queues Q -- holder` where the holder prints its PID and
// sleeps; measurements run inside with `nsenter --net=/proc/PID/ns/net` (we are root of the sandbox
// user namespace, which owns the container's). 10.0.2.2 reaches the host's 127.0.0.1.
// Port forwarding uses `run --publish HOSTPORT:PORT` once `tapswitch run --help` advertises it.
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { spawnTracked, stop, waitForLine } from '../sandbox';
import type { Container, Peer, PeerConfig } from './types';

/** dist/bench/peers -> dist/src/cli/main.js */
export const TAPSWITCH_CLI = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');

let helpText: string | null = null;
function runHelp(): string {
  if (helpText === null) {
    const r = spawnSync(process.execPath, [TAPSWITCH_CLI, 'run', '--help'], { encoding: 'utf8' });
    helpText = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  }
  return helpText;
}

/** Does `tapswitch run` have --publish? (Detected from its help text.) Pure over the text. */
export function helpHasPublish(help: string): boolean {
  return /(^|\s)--publish(?![\w-])/m.test(help);
}

export const PUBLISH_NA = 'n/a: not implemented yet (tapswitch run has no --publish)';

export const tapswitch: Peer = {
  system: 'tapswitch',
  unavailable() {
    const r = spawnSync(process.execPath, [TAPSWITCH_CLI, '--version'], { encoding: 'utf8' });
    return r.status === 0 ? null : `tapswitch CLI not runnable at ${TAPSWITCH_CLI} (build first: npx tsc -p tsconfig.json)`;
  },
  version() {
    const r = spawnSync(process.execPath, [TAPSWITCH_CLI, '--version'], { encoding: 'utf8' });
    const git = spawnSync('git', ['-C', path.dirname(TAPSWITCH_CLI), 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
    const dirty = spawnSync('git', ['-C', path.dirname(TAPSWITCH_CLI), 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
    return `${(r.stdout ?? '').trim()} (git ${(git.stdout ?? '').trim()}${(dirty.stdout ?? '').trim() !== '' ? ', dirty tree' : ''})`;
  },
  async setup(cfg: PeerConfig): Promise<Container> {
    const publish = helpHasPublish(runHelp());
    const args = [TAPSWITCH_CLI, 'run', '--network', 'userspace', '--mtu', String(cfg.mtu), '--queues', String(cfg.queues ?? 1)];
    if (publish) for (const p of cfg.forwardPorts) args.push('--publish', `${p}:${p}`);
    args.push('--', '/bin/sh', '-c', 'echo $$; exec sleep 1000000');
    const child = spawnTracked(process.execPath, args);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const line = await waitForLine(child, (l) => /^\d+$/.test(l.trim()), 20_000);
    const holder = Number(line.trim());
    const netns = `/proc/${holder}/ns/net`;
    return {
      exec: ['nsenter', `--net=${netns}`, '--'],
      hostAddr: '10.0.2.2',
      forward: (p) => (publish ? { host: '127.0.0.1', port: p } : { na: PUBLISH_NA }),
      dataPlanePid: child.pid ?? null,
      async teardown() {
        await stop(child, 5000);
        if (stderr.trim() !== '') process.stderr.write(`  tapswitch stderr: ${stderr.trim().split('\n').slice(-5).join('\n  ')}\n`);
      },
    };
  },
};
