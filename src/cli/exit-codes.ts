// The documented exit statuses of the `tapswitch` command. The numbers are defined in
// src/control/errors.ts (the runner decides some of them); this file is the user-facing table that
// `--help` prints and README.md repeats.
import { ExitStatus, isTapswitchError } from '../control/errors';

export { ExitStatus };

export const EXIT_CODE_TABLE: ReadonlyArray<readonly [string, string]> = [
  ['0', 'success; for `run`: CMD exited 0 (any other CMD status is passed through as is)'],
  [String(ExitStatus.USAGE), 'usage error: unknown option, missing value, missing CMD'],
  [String(ExitStatus.BAD_VALUE), 'bad option value: CIDR, MTU, queue count, address, PID or path'],
  [String(ExitStatus.UNAVAILABLE), 'missing kernel feature or permission: /dev/net/tun, user namespaces, subordinate ids, addon'],
  [String(ExitStatus.INTERNAL), 'internal error, or the data plane failed beyond its restart budget'],
  // The kernel path's conflicts (kernel/errors.ts, EX_TEMPFAIL); control's ExitStatus has no name for it.
  ['75', 'kernel path: conflict: host port taken or already published, network in use, state lock busy'],
  [String(ExitStatus.SETUP_FAILED), 'namespace, TAP, veth or nftables set-up failed before CMD started'],
  [String(ExitStatus.CANNOT_EXECUTE), 'CMD found but not executable'],
  [String(ExitStatus.NOT_FOUND), 'CMD not found'],
  ['128+N', 'CMD was killed by signal N (e.g. 130 for SIGINT, 143 for SIGTERM)'],
];

export function formatExitCodes(): string {
  return EXIT_CODE_TABLE.map(([code, meaning]) => `  ${code.padEnd(7)}${meaning}`).join('\n');
}

export function exitCodeOf(e: unknown): number {
  return isTapswitchError(e) ? e.exitCode : ExitStatus.INTERNAL;
}
