// Coded errors for the edges (CLI, namespace setup, data-plane supervision).
//
// Every failure a user can meet carries a stable `code` (for tests and scripts), a message saying what
// went wrong and a hint saying what to do; the CLI prints them as one line
// `tapswitch: <what went wrong>: <what to do>` and exits with the status the code maps to. The exit
// statuses live here, not in the CLI, because the runner (control) also decides statuses (CMD's own,
// 128+signal) and imports must flow cli -> control.

/** Process exit statuses. The documented table is rendered by src/cli/exit-codes.ts. */
export const ExitStatus = {
  /** Success (or, for `run`, CMD's own status). */
  OK: 0,
  /** Bad command line: unknown flag, missing value, missing CMD. (BSD sysexits EX_USAGE) */
  USAGE: 64,
  /** A flag's value is wrong: CIDR, MTU, queue count, address, PID/path that does not exist. (EX_DATAERR) */
  BAD_VALUE: 65,
  /** A kernel feature or permission is missing: /dev/net/tun, user namespaces, subordinate ids. (EX_UNAVAILABLE) */
  UNAVAILABLE: 69,
  /** A bug or an unrecoverable data-plane failure. (EX_SOFTWARE) */
  INTERNAL: 70,
  /** Namespace/TAP set-up failed for another reason before CMD started (like `env`/`docker run`). */
  SETUP_FAILED: 125,
  /** CMD exists but cannot be executed (set by the shell that execs it). */
  CANNOT_EXECUTE: 126,
  /** CMD not found (set by the shell that execs it). */
  NOT_FOUND: 127,
  /** CMD killed by signal N exits tapswitch with 128+N, like shells. */
  SIGNAL_BASE: 128,
} as const;

export const ErrorCodes = {
  ERR_USAGE: ExitStatus.USAGE,
  ERR_BAD_CIDR: ExitStatus.BAD_VALUE,
  ERR_BAD_MTU: ExitStatus.BAD_VALUE,
  ERR_BAD_VALUE: ExitStatus.BAD_VALUE,
  ERR_NO_TARGET: ExitStatus.BAD_VALUE,
  ERR_NO_TUN: ExitStatus.UNAVAILABLE,
  ERR_NO_USERNS: ExitStatus.UNAVAILABLE,
  ERR_NO_SUBIDS: ExitStatus.UNAVAILABLE,
  ERR_NO_UIDMAP_TOOLS: ExitStatus.UNAVAILABLE,
  ERR_NO_UNSHARE: ExitStatus.UNAVAILABLE,
  ERR_NO_PERMISSION: ExitStatus.UNAVAILABLE,
  ERR_NO_ADDON: ExitStatus.UNAVAILABLE,
  ERR_SETUP: ExitStatus.SETUP_FAILED,
  ERR_NO_WORKER: ExitStatus.INTERNAL,
  ERR_DATAPLANE: ExitStatus.INTERNAL,
  ERR_INTERNAL: ExitStatus.INTERNAL,
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

export class TapswitchError extends Error {
  readonly code: ErrorCode;
  /** What the user can do about it; printed after the message. */
  readonly hint: string;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TapswitchError';
    this.code = code;
    this.hint = hint;
    this.exitCode = ErrorCodes[code];
  }

  /** The one line the CLI prints (without the `tapswitch: ` prefix). */
  oneLine(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }
}

export function isTapswitchError(e: unknown): e is TapswitchError {
  return e instanceof TapswitchError;
}

/** Wrap anything thrown into a TapswitchError so the CLI always has a code and a status. */
export function toTapswitchError(e: unknown): TapswitchError {
  if (e instanceof TapswitchError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new TapswitchError('ERR_INTERNAL', `internal error: ${msg}`,
    'please report this with the output of --log-level debug', { cause: e });
}
