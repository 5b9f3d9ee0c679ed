/**
 * Where a contender's client CPU goes on the loopback path, kernel and V8 included: `perf record`
 * attached to its worker process for one measured segment (after the warm-up), and the samples
 * summed by area — the kernel (mostly the socket write waking the server's backend), V8's builtins
 * (promises, property access, calls), the rest of V8, Node and libuv, and the JavaScript of each
 * package — as µs per query. A V8 CPU profile (`--cpu-prof`) cannot show this: it lumps the
 * kernel's share, the builtins and the collector into a few native frames. Used by `npm run bench`
 * (section 6) when `perf` is installed, and on its own:
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
 *     npx tsx bench/native-profile.ts --contenders "pg.Pool,ours" --kind select1 --procs 3
 *   ... --contenders "ours,ours, metrics only" --symbols "^V8"   # and the V8 symbols that differ most
 *
 * Method: each contender runs in fresh worker processes (node --perf-basic-prof, so perf can name
 * JIT-compiled functions), one after the other, --procs times in rotating order; in each, 64
 * callers run 1.5 s of warm-up, then perf samples the process's threads (cpu-clock, 2 999 Hz: a
 * sleeping thread is not sampled) while it runs one segment. Samples × period / queries = µs per
 * query, beside the CPU the worker measured for the same segment. Medians over the processes.
 * perf is attached with its events off and switched on (its control descriptor acknowledges it)
 * right before the segment starts.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type OpKind, parseContenderList } from './contenders.js';
import { dropItemsTable, ensureItemsTable } from './items-table.js';
import type { LoadResult } from './measure.js';
import { fmt, median, table } from './report.js';
import { Worker } from './worker-client.js';

const FREQUENCY = 2_999;

/** The areas a sample is counted in, in the order the table lists them. */
export const AREAS = [
  'kernel',
  'V8 builtins',
  'V8 garbage collector',
  'V8 other',
  'Node and libuv',
  'libc and other native',
  'JS: node internals',
  'JS: pg + pg-protocol + pg-types',
  'JS: pg-pool',
  'JS: generic-pool',
  'JS: ours, core (dist/…/src)',
  'JS: ours, instrumentation (dist/…/instrumentations)',
  'JS: OpenTelemetry',
  'JS: knex / tarn',
  'JS: harness and other',
] as const;
export type Area = (typeof AREAS)[number];

