// CPU time and memory of a data-plane process from /proc. utime+stime in /proc/PID/stat cover all
// of the process's threads (piscina workers included), not its children.
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';

let tck = 0;
export function clockTicks(): number {
  if (tck === 0) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    tck = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return tck;
}

/** utime+stime in clock ticks, from the text of /proc/PID/stat. Pure. */
export function parseStatTicks(stat: string): number {
  // The command name (field 2) may contain spaces and parentheses: fields restart after the last ')'.
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error('malformed /proc/PID/stat');
  const rest = stat.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('malformed /proc/PID/stat');
  return utime + stime;
}

/** A field in kB from the text of /proc/PID/status (e.g. VmHWM); NaN when absent. Pure. */
export function parseStatusKb(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds used so far by PID (all threads); NaN when the process is gone. */
export function cpuSeconds(pid: number): number {
  try {
    return parseStatTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) / clockTicks();
  } catch {
    return NaN;
  }
}

/** Peak resident set size (VmHWM) in MiB; NaN when the process is gone. */
export function peakRssMiB(pid: number): number {
  try {
    return parseStatusKb(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmHWM') / 1024;
  } catch {
    return NaN;
  }
}
