/**
 * Import cost (issue 19, "cheap to import"): a whole `node` process that imports an entry point of
 * the built package against one that imports only `pg`, each started fresh, in turn (A B A B ...),
 * the ratio taken pair by pair so that a machine's drift during the run cancels out.
 *
 *   node scripts/build.mjs && npx tsx bench/import-cost.ts [--runs 15] [--dist DIR]
 *
 * --dist measures another build of the package (e.g. an older checkout's `dist/`, copied inside
 * this checkout so that it finds the same node_modules).
 *
 * Wall time is read by this process around each child (start-up to exit, spawning included, the
 * same for both sides); the peak is the child's own `process.resourceUsage().maxRSS`, read at exit.
 * Targets: wall ≤ 1.5× and peak ≤ pg's + 6 MB (judged in MiB, as the issue's figures are), for both
 * entries and both builds. The medians are the figures; min and max show how noisy the machine was.
 * `@opentelemetry/instrumentation` alone is measured too: the instrumentation entry's floor.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: { runs: { type: 'string', default: '15' }, warmup: { type: 'string', default: '1' }, dist: { type: 'string', default: path.join(ROOT, 'dist') } },
});
const DIST = path.resolve(o.dist!);
const runs = Number(o.runs);
const warmup = Number(o.warmup);

type Format = 'cjs' | 'esm';
interface Side {
  format: Format;
  /** What the child imports, in order: package names or files of the build. */
  targets: string[];
}
interface Sample {
  wallMs: number;
  peakMiB: number;
  modules: number;
}

/** The child: imports `target`, and at exit prints its peak RSS and how many CommonJS modules it loaded. */
function child(side: Side): string[] {
  const report =
    "process.on('exit', () => process.stdout.write(JSON.stringify({ peakKiB: process.resourceUsage().maxRSS, modules: Object.keys(require.cache).length })));";
  if (side.format === 'cjs') return ['-e', `${side.targets.map((t) => `require(${JSON.stringify(t)});`).join(' ')} ${report}`];
  const imports = side.targets.map((t) => `await import(${JSON.stringify(t.startsWith('/') ? pathToFileURL(t).href : t)});`).join(' ');
  return ['--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(process.cwd() + '/'); ${imports} ${report}`];
}

function once(side: Side): Sample {
  const started = performance.now();
  const r = spawnSync(process.execPath, child(side), { cwd: ROOT, encoding: 'utf8' });
  const wallMs = performance.now() - started;
  if (r.status !== 0) throw new Error(`${side.targets.join(', ')} (${side.format}) failed: ${r.stderr}`);
  const { peakKiB, modules } = JSON.parse(r.stdout) as { peakKiB: number; modules: number };
  return { wallMs, peakMiB: peakKiB / 1024, modules };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const range = (xs: number[], digits: number): string => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

const cases: { name: string; a: Side; b: Side; reference?: true }[] = [];
for (const format of ['cjs', 'esm'] as const) {
  const pg: Side = { format, targets: ['pg'] };
  cases.push({ name: `db-pool-otel (${format})`, a: { format, targets: [path.join(DIST, format, 'src', 'index.js')] }, b: pg });
  cases.push({
    name: `db-pool-otel/instrumentation (${format})`,
    a: { format, targets: [path.join(DIST, format, 'instrumentations', 'index.js')] },
    b: pg,
  });
  // What the instrumentation entry cannot go below: DbPoolInstrumentation extends InstrumentationBase.
  cases.push({
    name: `pg + @opentelemetry/instrumentation (${format}), for reference`,
    a: { format, targets: ['pg', '@opentelemetry/instrumentation'] },
    b: pg,
    reference: true,
  });
}

console.log(`import cost: ${runs} pairs per case (after ${warmup} unpaired), A = the entry, B = only pg; medians, min–max in brackets\n`);
console.log('| entry | wall A/B | peak A MiB | peak B MiB | A − B MiB | CommonJS modules A / B | targets (≤ 1.5×, ≤ +6 MB) |');
console.log('|---|---|---|---|---|---|---|');
for (const c of cases) {
  for (let i = 0; i < warmup; i++) {
    once(c.a);
    once(c.b);
  }
  const ratios: number[] = [];
  const peaksA: number[] = [];
  const peaksB: number[] = [];
  const diffs: number[] = [];
  let modules = [0, 0];
  for (let i = 0; i < runs; i++) {
    // Alternate which side goes first, so neither always runs right after the other.
    let a: Sample;
    let b: Sample;
    if (i % 2 === 0) {
      a = once(c.a);
      b = once(c.b);
    } else {
      b = once(c.b);
      a = once(c.a);
    }
    ratios.push(a.wallMs / b.wallMs);
    peaksA.push(a.peakMiB);
    peaksB.push(b.peakMiB);
    diffs.push(a.peakMiB - b.peakMiB);
    modules = [a.modules, b.modules];
  }
  const ratio = median(ratios);
  const diffMB = (median(diffs) * 1024 * 1024) / 1e6;
  const verdict = c.reference
    ? '(a floor, not a target)'
    : `${ratio <= 1.5 ? 'wall met' : 'wall NOT met'}, ${median(diffs) <= 6 ? 'memory met' : 'memory NOT met'}${median(diffs) <= 6 && diffMB > 6 ? ' (in MiB; not in 10⁶ bytes)' : ''}`;
  console.log(
    `| ${c.name} | ${ratio.toFixed(2)}× [${range(ratios, 2)}] | ${median(peaksA).toFixed(1)} [${range(peaksA, 1)}] | ${median(peaksB).toFixed(1)} [${range(peaksB, 1)}] | ${median(diffs).toFixed(1)} (${diffMB.toFixed(1)} MB) | ${modules[0]} / ${modules[1]} | ${verdict} |`,
  );
}
