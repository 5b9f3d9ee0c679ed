/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --profile "<contender>"`,
 * which writes into bench/profiles/): self time by function and by package, so a hot-path change
 * can be aimed at what the profile shows.
 *
 *   npx tsx bench/profile-summary.ts bench/profiles/CPU.*.cpuprofile [--top 40]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '40' }, inclusive: { type: 'string' } },
});
const top = Number(values.top);
/** --inclusive <regexp>: also list total (self + callees) time of the functions whose "name  area" matches. */
const inclusive = values.inclusive ? new RegExp(values.inclusive) : undefined;

/** Where a frame's code lives: our src/, our instrumentations/, a package, or Node itself. */
function area(url: string): string {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/(src|instrumentations|bench|test)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

for (const file of positionals) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  let total = 0;
  const fn = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)') continue;
    total += us;
    const where = area(n.callFrame.url);
    const key = `${name}  ${where}${n.callFrame.url && !n.callFrame.url.startsWith('node:') ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    byArea.set(where, (byArea.get(where) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  console.log(`\n${file}: ${(total / 1000).toFixed(0)} ms of samples (idle and (program) left out)\n`);
  console.log('by area:');
  for (const [k, us] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(us)}  ${k}`);
  console.log(`\ntop ${top} functions by self time:`);
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
  if (inclusive) {
    // Total time per matching function: self time of its subtree, each sample counted once per function.
    const totals = new Map<string, number>();
    const walk = (id: number, onStack: Set<string>): number => {
      const n = byId.get(id)!;
      const name = `${n.callFrame.functionName || '(anonymous)'}  ${area(n.callFrame.url)}`;
      const entered = inclusive.test(name) && !onStack.has(name);
      if (entered) onStack.add(name);
      let sum = self.get(id) ?? 0;
      for (const c of n.children ?? []) sum += walk(c, onStack);
      if (entered) {
        onStack.delete(name);
        totals.set(name, (totals.get(name) ?? 0) + sum);
      }
      return sum;
    };
    walk(p.nodes[0]!.id, new Set());
    console.log(`\ntotal time (self + callees) of functions matching ${inclusive}:`);
    for (const [k, us] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
  }
}
