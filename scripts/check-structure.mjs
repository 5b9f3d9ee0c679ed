#!/usr/bin/env node
// The import rules of .dependency-cruiser.cjs over src/ and instrumentations/ (any violation fails),
// and a guard on the number of modules read: a parser that cannot read this TypeScript tree reports "no
// violations" on 0 modules, which must fail, not pass. Also: nothing under test/ imports from
// reliability/ (the runner imports the shared scenarios from test/support/, never the reverse).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const bin = join(root, 'node_modules', '.bin', 'depcruise');
const sources = (dir) =>
  readdirSync(join(root, dir), { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .length;
const expected = sources('src') + sources('instrumentations');

let report;
try {
  report = execFileSync(bin, ['src', 'instrumentations', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
} catch (err) {
  // depcruise exits non-zero on violations; its JSON is still on stdout.
  report = err.stdout;
  if (!report) throw err;
}
const { summary, modules } = JSON.parse(report);
const read = modules.filter((m) => /^(src|instrumentations)\//.test(m.source)).length;
const problems = [];
if (read < expected) problems.push(`read ${read} of the ${expected} TypeScript modules in src/ and instrumentations/: the parser does not read this tree`);
for (const v of summary.violations ?? [])
  problems.push(`${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (circle: ${v.cycle.map((c) => c.name ?? c).join(' → ')})` : ''}`);

// test/ never imports from reliability/: every relative specifier (import, export, import(),
// require(), new URL(…, import.meta.url)) of every file under test/, resolved against that file.
const testFiles = readdirSync(join(root, 'test'), { recursive: true, withFileTypes: true }).filter(
  (e) => e.isFile() && /\.(ts|mts|cts|mjs|cjs|js)$/.test(e.name),
);
const SPEC = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*|\bnew URL\(\s*)(['"`])(\.\.?(?:\/[^'"`]*)?)\1/g;
for (const e of testFiles) {
  const file = join(e.parentPath ?? e.path, e.name);
  for (const [, , spec] of readFileSync(file, 'utf8').matchAll(SPEC)) {
    const target = relative(root, resolve(dirname(file), spec));
    if (target === 'reliability' || target.startsWith(`reliability/`))
      problems.push(`test-never-imports-reliability: ${relative(root, file)} → ${spec} (shared code belongs in test/support/)`);
  }
}

if (problems.length > 0) {
  process.stderr.write(`structure check failed:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(
  `structure: ${read} modules, ${summary.totalDependenciesCruised} imports, no violation, no import circle; ${testFiles.length} files under test/, none importing reliability/\n`,
);
