// --ready-fd / --exit-fd with real child processes and real fds, laid out the way the clients do:
// Podman 4.3 `-e 3 -r 4` (os.Pipe: real pipes, here FIFOs), Podman 5 `-r 3 -e 4`, RootlessKit `-r 3`
// and no exit fd; plus an exit fd that is not open, one that becomes readable, and /dev/null.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { signalReady, ReadyFd, watchExitFd, isFdOpen } from '../../src/control/ready-exit-fd';
import { isTapswitchError } from '../../src/control/errors';

const MODULE = path.join(__dirname, '..', '..', 'src', 'control', 'ready-exit-fd.js');
const API_MODULE = path.join(__dirname, '..', '..', 'src', 'control', 'api-socket.js');

/** A real pipe made from a FIFO: [read end, write end], both owned by this process. */
function realPipe(dir: string, name: string): [number, number] {
  const p = path.join(dir, name);
  execFileSync('mkfifo', [p]);
  const r = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const w = fs.openSync(p, fs.constants.O_WRONLY);
  fs.unlinkSync(p);
  return [r, w];
}

interface Child {
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  pid: number;
}

/** Run `code` in a child node with the given stdio (fds 3, 4, ... as the clients pass them). */
function child(code: string, stdio: StdioOptions, env: Record<string, string> = {}): Child & { proc: ReturnType<typeof spawn> } {
  const proc = spawn(process.execPath, ['-e', code], { stdio, env: { ...process.env, MODULE, API_MODULE, ...env } });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (c, s) => resolve({ code: c, signal: s }));
  });
  return { proc, out: () => out, exited, pid: proc.pid as number };
}

