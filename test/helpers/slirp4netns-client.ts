// Start a slirp4netns-compatible binary exactly as its clients do: the fds they choose, real pipes
// (FIFOs here: what Podman's os.Pipe() and RootlessKit's pipes are), and the API socket they call.
// Used by the integration tests (our binary) and the e2e tests (ours and the real slirp4netns).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { track } from './sandbox';

export interface Slirp4netnsProc {
  proc: ChildProcess;
  /** Resolves with what was read from the ready pipe once it closes ('1' when ready). */
  ready: Promise<string>;
  /** Close our end of the exit pipe (the client "dies"); undefined without an exit fd. */
  closeExitFd?: () => void;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  dir: string;
}

/**
 * Run `bin args...` with the ready pipe's write end as fd `readyFd` and (optionally) the exit pipe's
 * read end as fd `exitFd`; `args` should contain the matching `-r N` / `-e N` flags.
 */
export function startSlirp4netns(bin: string, args: string[], fds: { readyFd: number; exitFd?: number },
  env: NodeJS.ProcessEnv = process.env): Slirp4netnsProc {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-s4-'));
  const readyFifo = path.join(dir, 'ready');
  const exitFifo = path.join(dir, 'exit');
  spawnSyncOrThrow('mkfifo', [readyFifo, exitFifo]);
  // The shell opens the FIFOs onto the chosen fds, then execs the binary: the fds the client picks.
  const redirs = [`${fds.readyFd}>"$READY"`, ...(fds.exitFd !== undefined ? [`${fds.exitFd}<"$EXIT"`] : [])];
  // Open the exit FIFO first (the order our side opens them in below).
  if (fds.exitFd !== undefined) redirs.reverse();
  const proc = track(spawn('sh', ['-c', `exec "$@" ${redirs.join(' ')}`, 'sh', bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...env, READY: readyFifo, EXIT: exitFifo },
  }));
  let exitWriteFd: number | undefined;
  if (fds.exitFd !== undefined) {
    // Blocks until the shell opens the read end (at once).
    exitWriteFd = fs.openSync(exitFifo, 'w');
  }
  const ready = new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    const rs = fs.createReadStream(readyFifo);
    rs.on('data', (d) => chunks.push(d as Buffer));
    rs.on('close', () => resolve(Buffer.concat(chunks).toString()));
    rs.on('error', () => resolve(Buffer.concat(chunks).toString()));
  });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    proc,
    ready,
    ...(exitWriteFd !== undefined ? {
      closeExitFd: () => {
        if (exitWriteFd !== undefined) fs.closeSync(exitWriteFd);
        exitWriteFd = undefined;
      },
    } : {}),
    stdout: () => out,
    stderr: () => err,
    exited,
    dir,
  };
}

function spawnSyncOrThrow(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
}

/** One API request the way RootlessKit and Podman send it: write, half-close, read to EOF. */
export function apiCall(socketPath: string, request: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const chunks: Buffer[] = [];
    sock.on('connect', () => sock.end(typeof request === 'string' ? request : JSON.stringify(request)));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString();
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`API reply is not JSON: ${JSON.stringify(text)}`));
      }
    });
  });
}
