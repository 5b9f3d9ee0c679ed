/**
 * node-postgres's own pg-pool test suite (pg-pool@3.8.0's mocha tests, run unmodified from
 * node_modules/pg-pool-suite) against the pg.Pool face: `new Pool(options)` is one of our pools
 * (test/support/pg-pool-upstream/shim.cjs). First against pg-pool itself on this machine and server (the
 * baseline), then against ours: every test pg-pool passes here must pass on ours, except the
 * ones listed below, each with its reason.
 */
import test from 'ava';
// @ts-expect-error: a plain .mjs runner without type declarations
import { runSuite } from '../support/pg-pool-upstream/run.mjs';
import { databaseUrl } from '../support/helpers.js';

interface SuiteTest {
  file: string;
  title: string;
  state: 'passed' | 'failed';
  error?: string;
}
interface SuiteFile {
  file: string;
  ended: boolean;
  code: number | null;
  stderr: string;
}
type RunSuite = (o: { useShim: boolean; databaseUrl: string; only?: string[] }) => Promise<{ files: SuiteFile[]; tests: SuiteTest[] }>;

/** Tests that pass on pg-pool and are not expected to pass on ours, by `file :: full title`. */
const EXPECTED_DIFFERENCES: Record<string, string> = {
  'error-handling.js :: pool error handling handles post-checkout client failures in pool.query':
    "private internals: it ends `pool._clients[0]`, pg-pool's private array of clients (our face has no such array; a connection killed mid-query is covered by our own tests)",
  'connection-timeout.js :: connection timeout releases newly connected clients if the queued already timed out':
    'deliberate: when a connect fails and the pool holds no connection, our pool fails every waiting caller at once with the cause (pg-pool fails only the caller that connect was for); the queued caller fails at 300 ms instead of timing out at 1000 ms, so the follow-up query starts earlier and its own 1000 ms runs out before the next connect, made 1000 ms slow by the test, completes',
  // Timing: these pass on ours when the machine is quiet (and fail on pg-pool itself when it is
  // not); what they check is also covered by our own tests without a time window
  // (test/adapters/pg-pool.test.ts events, test/adapters/pg-pool-dropin.test.ts allowExitOnIdle).
  'events.js :: events emits acquire every time a client is acquired':
    'timing: counts 20 acquisitions, 10 of them on new connections, within 100 ms; on this machine a connect takes about that long and pg-pool itself fails it most runs',
  'idle-timeout.js :: idle timeout unrefs the connections and timeouts so the program can exit when idle when the allowExitOnIdle option is set':
    "timing: the forked script's second query, sent 50 ms after the first, must reuse the first connection; when the first query (its connect included) takes longer, a second connection is opened and the output differs. On a loaded machine it fails on pg-pool too; ours is slower to its first answer (the first connect of a pool also reads the server's connection budget: one more round trip)",
  'idle-timeout.js :: idle timeout keeps old behavior when allowExitOnIdle option is not set':
    'timing: the same forked script and 50 ms window as the test above',
};

const key = (t: { file: string; title: string }): string => `${t.file} :: ${t.title}`;

test("pg-pool 3.8.0's own test suite: everything pg-pool passes here passes on the pg.Pool face", async (t) => {
  t.timeout(600_000);
  const run = runSuite as RunSuite;
  const url = databaseUrl();
  const baseline = await run({ useShim: false, databaseUrl: url });
  const ours = await run({ useShim: true, databaseUrl: url });
  // Passed: reported passing and never failing (mocha can report a test twice: a late done()).
  const passed = (tests: SuiteTest[]): Set<string> => {
    const failed = new Set(tests.filter((x) => x.state === 'failed').map(key));
    return new Set(
      tests
        .filter((x) => x.state === 'passed')
        .map(key)
        .filter((k) => !failed.has(k)),
    );
  };
  const passedOnPgPool = passed(baseline.tests);
  const passedOnOurs = passed(ours.tests);
  const failedOnOurs = ours.tests.filter((x) => x.state === 'failed');
  t.log(`pg-pool itself: ${passedOnPgPool.size} passed, ${baseline.tests.filter((x) => x.state === 'failed').length} failed`);
  t.log(`ours: ${passedOnOurs.size} passed, ${failedOnOurs.length} failed`);
  for (const f of failedOnOurs) t.log(`  failed on ours: ${key(f)}${EXPECTED_DIFFERENCES[key(f)] ? ' (expected)' : ''}\n    ${f.error?.split('\n')[0]}`);

  // The suite really ran: every file to its end, on both.
  t.true(passedOnPgPool.size >= 60, 'the baseline ran');
  for (const f of [...baseline.files, ...ours.files]) t.true(f.ended, `${f.file} ran to its end (exit ${f.code}) ${f.stderr}`);

  let missing = [...passedOnPgPool].filter((k) => !passedOnOurs.has(k) && !(k in EXPECTED_DIFFERENCES));
  if (missing.length > 0) {
    // Several of the suite's tests hang on 50-100 ms windows (a forked process's second query,
    // idle timeouts of 1-10 ms): on a loaded machine pg-pool itself misses them at times. A file
    // with such a failure is run once more on ours; each test must pass in one of the two runs.
    const files = [...new Set(missing.map((k) => k.split(' :: ')[0]!))];
    t.log(`rerunning on ours: ${files.join(', ')} (failed: ${missing.join('; ')})`);
    const again = passed((await run({ useShim: true, databaseUrl: url, only: files })).tests);
    missing = missing.filter((k) => !again.has(k));
  }
  t.deepEqual(missing, [], 'passes on pg-pool, fails on ours');
  // Every expected difference names a test of the suite.
  const titles = new Set(baseline.tests.map(key));
  for (const k of Object.keys(EXPECTED_DIFFERENCES)) t.true(titles.has(k), `listed test exists: ${k}`);
});