/** Read everything from a pipe read end until EOF. */
function readAll(fd: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = new net.Socket({ fd, readable: true, writable: false });
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// The child side of a slirp4netns-like process: watch the exit fd, become ready, print events.
const SERVE = `
const { ReadyFd, exitOnExitFd } = require(process.env.MODULE);
const exitFd = process.env.EXIT_FD === undefined ? null : Number(process.env.EXIT_FD);
const readyFd = process.env.READY_FD === undefined ? null : Number(process.env.READY_FD);
const ready = readyFd === null ? null : new ReadyFd(readyFd);
if (exitFd !== null) exitOnExitFd(exitFd, () => console.log('cleanup'), (c) => { console.log('exit ' + c); process.exit(c); },
  (m) => console.log(m));
setTimeout(() => { if (ready) { ready.ready(); ready.ready(); } console.log('ready'); }, 50);
if (exitFd === null) setTimeout(() => process.exit(3), 300);
`;

test('Podman 4.3 layout: -e 3 -r 4 over real pipes', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fd-'));
  try {
    const [exitR, exitW] = realPipe(dir, 'exit');
    const [readyR, readyW] = realPipe(dir, 'ready');
    const c = child(SERVE, ['ignore', 'pipe', 'pipe', exitR, readyW], { EXIT_FD: '3', READY_FD: '4' });
    fs.closeSync(exitR);
    fs.closeSync(readyW);
    // The ready pipe yields exactly '1' then EOF.
    assert.equal(await readAll(readyR), '1');
    await waitFor(() => c.out().includes('ready'));
    // Still running while the exit pipe is held open.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!c.out().includes('exit'), c.out());
    // The client goes away: its write end closes.
    fs.closeSync(exitW);
    const ex = await c.exited;
    assert.equal(ex.code, 0, c.out());
    assert.match(c.out(), /exit-fd: hangup: pipe fd 3 hung up; exiting\ncleanup\nexit 0\n/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Podman 5 layout: -r 3 -e 4; the exit pipe becoming readable also means exit', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fd-'));
  try {
    const [exitR, exitW] = realPipe(dir, 'exit');
    const [readyR, readyW] = realPipe(dir, 'ready');
    const c = child(SERVE, ['ignore', 'pipe', 'pipe', readyW, exitR], { EXIT_FD: '4', READY_FD: '3' });
    fs.closeSync(exitR);
    fs.closeSync(readyW);
    assert.equal(await readAll(readyR), '1');
    fs.writeSync(exitW, 'x');
    const ex = await c.exited;
    assert.equal(ex.code, 0, c.out());
    assert.match(c.out(), /exit-fd: readable/);
    fs.closeSync(exitW);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('exit pipe whose writer is killed (SIGKILL of the client) fires', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fd-'));
  try {
    const [exitR, exitW] = realPipe(dir, 'exit');
    // A stand-in client that holds the write end; we kill it.
    const holder = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', exitW] });
    fs.closeSync(exitW);
    const c = child(SERVE, ['ignore', 'pipe', 'pipe', exitR], { EXIT_FD: '3' });
    fs.closeSync(exitR);
    await waitFor(() => c.out().includes('ready'));
    holder.kill('SIGKILL');
    const ex = await c.exited;
    assert.equal(ex.code, 0, c.out());
    assert.match(c.out(), /hangup/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('RootlessKit layout: -r 3 on a socketpair, no exit fd', async () => {
  const c = child(SERVE, ['ignore', 'pipe', 'pipe', 'pipe'], { READY_FD: '3' });
  const ready = c.proc.stdio[3] as net.Socket;
  let got = '';
  ready.on('data', (d: Buffer) => { got += d.toString(); });
  await new Promise<void>((r) => ready.on('end', () => r()));
  assert.equal(got, '1');
  const ex = await c.exited;
  assert.equal(ex.code, 3, c.out()); // our stand-in exits by itself; nothing watched
});

test('exit fd not open: fires at once with not-open, exit 0', async () => {
  const c = child(SERVE, ['ignore', 'pipe', 'pipe'], { EXIT_FD: '200' });
  const ex = await c.exited;
  assert.equal(ex.code, 0, c.out());
  assert.match(c.out(), /exit-fd: not-open: fd 200 is not open/);
});

test('exit fd on /dev/null or a regular file: always readable, fires at once', async () => {
  const devnull = fs.openSync('/dev/null', 'r');
  try {
    const c = child(SERVE, ['ignore', 'pipe', 'pipe', devnull], { EXIT_FD: '3' });
    const ex = await c.exited;
    assert.equal(ex.code, 0, c.out());
    assert.match(c.out(), /exit-fd: readable/);
  } finally {
    fs.closeSync(devnull);
  }
});

test('exit fd removes the API socket before exiting', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fd-'));
  try {
    const sock = path.join(dir, 'api.sock');
    const [exitR, exitW] = realPipe(dir, 'exit');
    const [readyR, readyW] = realPipe(dir, 'ready');
    const code = `
      const { ReadyFd, exitOnExitFd } = require(process.env.MODULE);
      const { startApiServer, createFakeHostFwdBackend } = require(process.env.API_MODULE);
      (async () => {
        const ready = new ReadyFd(4);
        const api = await startApiServer({ path: process.env.SOCK, backend: createFakeHostFwdBackend(),
          network: { network: 0x0a000200, prefixLength: 24, guest: 0x0a000264 } });
        exitOnExitFd(3, () => api.unlinkSync());
        ready.ready();
      })();`;
    const c = child(code, ['ignore', 'pipe', 'pipe', exitR, readyW], { SOCK: sock });
    fs.closeSync(exitR);
    fs.closeSync(readyW);
    assert.equal(await readAll(readyR), '1');
    assert.ok(fs.lstatSync(sock).isSocket(), 'API socket listens before ready');
    fs.closeSync(exitW);
    const ex = await c.exited;
    assert.equal(ex.code, 0, c.out());
    assert.equal(fs.existsSync(sock), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a ready fd closed without the byte reads as EOF with no data (not ready)', async () => {
  const code = `const { ReadyFd } = require(process.env.MODULE); const r = new ReadyFd(3); r.abandon(); r.ready();`;
  const c = child(code, ['ignore', 'pipe', 'pipe', 'pipe']);
  const ready = c.proc.stdio[3] as net.Socket;
  let got = '';
  ready.on('data', (d: Buffer) => { got += d.toString(); });
  await new Promise<void>((r) => ready.on('end', () => r()));
  assert.equal(got, '');
  assert.equal((await c.exited).code, 0, c.out());
});

test('in process: bad fds are coded errors; writing to a pipe with no reader fails clearly', () => {
  assert.throws(() => new ReadyFd(987), (e: unknown) => isTapswitchError(e) && /--ready-fd 987: not an open file descriptor/.test(e.message));
  assert.throws(() => signalReady(988), (e: unknown) => isTapswitchError(e) && /--ready-fd 988: cannot write/.test(e.message));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fd-'));
  try {
    const [r, w] = realPipe(dir, 'p');
    fs.closeSync(r);
    assert.throws(() => signalReady(w), (e: unknown) => isTapswitchError(e) && /EPIPE/.test(e.message));
    assert.equal(isFdOpen(w), false, 'closed even on failure');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('in process: stop() ends a watch without firing', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fd-'));
  try {
    const [r, w] = realPipe(dir, 'p');
    let fired = 0;
    const watch = watchExitFd(r, () => { fired++; });
    await new Promise((res) => setTimeout(res, 30));
    watch.stop();
    fs.closeSync(w);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(fired, 0);
    assert.equal(watch.fired, false);
    let reason = '';
    const w2 = watchExitFd(12345, (why) => { reason = why; });
    await waitFor(() => reason !== '');
    assert.equal(reason, 'not-open');
    assert.equal(w2.fired, true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