/** The area of one `perf report` symbol (`[k]` kernel or `[.]` user). */
export function areaOf(kernel: boolean, sym: string): Area {
  if (kernel) return 'kernel';
  // --perf-basic-prof names compiled JavaScript "JS:*name file:line:col" (~ or ^ for lower tiers).
  if (/^(JS|LazyCompile|Function):/.test(sym)) {
    if (sym.includes('/node_modules/pg-pool/')) return 'JS: pg-pool';
    if (/\/node_modules\/(pg|pg-protocol|pg-types|postgres-[a-z]+)\//.test(sym)) return 'JS: pg + pg-protocol + pg-types';
    if (sym.includes('/node_modules/generic-pool/')) return 'JS: generic-pool';
    if (/\/dist\/(esm|cjs)\/instrumentations\//.test(sym)) return 'JS: ours, instrumentation (dist/…/instrumentations)';
    if (/\/dist\/(esm|cjs)\//.test(sym)) return 'JS: ours, core (dist/…/src)';
    if (sym.includes('/@opentelemetry/')) return 'JS: OpenTelemetry';
    if (/\/node_modules\/(knex|tarn)\//.test(sym)) return 'JS: knex / tarn';
    if (/ node:/.test(sym)) return 'JS: node internals';
    return 'JS: harness and other';
  }
  if (sym.startsWith('Builtins_') || sym.startsWith('Builtin:') || sym.startsWith('BytecodeHandler:')) return 'V8 builtins';
  if (/Scaveng|v8::internal::Heap|MarkCompact|Sweeper|Evacuat|ConcurrentMarking|MemoryAllocator|MarkingVisitor|GCTracer/.test(sym))
    return 'V8 garbage collector';
  if (sym.startsWith('v8::')) return 'V8 other';
  if (sym.startsWith('node::') || sym.startsWith('uv_') || sym.startsWith('uv__')) return 'Node and libuv';
  return 'libc and other native';
}

/** Samples per area in a `perf record` file; with `symbols`, also per symbol of the areas it matches. */
export function samplesByArea(file: string, symbols?: { areas: RegExp; into: Map<string, number> }): Map<Area, number> {
  const out = execFileSync('perf', ['report', '-i', file, '--no-children', '--sort', 'sym', '-F', 'sample,sym', '--stdio'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const byArea = new Map<Area, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+\[(.)\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const sym = m[3]!.trim();
    const area = areaOf(m[2] === 'k', sym);
    byArea.set(area, (byArea.get(area) ?? 0) + Number(m[1]));
    if (symbols?.areas.test(area)) symbols.into.set(sym, (symbols.into.get(sym) ?? 0) + Number(m[1]));
  }
  return byArea;
}

/** Whether `perf` is here and may sample a process of ours. */
export function perfAvailable(): boolean {
  try {
    execFileSync('perf', ['record', '-q', '-F', '99', '-o', '/dev/null', '--', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface ProfileRun {
  contender: string;
  /** Queries in the sampled segment. */
  ops: number;
  /** The worker's CPU per query for the segment (process.cpuUsage), for comparison with the samples. */
  cpuUsPerOp: number;
  /** µs per query by area. */
  areas: Map<Area, number>;
  /** µs per query by symbol, for the areas NativeProfileOptions.symbols matches. */
  symbols: Map<string, number>;
}

export interface NativeProfileOptions {
  contenders: readonly string[];
  kind: OpKind;
  databaseUrl: string;
  procs: number;
  segmentMs: number;
  warmMs?: number;
  callers?: number;
  /** Also count samples per symbol in the areas this matches (e.g. /^V8/). */
  symbols?: RegExp;
}

/** Profiles each contender in `procs` fresh processes (rotating order); returns every run. */
export async function nativeProfile(o: NativeProfileOptions): Promise<ProfileRun[]> {
  const runs: ProfileRun[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'db-pool-perf-'));
  try {
    for (let p = 0; p < o.procs; p++) {
      const order = o.contenders.map((_, i) => o.contenders[(i + p) % o.contenders.length]!);
      for (const name of order) runs.push(await profileOnce(name, o, path.join(dir, `${p}.data`)));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return runs;
}

async function profileOnce(name: string, o: NativeProfileOptions, file: string): Promise<ProfileRun> {
  const w = new Worker(name, { nodeFlags: ['--perf-basic-prof'] });
  const pid = w.pid;
  try {
    await w.request({ t: 'setup', name, options: { databaseUrl: o.databaseUrl } });
    const load = (ms: number) => ({ callers: o.callers ?? 64, durationMs: ms, yieldEvery: 0 });
    await w.request<LoadResult>({ t: 'run', params: { kind: o.kind }, load: load(o.warmMs ?? 1_500) });
    // Attached with its events off (-D -1), then switched on through its control descriptor; its
    // "ack" says sampling has started, so the segment starts after it.
    const perf = spawn('perf', ['record', '-q', '-F', String(FREQUENCY), '-p', String(pid), '-o', file, '-D', '-1', '--control', 'fd:3,4'], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<void>((resolve) => {
      perf.once('exit', () => resolve());
      perf.once('error', () => resolve());
    });
    await enableSampling(perf, exited);
    const r = await w.request<LoadResult>({ t: 'run', params: { kind: o.kind }, load: load(o.segmentMs) });
    perf.kill('SIGINT');
    await exited;
    if (r.errors > 0) throw new Error(`${name}: ${r.errors} failed queries (${r.firstError})`);
    const bySymbol = new Map<string, number>();
    const samples = samplesByArea(file, o.symbols ? { areas: o.symbols, into: bySymbol } : undefined);
    const usPerSample = 1e6 / FREQUENCY;
    const perOp = (n: number) => (n * usPerSample) / r.ops;
    const areas = new Map<Area, number>();
    for (const [a, n] of samples) areas.set(a, perOp(n));
    const symbols = new Map<string, number>();
    for (const [sym, n] of bySymbol) symbols.set(sym, perOp(n));
    return { contender: name, ops: r.ops, cpuUsPerOp: r.cpuUs / r.ops, areas, symbols };
  } finally {
    await w.close().catch(() => w.kill());
    fs.rmSync(`/tmp/perf-${pid}.map`, { force: true });
    fs.rmSync(file, { force: true });
  }
}

/** Sends perf `enable` on its control descriptor and waits for its `ack`; fails if perf exits first. */
async function enableSampling(perf: ChildProcess, exited: Promise<void>): Promise<void> {
  const ctl = perf.stdio[3] as Writable;
  const ack = perf.stdio[4] as Readable;
  const acked = new Promise<boolean>((resolve) => {
    let text = '';
    ack.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('ack')) resolve(true);
    });
  });
  ctl.write('enable\n');
  if (!(await Promise.race([acked, exited.then(() => false)]))) throw new Error('perf exited before it started sampling');
}

/**
 * The table: one row per area, a column per contender (median µs per query over its processes),
 * and for each pair [a, b, label] a column of a's median minus b's.
 */
export function profileTable(runs: readonly ProfileRun[], pairs: readonly (readonly [string, string, string?])[] = []): string {
  const names = [...new Set(runs.map((r) => r.contender))];
  const of = (name: string) => runs.filter((r) => r.contender === name);
  const med = (name: string, pick: (r: ProfileRun) => number) => median(of(name).map(pick));
  const area = (a: Area) => (r: ProfileRun) => r.areas.get(a) ?? 0;
  const total = (r: ProfileRun) => [...r.areas.values()].reduce((s, x) => s + x, 0);
  const header = ['area, µs per query', ...names, ...pairs.map(([a, b, label]) => label ?? `${a} − ${b}`)];
  const row = (label: string, pick: (r: ProfileRun) => number) => [
    label,
    ...names.map((n) => fmt(med(n, pick), 2)),
    ...pairs.map(([a, b]) => signed(med(a, pick) - med(b, pick))),
  ];
  const rows = AREAS.filter((a) => runs.some((r) => (r.areas.get(a) ?? 0) >= 0.005)).map((a) => row(a, area(a)));
  rows.push(row('**all samples**', total));
  rows.push(row('CPU the worker measured (process.cpuUsage)', (r) => r.cpuUsPerOp));
  return table(header, rows);
}

/** The symbols whose medians differ most between the pair's two contenders (b − a), µs per query. */
export function symbolTable(runs: readonly ProfileRun[], [a, b]: readonly [string, string], top: number): string {
  const names = new Set(runs.flatMap((r) => [...r.symbols.keys()]));
  const med = (name: string, sym: string) => median(runs.filter((r) => r.contender === name).map((r) => r.symbols.get(sym) ?? 0));
  const rows = [...names].map((sym) => ({ sym, a: med(a, sym), b: med(b, sym) })).sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a));
  return table(
    ['symbol', a, b, 'difference'],
    rows.slice(0, top).map((r) => [r.sym.length > 100 ? `${r.sym.slice(0, 100)}…` : r.sym, fmt(r.a, 2), fmt(r.b, 2), signed(r.b - r.a)]),
  );
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : '−'}${fmt(Math.abs(x), 2)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: o } = parseArgs({
    options: {
      contenders: { type: 'string', default: 'pg.Pool,ours' },
      kind: { type: 'string', default: 'select1' },
      procs: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '3' },
      /** --symbols "^V8": also list the symbols of these areas that differ most between two contenders. */
      symbols: { type: 'string' },
      top: { type: 'string', default: '25' },
    },
  });
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required (a PostgreSQL on loopback)');
  if (!perfAvailable()) throw new Error('perf is not installed, or may not sample processes here');
  const contenders = parseContenderList(o.contenders!);
  const symbols = o.symbols === undefined ? undefined : new RegExp(o.symbols);
  // The parameterized select reads a table of its own, made for the run.
  const created = o.kind === 'param' ? await ensureItemsTable(databaseUrl) : false;
  let runs: ProfileRun[];
  try {
    runs = await nativeProfile({ contenders, kind: o.kind as OpKind, databaseUrl, procs: Number(o.procs), segmentMs: Number(o.seconds) * 1000, symbols });
  } finally {
    if (created) await dropItemsTable(databaseUrl);
  }
  console.log(profileTable(runs, contenders.length === 2 ? [[contenders[1]!, contenders[0]!]] : []));
  if (symbols && contenders.length === 2) console.log(`\n${symbolTable(runs, [contenders[0]!, contenders[1]!], Number(o.top))}`);
}
