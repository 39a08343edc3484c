// `--ready-fd FD` and `--exit-fd FD`: how RootlessKit and Podman learn that tapswitch-slirp4netns is
// up, and how Podman tells it to go away.
//
// Theory of operation
// -------------------
// ready-fd: the client passes the write end of a pipe (Podman 4.3 as fd 4, Podman 5 and RootlessKit
// as fd 3) and waits for the single byte '1'. Closing the pipe without writing means "failed" to
// them, so the byte is written only when the caller says the network is fully ready (TAP configured,
// API socket listening), exactly once, and the fd is closed right after.
//
// exit-fd: the client passes the read end of a pipe and keeps the write end; when the client dies
// or closes it, the pipe hangs up. slirp4netns polls the fd for POLLIN and exits on ANY event:
// hang-up, error, data, and also when the fd is not open at all (poll reports POLLNVAL). It then
// removes the API socket and exits 0. We do the same with Node's own event loop: a pipe or socket
// fd is wrapped in a net.Socket (libuv polls it; 'data', 'end', 'error' and 'close' all mean exit).
// Fds libuv cannot poll as streams behave as poll(2) would report them: a regular file or a non-tty
// character device (e.g. /dev/null) is always readable, so it fires at once; a tty fires on input.
//
// Fd numbers are never assumed: they come from the command line (Podman 4.3 `-e 3 -r 4`, Podman 5
// `-r 3 -e 4`, RootlessKit `-r 3` and no exit fd).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tty from 'node:tty';
import { TapswitchError } from './errors';

/** Whether `fd` is an open file descriptor of this process. */
export function isFdOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

function fdError(flag: string, fd: number, what: string, cause?: unknown): TapswitchError {
  return new TapswitchError('ERR_SETUP', `${flag} ${fd}: ${what}`,
    `the process that started tapswitch-slirp4netns must pass fd ${fd} open (e.g. a pipe)`,
    cause === undefined ? undefined : { cause });
}

/** Sleep without the event loop, for the rare EAGAIN on a non-blocking ready pipe. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Write the single byte '1' to `fd` and close it. Throws a coded error when the fd is not open or
 * the reader has gone (EPIPE); the fd is closed either way.
 */
export function signalReady(fd: number): void {
  const byte = Buffer.from('1');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        if (fs.writeSync(fd, byte, 0, 1) === 1) break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code === 'EAGAIN' || code === 'EINTR') && attempt < 100) {
          pause(10);
          continue;
        }
        throw fdError('--ready-fd', fd, `cannot write the ready byte: ${(e as Error).message}`, e);
      }
    }
  } finally {
    try {
      fs.closeSync(fd);
    } catch { /* not open, or already closed */ }
  }
}

/** The ready fd of one run: `ready()` once when everything is up; `abandon()` on failure. */
export class ReadyFd {
  readonly fd: number;
  private done = false;

  /** Throws a coded error now when `fd` is not open, instead of at ready time. */
  constructor(fd: number) {
    if (!isFdOpen(fd)) throw fdError('--ready-fd', fd, 'not an open file descriptor');
    this.fd = fd;
  }

  /** Write '1' and close. Later calls do nothing. */
  ready(): void {
    if (this.done) return;
    this.done = true;
    signalReady(this.fd);
  }

  /** Close without writing: the client sees EOF without '1', i.e. "not ready". */
  abandon(): void {
    if (this.done) return;
    this.done = true;
    try {
      fs.closeSync(this.fd);
    } catch { /* already closed */ }
  }

  get signalled(): boolean {
    return this.done;
  }
}

/** Why the exit fd fired. */
export type ExitFdReason =
  /** EOF: the other end closed (the client exited or closed it). */
  | 'hangup'
  /** Data arrived (poll: POLLIN), or the fd is a file that is always readable. */
  | 'readable'
  /** A read error on the fd (poll: POLLERR). */
  | 'error'
  /** The fd is not open (poll: POLLNVAL). */
  | 'not-open';

export interface ExitFdWatch {
  /** Stop watching (closes the fd). */
  stop(): void;
  readonly fired: boolean;
}

/**
 * Call `onExit` once when `fd` reports any event. Keeps the event loop alive while watching.
 * Takes ownership of the fd: it is closed when the watch fires or is stopped.
 */
export function watchExitFd(fd: number, onExit: (reason: ExitFdReason, detail: string) => void): ExitFdWatch {
  let fired = false;
  let stream: net.Socket | tty.ReadStream | null = null;
  let keepAlive: NodeJS.Timeout | null = null;

  const fire = (reason: ExitFdReason, detail: string): void => {
    if (fired) return;
    fired = true;
    stop();
    onExit(reason, detail);
  };
  const stop = (): void => {
    if (keepAlive) clearTimeout(keepAlive);
    keepAlive = null;
    if (stream) {
      const s = stream;
      stream = null;
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.destroy();
    }
  };
  const later = (reason: ExitFdReason, detail: string): void => {
    // Asynchronously, like a poll event: callers finish their set-up first.
    keepAlive = setTimeout(() => fire(reason, detail), 0);
  };

  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    later('not-open', `fd ${fd} is not open (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    return { stop, get fired() { return fired; } };
  }

  const attach = (s: net.Socket | tty.ReadStream, kind: string): void => {
    stream = s;
    s.on('data', () => fire('readable', `${kind} fd ${fd} became readable`));
    s.on('end', () => fire('hangup', `${kind} fd ${fd} hung up`));
    s.on('error', (e: Error) => fire('error', `${kind} fd ${fd}: ${e.message}`));
    s.on('close', () => fire('hangup', `${kind} fd ${fd} closed`));
  };

  if (st.isFIFO() || st.isSocket()) {
    try {
      attach(new net.Socket({ fd, readable: true, writable: false, allowHalfOpen: true }), st.isFIFO() ? 'pipe' : 'socket');
    } catch (e) {
      later('error', `fd ${fd}: ${(e as Error).message}`);
    }
  } else if (st.isCharacterDevice() && tty.isatty(fd)) {
    attach(new tty.ReadStream(fd), 'tty');
  } else {
    // Regular files, /dev/null and the like: poll(2) says readable at once.
    later('readable', `fd ${fd} is not a pipe (always readable)`);
  }
  return { stop, get fired() { return fired; } };
}

/**
 * slirp4netns's exit-fd contract: when `fd` fires, run `cleanup` (remove the API socket), then exit
 * with status 0.
 */
export function exitOnExitFd(fd: number, cleanup: () => void,
  exit: (code: number) => void = (code) => process.exit(code),
  log?: (msg: string) => void): ExitFdWatch {
  return watchExitFd(fd, (reason, detail) => {
    log?.(`exit-fd: ${reason}: ${detail}; exiting`);
    try {
      cleanup();
    } finally {
      exit(0);
    }
  });
}
