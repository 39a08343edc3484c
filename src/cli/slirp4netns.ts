#!/usr/bin/env node
// The `tapswitch-slirp4netns` command: slirp4netns's command line, served by tapswitch.
// Point a client at it (`rootlesskit --slirp4netns-binary=PATH`, containers.conf
// `network_cmd_path = "PATH"`) or put it first on PATH under the name `slirp4netns`.
//
// Every failure exits 1 (slirp4netns's status; clients only look at zero / non-zero) after one
// line on stderr. TAPSWITCH_LOG_LEVEL (error|warn|info|debug|trace, default warn) sets the log
// level, since the slirp4netns command line has no flag for it; TAPSWITCH_STATS=1 prints the
// data plane's counters at exit.
import { isLogLevel, Logger, type LogLevel } from '../control/log';
import { toTapswitchError } from '../control/errors';
import { formatSlirp4netnsStartupInfo, resolveSlirp4netnsCommandLine } from './slirp4netns-args';

export interface Slirp4netnsMainOverrides {
  /** Data-plane worker entry to use instead of dist/src/worker/task.js. */
  workerFile?: string;
}

export async function slirp4netnsMain(argv: string[], overrides: Slirp4netnsMainOverrides = {}): Promise<number> {
  const resolved = resolveSlirp4netnsCommandLine(argv);
  if ('exitCode' in resolved) return resolved.exitCode;
  const o = resolved.options;
  const envLevel = process.env.TAPSWITCH_LOG_LEVEL ?? 'warn';
  const level: LogLevel = isLogLevel(envLevel) ? envLevel : 'warn';
  const log = new Logger(level);
  // The runner (and with it the native addon) loads only now: help and usage errors work without it.
  const { serveSlirp4netns } = await import('../control/slirp4netns-mode');
  return serveSlirp4netns(o, log, {
    stdout: (s) => { process.stdout.write(s); },
    startupInfo: formatSlirp4netnsStartupInfo(o),
    stats: process.env.TAPSWITCH_STATS === '1',
    ...(overrides.workerFile !== undefined ? { workerFile: overrides.workerFile } : {}),
  });
}

export function slirp4netnsCli(argv: string[], overrides: Slirp4netnsMainOverrides = {}): void {
  slirp4netnsMain(argv, overrides).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const err = toTapswitchError(e);
      process.stderr.write(`tapswitch-slirp4netns: ${err.oneLine()}\n`);
      if (err.code === 'ERR_INTERNAL' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) slirp4netnsCli(process.argv.slice(2));
