#!/usr/bin/env node
// The `db-pool` command: runs the built CLI (dist/esm/src/cli/bin.js). In a source checkout, build
// first (`npm run build`), or run the TypeScript directly: node --import tsx src/cli/bin.ts
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/esm/src/cli/bin.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('db-pool: the CLI is not built (dist/ is missing): run `npm run build`, or use `node --import tsx src/cli/bin.ts`\n');
  process.exitCode = 1;
} else {
  await import(entry.href);
}
