/**
 * Fresh-process spread of one or more contenders: N fresh worker processes each, one after the
 * other (contenders alternating), each warmed up and then measured over several segments. A
 * process that settles into a slower state for its whole life shows as consistent segments within
 * the process and a spread across processes; noise from the machine shows as a spread within one.
 *
 *   DATABASE_URL=postgres://... npx tsx bench/fresh.ts --contenders "pg.Pool,ours" --procs 8 --kind select1
 *   ... --node-flags="--trace-gc" > gc.log      # V8 flags for every worker (their output is the worker's stdout)
 *
 * Workers run one at a time, so whatever a worker prints sits between this script's
 * "=== process" markers. Without DATABASE_URL the stub client is used (select1 and param run on it).
 */
import { type OpKind, parseContenderList } from './contenders.js';
import { dropItemsTable, ensureItemsTable } from './items-table.js';
import type { LoadResult } from './measure.js';
import { fmt, mean, median, range, stdev } from './report.js';
import { Worker } from './worker-client.js';

import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    contenders: { type: 'string', default: 'pg.Pool,ours' },
    procs: { type: 'string', default: '8' },
    segments: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '1' },
    warm: { type: 'string', default: '0.5' },
    kind: { type: 'string', default: 'select1' },
    callers: { type: 'string', default: '64' },
    'node-flags': { type: 'string' },
  },
});
const contenders = parseContenderList(o.contenders!);
const procs = Number(o.procs);
const segments = Number(o.segments);
const durationMs = Number(o.seconds) * 1000;
const warmMs = Number(o.warm) * 1000;
const kind = o.kind as OpKind;
const callers = Number(o.callers);
const nodeFlags = o['node-flags']?.split(/\s+/).filter(Boolean) ?? [];
const databaseUrl = process.env.DATABASE_URL;

interface ProcResult {
  name: string;
  opsPerSec: number[];
  cpuUsPerOp: number[];
}

async function oneProcess(name: string, k: number): Promise<ProcResult> {
  process.stdout.write(`=== process ${k} ${name} ===\n`);
  const w = new Worker(name, { nodeFlags });
  try {
    await w.request({ t: 'setup', name, options: databaseUrl ? { databaseUrl } : {} });
    const load = (ms: number) => ({ callers, durationMs: ms, yieldEvery: 0 });
    process.stdout.write('--- warm-up ---\n');
    await w.request<LoadResult>({ t: 'run', params: { kind }, load: load(warmMs) });
    const r: ProcResult = { name, opsPerSec: [], cpuUsPerOp: [] };
    for (let s = 0; s < segments; s++) {
      process.stdout.write(`--- segment ${s + 1} ---\n`);
      const res = await w.request<LoadResult>({ t: 'run', params: { kind }, load: load(durationMs) });
      if (res.errors > 0) throw new Error(`${name}: ${res.errors} failed (${res.firstError})`);
      r.opsPerSec.push(res.ops / (res.elapsedMs / 1000));
      r.cpuUsPerOp.push(res.cpuUs / res.ops);
    }
    process.stdout.write(`=== end ${k} ${name}: ${r.opsPerSec.map((x) => fmt(x)).join(', ')} q/s; ${r.cpuUsPerOp.map((x) => fmt(x)).join(', ')} µs/q ===\n`);
    return r;
  } finally {
    await w.close();
  }
}

const created = databaseUrl ? await ensureItemsTable(databaseUrl) : false;
const all: ProcResult[] = [];
try {
  for (let k = 0; k < procs; k++) {
    for (const name of contenders) all.push(await oneProcess(name, k));
  }
} finally {
  if (created) await dropItemsTable(databaseUrl!);
}

const lines: string[] = [];
for (const name of contenders) {
  const mine = all.filter((r) => r.name === name);
  const perProc = mine.map((r) => median(r.opsPerSec));
  const cpuPerProc = mine.map((r) => median(r.cpuUsPerOp));
  // Within a process: max/min of its segments, median over the processes.
  const within = median(mine.map((r) => Math.max(...r.opsPerSec) / Math.min(...r.opsPerSec)));
  const [lo, hi] = range(perProc);
  lines.push(
    `${name}: per-process median q/s ${perProc.map((x) => fmt(x)).join(', ')}; across processes max/min ${fmt(hi / lo, 2)}, CV ${fmt((100 * stdev(perProc)) / mean(perProc), 1)} %; within a process max/min ${fmt(within, 2)} (median); CPU µs/q per process ${cpuPerProc.map((x) => fmt(x)).join(', ')}`,
  );
}
process.stdout.write(`\n${lines.join('\n')}\n`);
process.exit(0);
