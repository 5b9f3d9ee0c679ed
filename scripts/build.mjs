// Builds dist/esm (import) and dist/cjs (require), each with type declarations.
// The build goes to a scratch directory that then replaces dist/ in two renames, so a process
// importing the package while another one builds (the bench and a test in the same `npm test`)
// finds either the old build or the new one, never a half-written or missing dist/.
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const dist = join(root, 'dist');
const scratch = join(root, `.dist-build-${process.pid}`);
const old = join(root, `.dist-old-${process.pid}`);
rmSync(scratch, { recursive: true, force: true });
try {
  for (const [project, out] of [['tsconfig.build.json', 'esm'], ['tsconfig.cjs.json', 'cjs']]) {
    execFileSync(tsc, ['-p', join(root, project), '--outDir', join(scratch, out)], { stdio: 'inherit', cwd: root });
  }
  // The package is "type": "module"; this marks the CommonJS build as such.
  writeFileSync(join(scratch, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
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
