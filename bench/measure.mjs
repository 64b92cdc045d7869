// What the benchmark reads about the processes it drives, from /proc, so that they need no hook: CPU time,
// resident memory, and the percentiles of what the load generators record.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * A process and its descendants: a server may fork workers (LiteLLM with --num_workers > 1 does), and
 * what it serves with is then the whole tree.
 */
export function processTree(pid) {
  const parentOf = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      parentOf.set(Number(entry), Number(statFields(entry)[1]));
    } catch {
      // exited while we looked
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i += 1) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

const sumOver = (pids, read) =>
  pids.reduce((sum, pid) => {
    try {
      return sum + read(pid);
    } catch {
      return sum; // a worker that has exited
    }
  }, 0);

export const treeCpuMicros = (pids) => sumOver(pids, cpuMicros);

/** Resident memory of a process tree now, in MB. */
export const treeRssMb = (pids) => sumOver(pids, (pid) => statusKb(pid, 'VmRSS') / 1024);

/**
 * How many times, machine-wide, a listen queue overflowed so far (TcpExt ListenOverflows): a connection the
 * kernel completed but could not queue for accept() is retried seconds later, or reset.
 */
export function listenOverflows() {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i].split(' ');
    const column = names.indexOf('ListenOverflows');
    if (column !== -1) return Number(lines[i + 1].split(' ')[column]);
  }
  return NaN;
}
