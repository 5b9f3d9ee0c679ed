/**
 * Runs node-postgres's pg-pool test suite (node_modules/pg-pool-suite: pg-pool@3.8.0, which ships
 * its mocha tests; MIT) as its package runs it (`--require test/setup.js`: an unhandled rejection or
 * a warning ends the process), against pg-pool itself (`baseline`) or against our pool through
 * shim.cjs. One mocha process per test file, so a file that crashes loses only its own tests.
 *
 *   node test/support/pg-pool-upstream/run.mjs [--baseline] [--json out.json] [--only a.js,b.js]
 *
 * The server is DATABASE_URL, handed to pg as PGHOST / PGPORT / PGUSER / PGPASSWORD / PGDATABASE.
 * Deprecation warnings are off (`--no-deprecation`): pg 8 deprecates the `Promise` option that
 * one test passes, and setup.js turns any warning into an exit, for pg-pool itself too.
 */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const suiteDir = path.dirname(require.resolve('pg-pool-suite/package.json'));
const mocha = require.resolve('mocha/bin/mocha.js');
const shim = path.join(here, 'shim.cjs');

/** pg's environment variables for a postgres:// URL. */
export function pgEnv(url) {
  const u = new URL(url);
  const env = { PGHOST: u.hostname, PGPORT: u.port || '5432', PGDATABASE: decodeURIComponent(u.pathname.slice(1)) || 'postgres' };
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  return env;
}

/** The suite's test files (setup.js is its `--require`, idle-timeout-exit.js a forked helper). */
export function suiteFiles() {
  return readdirSync(path.join(suiteDir, 'test'))
    .filter((f) => f.endsWith('.js') && f !== 'setup.js' && f !== 'idle-timeout-exit.js')
    .sort();
}

function runFile(file, { useShim, databaseUrl, timeoutMs }) {
  const nodeOptions = ['--no-deprecation', ...(useShim ? [`--require=${shim}`] : [])].join(' ');
  const env = { ...process.env, ...pgEnv(databaseUrl), NODE_OPTIONS: nodeOptions };
  const args = [mocha, '--require', 'test/setup.js', '--timeout', '10000', '--reporter', 'json-stream', path.join('test', file)];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: suiteDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const tests = [];
      let ended = false;
      for (const line of out.split('\n')) {
        if (!line.startsWith('[')) continue;
        let ev;
        try {
          ev = JSON.parse(line);
        } catch {
          continue;
        }
        if (ev[0] === 'pass' || ev[0] === 'fail') {
          tests.push({ file, title: ev[1].fullTitle, state: ev[0] === 'pass' ? 'passed' : 'failed', error: ev[0] === 'fail' ? String(ev[1].err ?? '').slice(0, 500) : undefined });
        } else if (ev[0] === 'end') ended = true;
      }
      resolve({ file, code, signal, ended, tests, stderr: ended ? '' : err.slice(-2000) });
    });
  });
}

/**
 * Runs every file; resolves `{ files, tests }`: per test `{ file, title, state: 'passed' | 'failed' }`
 * (a title can repeat when mocha reports a hook failure too); files that ended early are flagged.
 */
export async function runSuite({ useShim, databaseUrl = process.env.DATABASE_URL, timeoutMs = 120_000, only }) {
  if (!databaseUrl) throw new Error('DATABASE_URL is not set');
  const files = [];
  for (const file of suiteFiles()) {
    if (only && !only.includes(file)) continue;
    const started = performance.now();
    const result = await runFile(file, { useShim, databaseUrl, timeoutMs });
    files.push({ ...result, ms: Math.round(performance.now() - started) });
  }
  return { files, tests: files.flatMap((f) => f.tests) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const baseline = process.argv.includes('--baseline');
  const jsonAt = process.argv.indexOf('--json');
  const onlyAt = process.argv.indexOf('--only');
  const result = await runSuite({ useShim: !baseline, only: onlyAt > 0 ? process.argv[onlyAt + 1].split(',') : undefined });
  const passed = result.tests.filter((t) => t.state === 'passed');
  const failed = result.tests.filter((t) => t.state === 'failed');
  for (const t of failed) console.log(`FAIL ${t.file} :: ${t.title}\n     ${t.error?.split('\n')[0]}`);
  for (const f of result.files) if (!f.ended) console.log(`ENDED EARLY ${f.file} (code ${f.code}${f.signal ? `, ${f.signal}` : ''})\n${f.stderr}`);
  console.log(`${baseline ? 'pg-pool 3.8.0 itself' : 'db-pool-otel through the pg.Pool face'}: ${passed.length} passed, ${failed.length} failed`);
  if (jsonAt > 0) writeFileSync(process.argv[jsonAt + 1], JSON.stringify(result, null, 2));
}
