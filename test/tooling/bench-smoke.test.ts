/**
 * The benchmark's quick mode runs end to end and writes its tables. Benchmarks are not tests:
 * nothing here looks at a number, only that every case ran without failed operations and that the
 * results file has its tables.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { databaseUrl } from '../support/helpers.js';

const run = promisify(execFile);

test('npm run bench -- --quick: every case runs and bench/run.ts writes the results tables', async (t) => {
  // About 40 s on an idle 2-core machine; nearly 3 min beside another test run. Room for a slower one.
  t.timeout(480_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'db-pool-bench-smoke-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'results.md');
  await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', out], {
    env: { ...process.env, DATABASE_URL: databaseUrl() },
    maxBuffer: 16 * 2 ** 20,
  });
  const md = fs.readFileSync(out, 'utf8');
  for (const heading of [
    '1. Connection cycle',
    '1b. The same pools',
    '2, 3. Queries over PostgreSQL',
    '4. Heap after',
    '5a. 1 pool vs',
    '5b. Acquire cost',
    '5c. ',
    '6. Where the client CPU goes',
  ]) {
    t.true(md.includes(`### ${heading}`), heading);
  }
  t.regex(md, /\| SELECT 1 \| ours \+ spans \+ metrics \| [\d\u2009]+/);
  t.regex(md, /## Targets \(issue 9\)/);
  t.false(/failed operations|failed queries|\d+ failed \(/.test(md), 'no operation failed');
});
