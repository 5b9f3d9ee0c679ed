// Builds dist/esm (import) and dist/cjs (require), each with type declarations.
// The build goes to a scratch directory that then replaces dist/ in two renames, so a process
// importing the package while another one builds (the bench and a test in the same `npm test`)
// finds either the old build or the new one, never a half-written or missing dist/.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Optional peer dependencies whose types the declarations name (see optionalPeerTypes).
const OPTIONAL_PEERS = ['knex', '@opentelemetry/sdk-metrics', '@opentelemetry/resources', '@opentelemetry/exporter-prometheus'];

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const dist = join(root, 'dist');
const scratch = join(root, `.dist-build-${process.pid}`);
const old = join(root, `.dist-old-${process.pid}`);
rmSync(scratch, { recursive: true, force: true });
try {
  for (const [project, out] of [
    ['tsconfig.build.json', 'esm'],
    ['tsconfig.cjs.json', 'cjs'],
  ]) {
    execFileSync(tsc, ['-p', join(root, project), '--outDir', join(scratch, out)], { stdio: 'inherit', cwd: root });
  }
  // The package is "type": "module"; this marks the CommonJS build as such.
  writeFileSync(join(scratch, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
  optionalPeerTypes(scratch);
  // Another build may swap in its own dist/ between these two renames: then move that one aside too.
  for (let attempt = 1; ; attempt++) {
    try {
      if (existsSync(dist)) renameSync(dist, `${old}-${attempt}`);
      renameSync(scratch, dist);
      break;
    } catch (err) {
      if (attempt >= 5 || !['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(err.code)) throw err;
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
  for (let attempt = 1; attempt <= 5; attempt++) rmSync(`${old}-${attempt}`, { recursive: true, force: true });
}

/**
 * Optional peer dependencies (knex; the OpenTelemetry SDK pieces only startPrometheusExporter loads):
 * the declarations that name their types import them behind `// @ts-ignore`, so an app without
 * them still typechecks the declarations with `skipLibCheck: false` (those members are then untyped
 * there), and an app with them gets their own types. TypeScript does not keep such a comment in the
 * declarations it writes, so it is added here.
 */
function optionalPeerTypes(dir) {
  const names = OPTIONAL_PEERS.map((n) => n.replace(/[/.]/g, '\\$&')).join('|');
  // One line each (an import spread over lines is joined), so the comment covers the specifier.
  const line = new RegExp(`^import type ([^;]*?) from '(${names})';$`, 'gms');
  const inline = new RegExp(`import\\(["'](?:${names})["']\\)`);
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
    const file = join(entry.parentPath ?? entry.path, entry.name);
    const text = readFileSync(file, 'utf8');
    if (inline.test(text)) throw new Error(`${file}: an inline import() type of an optional peer cannot be made optional; import the type at the top instead`);
    const marked = text.replace(
      line,
      (_all, what, from) => `// @ts-ignore -- an optional peer dependency\nimport type ${what.replace(/\s+/g, ' ')} from '${from}';`,
    );
    if (marked !== text) writeFileSync(file, marked);
  }
}
