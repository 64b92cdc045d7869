// What the benchmark reads about the processes it drives, from /proc, so that they need no hook: CPU time,
// resident memory, and the percentiles of what the load generators record.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const CLOCK_TICKS_PER_S = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/<pid>/stat after the command name; fields[0] is field 3 of stat(5). */
function statFields(pid) {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
}

/** User + system CPU time a process has used so far, in µs. */
export function cpuMicros(pid) {
  const fields = statFields(pid);
  // utime and stime are fields 14 and 15 of stat(5).
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_S;
}

function statusKb(pid, field) {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** The highest resident set size the process has had since it started (VmHWM), in MB. */
export function peakRssMb(pid) {
  return statusKb(pid, 'VmHWM') / 1024;
}
