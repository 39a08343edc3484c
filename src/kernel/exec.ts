// Running `ip`, `nft` and friends: argument arrays (never a shell), a timeout, LC_ALL=C so messages
// are stable, stdin fed from a string, stdout and stderr captured. A failure becomes a KernelError
// carrying the argv, the exit status, stderr and the input (for `nft -f -`, the whole generated
// script), which is everything needed to reproduce it by hand.
//
// Calls are synchronous: the driver runs short sequences under a file lock, in a CLI process, and
// sequential code is much easier to keep correct around crash points than callbacks.
import { spawnSync } from 'node:child_process';
import { KernelError } from './errors';

export interface ExecResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  /** Exit statuses that are not failures (the caller inspects the result). */
  okStatuses?: readonly number[];
  /** Label for the error message, e.g. "create bridge tsw-br-1a2b3c4d". */
  what?: string;
}

/** Commands we run, and where to find them when PATH is thin (sudo, cron). */
const SEARCH = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  e.PATH = [process.env.PATH ?? '', ...SEARCH].filter(Boolean).join(':');
  return e;
}

/** A hook for tests to observe every command (set by unit tests only). */
export let traceCommand: ((argv: readonly string[], input?: string) => void) | undefined;
export function setCommandTrace(fn: typeof traceCommand): void {
  traceCommand = fn;
}

export function run(argv: readonly string[], opts: ExecOptions = {}): ExecResult {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new KernelError('ERR_INTERNAL', 'empty command');
  traceCommand?.(argv, opts.input);
  const r = spawnSync(cmd, args, {
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 15_000,
    killSignal: 'SIGKILL',
    env: env(),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const failure = {
    argv: [...argv],
    status: r.status,
    signal: r.signal,
    stderr: r.stderr ?? '',
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  };
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new KernelError('ERR_TOOL_MISSING', `${cmd} is not installed`,
        `install it (Debian: apt-get install ${cmd === 'nft' ? 'nftables' : 'iproute2'})`, { command: failure, cause: r.error });
    }
    throw new KernelError('ERR_KERNEL_CMD', `${opts.what ?? cmd} failed: ${r.error.message}`, '',
      { command: failure, cause: r.error });
  }
  const ok = r.status === 0 || (r.status !== null && (opts.okStatuses ?? []).includes(r.status));
  if (!ok) {
    const first = (r.stderr ?? '').trim().split('\n')[0] ?? '';
    throw new KernelError('ERR_KERNEL_CMD', `${opts.what ?? argv.join(' ')} failed${first ? `: ${first}` : ''}`,
      'run with TAPSWITCH_DEBUG=1 for the full command, its stderr and input', { command: failure });
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `ip ARGS...` */
export function ip(args: readonly string[], what?: string): ExecResult {
  return run(['ip', ...args], what === undefined ? {} : { what });
}

/** `ip ARGS...` where "does not exist" is fine (teardown of objects that may be gone already). */
export function ipQuiet(args: readonly string[]): boolean {
  try {
    run(['ip', ...args]);
    return true;
  } catch (e) {
    if (e instanceof KernelError && e.code === 'ERR_KERNEL_CMD') {
      const err = e.command?.stderr ?? '';
      if (/Cannot find device|does not exist|No such file|No such device|Invalid argument/.test(err)) return false;
    }
    throw e;
  }
}

/** Apply an nft script as one transaction (`nft -f -`). */
export function nftApply(script: string, what = 'apply nftables rules'): void {
  run(['nft', '-f', '-'], { input: script, what });
}
