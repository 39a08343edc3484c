// A Logger for data-plane code that forwards lines to the control plane over the task's port,
// filtered here by level so disabled levels cost one comparison.
import type { MessagePort } from 'node:worker_threads';
import { LogLevels, type LogLevel, type WorkerMessage } from './protocol';
import type { Logger } from '../translate/types';

export class PortLogger implements Logger {
  private readonly max: number;

  constructor(private readonly port: MessagePort, level: LogLevel, private readonly prefix: string) {
    this.max = LogLevels.indexOf(level);
  }

  enabled(level: LogLevel): boolean {
    return LogLevels.indexOf(level) <= this.max;
  }

  log(level: LogLevel, msg: string): void {
    if (!this.enabled(level)) return;
    const m: WorkerMessage = { type: 'log', level, msg: `${this.prefix}${msg}` };
    this.port.postMessage(m);
  }
}
