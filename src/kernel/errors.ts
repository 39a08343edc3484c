// Coded errors of the rootful (kernel) driver.
//
// The kernel driver sits below `control` in the import graph, so it cannot reuse control's
// TapswitchError; it has its own small error class with the same shape (a stable `code`, a message,
// a hint and an exit status) and, for failed commands, everything needed to reproduce the failure:
// the argv, the exit status, stderr and the input that was fed to the command (the generated nft
// script). src/cli/network.ts prints it as `tapswitch: <message>: <hint>`.

/** Exit statuses, numerically identical to control's ExitStatus (BSD sysexits). */
const EXIT = { USAGE: 64, BAD_VALUE: 65, UNAVAILABLE: 69, INTERNAL: 70, CONFLICT: 75, SETUP: 125 } as const;

export const KernelErrorCodes = {
  ERR_USAGE: EXIT.USAGE,
  ERR_BAD_VALUE: EXIT.BAD_VALUE,
  ERR_NO_CAP_NET_ADMIN: EXIT.UNAVAILABLE,
  ERR_NOT_ROOT: EXIT.UNAVAILABLE,
  ERR_USERSPACE_NOT_YET: EXIT.UNAVAILABLE,
  ERR_FORWARD_POLICY_DROP: EXIT.UNAVAILABLE,
  ERR_TOOL_MISSING: EXIT.UNAVAILABLE,
  ERR_NETWORK_EXISTS: EXIT.BAD_VALUE,
  ERR_NETWORK_NOT_FOUND: EXIT.BAD_VALUE,
  ERR_NETWORK_RESERVED: EXIT.BAD_VALUE,
  ERR_NETWORK_IN_USE: EXIT.CONFLICT,
  ERR_CONTAINER_EXISTS: EXIT.BAD_VALUE,
  ERR_CONTAINER_NOT_FOUND: EXIT.BAD_VALUE,
  ERR_SUBNET_OVERLAP: EXIT.BAD_VALUE,
  ERR_POOL_EXHAUSTED: EXIT.UNAVAILABLE,
  ERR_ADDRESS_IN_USE: EXIT.BAD_VALUE,
  ERR_PORT_IN_USE: EXIT.CONFLICT,
  ERR_PUBLISH_REFUSED: EXIT.BAD_VALUE,
  ERR_LOCK_TIMEOUT: EXIT.CONFLICT,
  ERR_STATE_CORRUPT: EXIT.INTERNAL,
  ERR_KERNEL_CMD: EXIT.SETUP,
  ERR_INTERNAL: EXIT.INTERNAL,
} as const;
export type KernelErrorCode = keyof typeof KernelErrorCodes;

/** What a failed external command leaves behind for the error report. */
export interface CommandFailure {
  argv: string[];
  /** Exit status, or null when killed (timeout, signal). */
  status: number | null;
  signal: string | null;
  stderr: string;
  /** What was written to the command's stdin (e.g. the nft script). */
  input?: string;
}

export class KernelError extends Error {
  readonly code: KernelErrorCode;
  readonly hint: string;
  readonly exitCode: number;
  readonly command?: CommandFailure;

  constructor(code: KernelErrorCode, message: string, hint = '',
    extra: { command?: CommandFailure; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'KernelError';
    this.code = code;
    this.hint = hint;
    this.exitCode = KernelErrorCodes[code];
    if (extra.command) this.command = extra.command;
  }

  /** One line for the CLI (without the `tapswitch: ` prefix). */
  oneLine(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }

  /** Multi-line detail for failed commands: argv, status, stderr and the input fed to it. */
  detail(): string {
    const c = this.command;
    if (!c) return '';
    const lines = [`  command: ${c.argv.map((a) => JSON.stringify(a)).join(' ')}`,
      `  exit: ${c.status === null ? `killed (${c.signal ?? 'timeout'})` : c.status}`];
    if (c.stderr.trim()) lines.push(`  stderr: ${c.stderr.trim().split('\n').join('\n          ')}`);
    if (c.input !== undefined) lines.push('  input:', ...c.input.split('\n').map((l) => `    ${l}`));
    return lines.join('\n');
  }
}

export function isKernelError(e: unknown): e is KernelError {
  return e instanceof KernelError;
}
