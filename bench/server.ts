/**
 * The server side of the query cases: its CPU time, read from /proc for the postmaster and every
 * process it forked (backends, background workers), and pgbench as the server's own ceiling.
 * Works when the server runs on this machine (the embedded one always does); otherwise server CPU
 * is reported as n/a.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TICK_US = 1e6 / clockTicks();

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

interface ProcStat {
  ppid: number;
  /** utime + stime (+ cutime + cstime when `withChildren`), in microseconds. */
  cpuUs: number;
}

function readStat(pid: number | 'self', withChildren = false): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): field n is f[n - 3].
  const ticks = Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
  return { ppid: Number(f[1]), cpuUs: ticks * TICK_US };
}

/** CPU microseconds used so far by these processes (those gone or unreadable count 0); undefined without /proc. */
export function processesCpuUs(pids: readonly number[]): number | undefined {
  if (!fs.existsSync('/proc/self/stat')) return undefined;
  let sum = 0;
  for (const pid of pids) sum += readStat(pid)?.cpuUs ?? 0;
  return sum;
}

/** Server CPU meter: the postmaster that forked `backendPid`, and all its children. */
export class ServerCpu {
  private constructor(readonly postmasterPid: number) {}

  /** undefined when the backend is not a process of this machine (a remote server). */
  static fromBackend(backendPid: number): ServerCpu | undefined {
    const backend = readStat(backendPid);
    if (!backend) return undefined;
    try {
      const cmd = fs.readFileSync(`/proc/${backend.ppid}/cmdline`, 'utf8');
      if (!/postgres/.test(cmd)) return undefined;
    } catch {
      return undefined;
    }
    return new ServerCpu(backend.ppid);
  }

  /**
   * CPU microseconds used so far by the postmaster and its children: live ones from their own
   * stat, ended ones (pgbench's backends, a closed pool's) from the postmaster's reaped-children
   * times, so the sum does not drop when a backend exits.
   */
  read(): number {
    let sum = readStat(this.postmasterPid, true)?.cpuUs ?? 0;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const s = readStat(Number(entry));
      if (s && s.ppid === this.postmasterPid) sum += s.cpuUs;
    }
    return sum;
  }
}

/** CPU used by this process's finished, reaped children (pgbench), in microseconds. */
export function reapedChildrenCpuUs(): number {
  const self = readStat('self', true);
  const own = readStat('self');
  return self && own ? self.cpuUs - own.cpuUs : 0;
}

export function findPgbench(): string | undefined {
  const candidates = [
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'pgbench')),
    ...['18', '17', '16', '15', '14', '13'].map((v) => `/usr/lib/postgresql/${v}/bin/pgbench`),
  ];
  return candidates.find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface PgbenchResult {
  ops: number;
  elapsedMs: number;
  /** pgbench's own CPU (user + system). */
  cpuUs: number;
  tps: number;
}

/**
 * `pgbench -n -c <clients> -j 1 -T <seconds> -M <protocol> -f <script>`: the statement as a custom
 * script, simple protocol for `SELECT 1` (as pg sends a statement without values) and extended for
 * the parameterized one (pg's unnamed parse / bind / execute).
 */
export async function runPgbench(
  bin: string,
  databaseUrl: string,
  script: string,
  options: { clients: number; seconds: number; protocol: 'simple' | 'extended' },
): Promise<PgbenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'db-pool-bench-'));
  const file = path.join(dir, 'script.sql');
  fs.writeFileSync(file, script);
  const cpu0 = reapedChildrenCpuUs();
  const t0 = performance.now();
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const args = ['-n', '-c', String(options.clients), '-j', '1', '-T', String(options.seconds), '-M', options.protocol, '-f', file, databaseUrl];
      const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d));
      child.stderr.on('data', (d: Buffer) => (text += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited ${code}: ${text.slice(-500)}`))));
    });
    const elapsedMs = performance.now() - t0;
    const ops = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
    return { ops, elapsedMs, cpuUs: reapedChildrenCpuUs() - cpu0, tps };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
