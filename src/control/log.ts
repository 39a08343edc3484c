// The control plane's logger: one line per message on stderr, `tapswitch: level: msg`.
// stderr is shared with CMD (run mode), so lines are short and always prefixed.
import { LogLevels, type LogLevel } from '../worker/protocol';

export { LogLevels, type LogLevel };

const rank: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

export function isLogLevel(s: string): s is LogLevel {
  return (LogLevels as readonly string[]).includes(s);
}

export type LogSink = (line: string) => void;

export class Logger {
  level: LogLevel;
  private readonly sink: LogSink;

  constructor(level: LogLevel = 'warn', sink: LogSink = (line) => process.stderr.write(line)) {
    this.level = level;
    this.sink = sink;
  }

  enabled(level: LogLevel): boolean {
    return rank[level] <= rank[this.level];
  }

  log(level: LogLevel, msg: string): void {
    if (this.enabled(level)) this.sink(`tapswitch: ${level}: ${msg}\n`);
  }

  error(msg: string): void { this.log('error', msg); }
  warn(msg: string): void { this.log('warn', msg); }
  info(msg: string): void { this.log('info', msg); }
  debug(msg: string): void { this.log('debug', msg); }
  trace(msg: string): void { this.log('trace', msg); }
}
