/**
 * Before / after for a hot-path change: the same contender from two checkouts, interleaved and
 * paired per repetition, so that a change's effect shows through a noisy machine.
 *
 *   git worktree add --detach /tmp/base HEAD && ln -s "$PWD/node_modules" /tmp/base/node_modules
 *   npx tsx bench/ab.ts --base /tmp/base --contenders "ours,ours + spans + metrics" --kind param
 *
 * This bench/ directory is copied into the other checkout first, so both sides run the same
 * harness and only src/ and instrumentations/ differ. --kind cycle | select1 | param; select1 and
 * param use the stub client unless --db (then DATABASE_URL). Each side runs in --procs fresh
 * processes one after the other (--reps segments each): V8 can settle into a slower state for the
 * life of a process (see bench/results.md), so one process per side can mislead.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseContenderList, type OpKind } from './contenders.js';
import type { LoadResult } from './measure.js';
import { fmt, median, paired, spread } from './report.js';
import { Worker } from './worker-client.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const { values: o } = parseArgs({
  options: {
    base: { type: 'string' },
    contenders: { type: 'string', default: 'ours' },
    kind: { type: 'string', default: 'cycle' },
    callers: { type: 'string' },
    reps: { type: 'string', default: '4' },
    procs: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '1' },
    db: { type: 'boolean', default: false },
    node: { type: 'string' },
  },
});
if (!o.base) throw new Error('--base <other checkout> is required');
const baseBench = path.join(path.resolve(o.base), 'bench');
fs.mkdirSync(baseBench, { recursive: true });
for (const f of fs.readdirSync(BENCH_DIR)) if (f.endsWith('.ts')) fs.copyFileSync(path.join(BENCH_DIR, f), path.join(baseBench, f));
// Both sides run their checkout's built package (dist/), built now from its source.
for (const root of [path.dirname(BENCH_DIR), path.resolve(o.base)]) {
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}

const kind = o.kind as OpKind;
const callers = Number(o.callers ?? (kind === 'cycle' ? 16 : 64));
const reps = Number(o.reps);
const durationMs = Number(o.seconds) * 1000;
const options = o.db ? { databaseUrl: process.env.DATABASE_URL } : {};
/** --node "--min-semi-space-size=16": node / V8 flags for both sides (e.g. to pin the young generation). */
const nodeFlags = o.node?.split(' ').filter(Boolean);

const procs = Number(o.procs);
for (const name of parseContenderList(o.contenders!)) {
  const samples = new Map<string, { rate: number; cpu: number }[]>([
    ['before', []],
    ['after', []],
  ]);
  const perProcess = new Map<string, string[]>([
    ['before', []],
    ['after', []],
  ]);
  for (let p = 0; p < procs; p++) {
    const sides = [new Worker(name, { label: 'before', benchDir: baseBench, nodeFlags }), new Worker(name, { label: 'after', nodeFlags })];
    await Promise.all(sides.map((w) => w.request({ t: 'setup', name, options })));
    const run = (w: Worker, ms: number) =>
      w.request<LoadResult>({ t: 'run', params: { kind }, load: { callers, durationMs: ms, yieldEvery: kind === 'cycle' ? 100 : 0 } });
    for (const w of sides) await run(w, durationMs);
    const mine = new Map<string, number[]>(sides.map((w) => [w.label, []]));
    for (let r = 0; r < reps; r++) {
      for (const w of (r + p) % 2 === 0 ? sides : [...sides].reverse()) {
        const x = await run(w, durationMs);
        if (x.errors > 0) throw new Error(`${w.label}: ${x.errors} errors (${x.firstError})`);
        samples.get(w.label)!.push({ rate: x.ops / (x.elapsedMs / 1000), cpu: x.cpuUs / x.ops });
        mine.get(w.label)!.push(x.cpuUs / x.ops);
      }
    }
    for (const w of sides) {
      perProcess.get(w.label)!.push(fmt(median(mine.get(w.label)!)));
      await w.close();
    }
  }
  const [b, a] = [samples.get('before')!, samples.get('after')!];
  const cpuB = b.map((s) => s.cpu);
  const cpuA = a.map((s) => s.cpu);
  console.log(
    `${name}, ${kind}, ${callers} callers, ${procs} processes × ${reps} segments per side: CPU µs/op before ${spread(cpuB)}, after ${spread(cpuA)}; ` +
      `paired difference ${spread(paired(cpuA, cpuB, (x, y) => x - y))} µs (${fmt((100 * (median(cpuA) - median(cpuB))) / median(cpuB), 0)} %); ` +
      `ops/s after/before ${spread(
        paired(
          a.map((s) => s.rate),
          b.map((s) => s.rate),
        ),
      )}; ` +
      `per-process medians before [${perProcess.get('before')!.join(', ')}], after [${perProcess.get('after')!.join(', ')}]`,
  );
}
process.exit(0);
