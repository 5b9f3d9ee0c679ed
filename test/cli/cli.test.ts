/**
 * The `db-pool` CLI as a child process (`node --import tsx src/cli/bin.ts`) against a live admin
 * endpoint over a real DatabasePool in this process. Each spawn costs about a second of CPU, so
 * spawns run at most three at a time and every test batches its assertions; argument errors and
 * `--help` of each command are also checked in process through `run()`.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabasePool } from '../../src/index.js';
import { startAdminServer, type AdminServer } from '../../src/admin/admin-server.js';
import { run } from '../../src/cli/main.js';
import { SECRET_PASSWORD, TOKEN, WRONG_TOKEN, adminFor, closedPort, fullConfigs, quietDb } from '../support/admin-helpers.js';
import { databaseUrl, eventually } from '../support/helpers.js';

const TSX = import.meta.resolve('tsx');
const ENTRY = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../../examples/recovery_operations.sh', import.meta.url));

/** Never printed: the tokens, the test password, and the server's own password (embedded PostgreSQL has one). */
const SECRETS = [TOKEN, WRONG_TOKEN, SECRET_PASSWORD, decodeURIComponent(new URL(databaseUrl()).password)].filter((s) => s.length > 0);

let db: DatabasePool;
let admin: AdminServer;

test.before(async () => {
  db = new DatabasePool({
    logger: null,
    health: { probeTimeoutMs: 10_000 }, // a busy CI machine must not turn `health` red
    pools: fullConfigs({
      main: { max: 4, min: 1, slowQueryThresholdMs: 25, leakDetectionThresholdMs: 150 },
      mut: { max: 4, min: 1 },
      tok: { max: 3, min: 2 },
      load: { max: 5, min: 0, acquireTimeoutMs: 10_000 },
      ops: { max: 2, min: 1 },
    }),
  });
  admin = await startAdminServer(db, { port: 0, token: TOKEN, logger: null });
});

test.after.always(async () => {
  await admin?.close();
  await db?.close({ drainTimeoutMs: 2_000 });
});

// ------------------------------------------------------------------ spawning the CLI

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

let running = 0;
const waiting: (() => void)[] = [];
async function slot<T>(fn: () => Promise<T>): Promise<T> {
  while (running >= 3) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function childEnv(overrides: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string | undefined> = { ...process.env, DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: TOKEN, ...overrides };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Runs `db-pool args...`; checks that no token ever reaches its output. */
async function cli(t: ExecutionContext, args: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliRun> {
  const result = await slot(
    () =>
      new Promise<CliRun>((resolve) => {
        execFile(
          process.execPath,
          ['--import', TSX, ENTRY, ...args],
          { env: childEnv(options.env ?? {}), cwd: options.cwd, timeout: 60_000 },
          (err, stdout, stderr) => {
            const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
            resolve({ code, stdout, stderr });
          },
        );
      }),
  );
  for (const secret of SECRETS) {
    t.false(result.stdout.includes(secret) || result.stderr.includes(secret), `db-pool ${args.join(' ')} printed a secret`);
  }
  return result;
}

/** Runs the CLI in process (for argument errors and help): exit code and output. */
async function inProcess(args: string[], env: Record<string, string | undefined> = { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: TOKEN }) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { env, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

function json(r: CliRun): any {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

const lines = (s: string) => s.trimEnd().split('\n');

// ------------------------------------------------------------------ tests

test('read commands, human and JSON: health, pools, config, metrics, slow-queries, connections, diagnose', async (t) => {
  await db.query('main', "SELECT pg_sleep(0.04), 'literal-5521' AS v");
  await t.throwsAsync(db.query('main', 'SELECT 1/0'));
  const held = await db.acquire('main');
  await once(db, 'leak');
  try {
    const [health, healthJ, pools, poolsJ, config, configJ, metrics, metricsJ, slow, slowJ, conns, connsJ, diag, diagJ] = await Promise.all(
      [
        ['health'],
        ['health', '--json'],
        ['pools'],
        ['--json', 'pools'],
        ['config', 'main'],
        ['config', 'main', '--json'],
        ['metrics', 'main'],
        ['metrics', 'main', '--json'],
        ['slow-queries', 'main', '--limit', '1'],
        ['slow-queries', 'main', '--json'],
        ['connections', 'main'],
        ['connections', 'main', '--json'],
        ['diagnose', 'main'],
        ['diagnose', 'main', '--json'],
      ].map((args) => cli(t, args)),
    );

    t.is(health!.code, 0, health!.stderr);
    t.regex(health!.stdout, /^status: healthy \(5 of 5 pools answered SELECT 1\)/);
    t.regex(health!.stdout, /^POOL +STATUS +ERROR$/m);
    t.regex(health!.stdout, /^main +healthy/m);
    t.is(healthJ!.code, 0);
    t.is(json(healthJ!).status, 'healthy');
    t.deepEqual([...json(healthJ!).healthyPools].sort(), [...db.listPools()].sort());

    t.is(pools!.code, 0, pools!.stderr);
    t.regex(lines(pools!.stdout)[0]!, /^POOL +TOTAL +ACTIVE +IDLE +WAITING +MIN +MAX +UTIL +LAST CONNECT ERROR$/);
    t.is(lines(pools!.stdout).length, 1 + db.listPools().length);
    t.regex(pools!.stdout, /^main +\d+ +[1-4] +\d+ +0 +1 +4 +\d+\.\d %/m);
    t.deepEqual(
      json(poolsJ!).pools.map((p: { poolId: string }) => p.poolId),
      db.listPools(),
    );

    t.is(config!.code, 0, config!.stderr);
    t.regex(config!.stdout, /^connection +postgres(ql)?:\/\/\S+$/m);
    t.regex(config!.stdout, /^max +4$/m);
    t.regex(config!.stdout, /^leakDetectionThresholdMs +150$/m);
    t.regex(config!.stdout, /^now: total \d+, active \d+, idle \d+, waiting \d+ \(min 1, max 4\)$/m);
    t.deepEqual(json(configJ!).config, db.getPoolConfig('main'));

    t.is(metrics!.code, 0, metrics!.stderr);
    for (const label of [
      'pool',
      'connections',
      'utilization',
      'waiting',
      'acquire',
      'queries',
      'query latency',
      'errors',
      'slow queries',
      'leaks',
      'last connect error',
      'since start',
    ]) {
      t.regex(metrics!.stdout, new RegExp(`^${label} +\\S`, 'm'), label);
    }
    t.regex(metrics!.stdout, /^leaks +1 loans held past the threshold$/m);
    t.deepEqual(Object.keys(json(metricsJ!)), Object.keys(db.getDetailedMetrics('main').toJSON()));
    t.is(json(metricsJ!).leakedConnections, 1);

    t.is(slow!.code, 0, slow!.stderr);
    t.regex(lines(slow!.stdout)[0]!, /^ *DURATION +AT +CONN +SQLSTATE +FINGERPRINT +QUERY$/);
    t.is(lines(slow!.stdout).length, 2, '--limit 1');
    const slowQueries = json(slowJ!).slowQueries as { text: string; durationMs: number }[];
    t.true(slowQueries.some((q) => q.text === 'SELECT pg_sleep(?), ? AS v'));
    t.false(slowJ!.stdout.includes('literal-5521') || slow!.stdout.includes('literal-5521'), 'literals never shown');

    t.is(conns!.code, 0, conns!.stderr);
    t.regex(lines(conns!.stdout)[0]!, /^ *ID +STATE +PID +AGE +HELD FOR +USES +LAST QUERY$/);
    t.regex(conns!.stdout, /^ *\d+ +active +\d+ +\S+ +\S+ +\d+ /m);
    const ids = db.getConnectionDetails('main').map((c) => c.id);
    t.deepEqual(
      json(connsJ!).connections.map((c: { id: number }) => c.id),
      ids,
    );
    t.is(lines(conns!.stdout).length, 1 + ids.length);

    // A suspected leak is a high-severity issue, so the pool's health is critical: diagnose exits 1.
    const d = json(diagJ!);
    t.is(d.performance.overallHealth, 'critical');
    t.is(diag!.code, 1);
    t.is(diagJ!.code, 1);
    t.regex(diag!.stdout, /^pool main: critical$/m);
    t.regex(diag!.stdout, /^ {2}\[high\] connection_leaks: 1 connections held longer than 150 ms$/m);
    t.regex(diag!.stdout, /^leaks: 1 of \d+ connections held longer than 150 ms$/m);
    t.regex(diag!.stdout, /cli\.test\.ts:\d+/, 'the stack of the code holding the leaked connection');
    t.deepEqual(
      d.leaks.suspiciousConnections.map((c: { loanId: number }) => c.loanId),
      [held.id],
    );
  } finally {
    held.release();
  }
});

test('health exits 1 and names the pool when one is down, in both forms', async (t) => {
  const down = quietDb(t, {
    up: { max: 1, min: 0 },
    down: { connection: { host: '127.0.0.1', port: await closedPort(), user: 'app', password: SECRET_PASSWORD }, min: 0, acquireTimeoutMs: 500 },
  });
  const server = await adminFor(t, down);
  const env = { DB_POOL_ADMIN_URL: server.url, DB_POOL_ADMIN_TOKEN: TOKEN };
  const human = await inProcess(['health'], env);
  const machine = await inProcess(['health', '--json'], env);
  t.is(human.code, 1);
  t.regex(human.stdout, /^status: degraded \(1 of 2 pools answered SELECT 1\)/);
  t.regex(human.stdout, /^down +unhealthy +.*ECONNREFUSED/m);
  t.is(machine.code, 1);
  t.is(JSON.parse(machine.stdout).status, 'degraded');
  t.deepEqual(JSON.parse(machine.stdout).healthyPools, ['up']);
  t.false(human.stdout.includes(SECRET_PASSWORD) || machine.stdout.includes(SECRET_PASSWORD));
});

test('the metrics export file parses and matches getDetailedMetrics', async (t) => {
  // Its own DatabasePool: health probes of the other tests must not touch the counts compared here.
  // An hour's window: the window counts compared below must not change while a loaded machine spawns the CLI.
  const own = quietDb(t, { exp: { max: 2, min: 0, metricsWindowMs: 3_600_000 } });
  const server = await adminFor(t, own);
  for (let i = 0; i < 5; i++) await own.query('exp', 'SELECT $1::int AS n', [i]);
  await t.throwsAsync(own.query('exp', 'SELECT nope FROM nowhere'));
  const dir = await mkdtemp(join(tmpdir(), 'db-pool-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { DB_POOL_ADMIN_URL: server.url };
  const [byDefault, named] = await Promise.all([
    cli(t, ['metrics', 'exp', '--out'], { cwd: dir, env }),
    cli(t, ['--json', 'metrics', 'exp', '--out', 'named.json'], { cwd: dir, env }),
  ]);
  t.is(byDefault.code, 0, byDefault.stderr);
  t.is(named.code, 0, named.stderr);
  const files = (await readdir(dir)).sort();
  t.is(files.length, 2);
  t.regex(files[0]!, /^metrics_\d{8}_\d{6}\.json$/, 'the ops guide name: metrics_YYYYmmdd_HHMMSS.json');
  t.is(files[1], 'named.json');
  t.is(byDefault.stdout.trim(), `wrote metrics of pool exp to ${join(dir, files[0]!)}`);
  t.deepEqual(json(named), { poolId: 'exp', file: join(dir, 'named.json') });

  const expected = own.getDetailedMetrics('exp').toJSON() as Record<string, any>;
  for (const file of files) {
    const exported = JSON.parse(await readFile(join(dir, file), 'utf8'));
    t.deepEqual(Object.keys(exported), Object.keys(expected), 'same keys, same order');
    t.deepEqual(Object.keys(exported.totals), Object.keys(expected.totals));
    t.deepEqual(exported.totals, expected.totals, 'lifetime counts');
    t.is(exported.totals.queries, 6);
    t.is(exported.totals.errors, 1);
    for (const key of [
      'poolId',
      'windowSeconds',
      'queriesInWindow',
      'errorsInWindow',
      'errorRate',
      'totalConnections',
      'maxConnections',
      'minConnections',
      'acquireTimeouts',
      'slowQueriesCount',
      'leakedConnections',
    ]) {
      t.deepEqual(exported[key], expected[key], key);
    }
    t.true(Date.parse(exported.timestamp) <= Date.parse(expected.timestamp));
  }
});

test('mutating commands, human and JSON: resize, timeouts, cleanup, restart', async (t) => {
  await db.query('mut', 'SELECT 1');
  const resize = await cli(t, ['resize', 'mut', '--max', '6', '--min', '2']);
  t.is(resize.code, 0, resize.stderr);
  t.regex(resize.stdout, /^pool mut: max 4 → 6, min 1 → 2; now total \d+, active \d+, idle \d+, waiting 0 \(min 2, max 6\)$/m);
  const resizeJ = await cli(t, ['resize', 'mut', '--max', '5', '--json']);
  t.deepEqual(json(resizeJ).changed, { max: { from: 6, to: 5 } });
  t.is(db.getPoolConfig('mut').max, 5);
  t.is(db.getPoolConfig('mut').min, 2);

  const [timeouts, timeoutsJ] = await Promise.all([
    cli(t, ['timeouts', 'mut', '--query', '4000', '--acquire', '2000']),
    cli(t, ['timeouts', 'mut', '--query', '4000', '--json']),
  ]);
  t.is(timeouts.code, 0, timeouts.stderr);
  t.is(timeoutsJ.code, 0, timeoutsJ.stderr);
  // The two ran concurrently: one changed queryTimeoutMs, the other found it set already.
  t.regex(timeouts.stdout, /^pool mut: (queryTimeoutMs 30000 → 4000, )?acquireTimeoutMs 10000 → 2000; now /m);
  t.deepEqual(
    Object.keys(json(timeoutsJ).changed).filter((k) => k !== 'queryTimeoutMs'),
    [],
  );
  t.is(db.getPoolConfig('mut').queryTimeoutMs, 4000);
  t.is(db.getPoolConfig('mut').acquireTimeoutMs, 2000);

  t.true(await eventually(() => db.getPoolStatus('mut').idle >= 2, 15_000));
  const cleanup = await cli(t, ['cleanup', 'mut']);
  t.is(cleanup.code, 0, cleanup.stderr);
  t.regex(cleanup.stdout, /^cleaned pool mut: closed [1-9]\d* idle connection\(s\), reclaimed 0 leaked loan\(s\), cleared transient errors; now total/m);
  const cleanupJ = await cli(t, ['cleanup', 'mut', '--json']);
  t.deepEqual(Object.keys(json(cleanupJ)).sort(), ['errorsCleared', 'idleClosed', 'leaksReclaimed', 'poolId', 'status']);

  t.true(await eventually(() => db.getPoolStatus('mut').idle >= 2, 15_000));
  const pidsBefore = db.getConnectionDetails('mut').map((c) => c.processId);
  const restart = await cli(t, ['restart', 'mut']);
  t.is(restart.code, 0, restart.stderr);
  t.regex(restart.stdout, /^restarted pool mut in [\d.]+ ms; now total \d+, active \d+, idle \d+, waiting 0 \(min 2, max 5\)$/m);
  const restartJ = await cli(t, ['restart', 'mut', '--drain-timeout', '1000', '--json']);
  t.is(json(restartJ).restarted, true);
  t.true(await eventually(() => db.getPoolStatus('mut').idle >= 2, 15_000));
  const pidsAfter = db.getConnectionDetails('mut').map((c) => c.processId);
  t.true(
    pidsAfter.every((pid) => !pidsBefore.includes(pid)),
    'every session replaced',
  );
  t.is(db.getPoolConfig('mut').max, 5, 'a restart keeps the live changes');
});

test('missing and wrong tokens on every mutating command: exit 3, the fix named, nothing changed', async (t) => {
  for (const loan of await Promise.all([db.acquire('tok'), db.acquire('tok')])) loan.release();
  t.true(await eventually(() => db.getPoolStatus('tok').idle === 2 && db.getPoolStatus('tok').pendingCreates === 0, 15_000));
  const snapshot = () => ({
    config: db.getPoolConfig('tok'),
    sessions: db.getConnectionDetails('tok').map((c) => `${c.id}:${c.processId}`),
    created: db.getDetailedMetrics('tok').totals.connectionsCreated,
  });
  const before = snapshot();
  const commands = [
    ['restart', 'tok'],
    ['cleanup', 'tok'],
    ['resize', 'tok', '--max', '9'],
    ['timeouts', 'tok', '--query', '1111', '--acquire', '2222'],
  ];
  const missing = await Promise.all(commands.map((c) => cli(t, c, { env: { DB_POOL_ADMIN_TOKEN: '' } })));
  const wrong = await Promise.all(
    commands.map((c, i) => (i % 2 === 0 ? cli(t, [...c, '--token', WRONG_TOKEN]) : cli(t, c, { env: { DB_POOL_ADMIN_TOKEN: WRONG_TOKEN } }))),
  );
  for (const r of missing) {
    t.is(r.code, 3);
    t.regex(r.stderr, /^db-pool: error: http:\/\/127\.0\.0\.1:\d+ needs a token \(missing bearer token.*\) — set DB_POOL_ADMIN_TOKEN \(or --token\)/);
    t.is(r.stdout, '');
  }
  for (const r of wrong) {
    t.is(r.code, 3);
    t.regex(r.stderr, /rejected the token \(invalid bearer token\) — set --token or DB_POOL_ADMIN_TOKEN to the token the app passed to startAdminServer\(\)/);
  }
  t.deepEqual(snapshot(), before, 'refused commands changed nothing');

  // A server started without a token has the mutations off, whatever the CLI sends.
  const readOnly = await adminFor(t, db, {});
  const off = await inProcess(['resize', 'tok', '--max', '9'], { DB_POOL_ADMIN_URL: readOnly.url, DB_POOL_ADMIN_TOKEN: TOKEN });
  t.is(off.code, 3);
  t.regex(
    off.stderr,
    /refused: this admin endpoint was started without a token, so restart, cleanup and config changes are off: start it with startAdminServer\(\{ token \}\)/,
  );
  t.deepEqual(snapshot(), before);
});

test.serial('a resize and a restart through the CLI under a 20-worker load fail no query', async (t) => {
  let stop = false;
  const counts = { ok: 0, failed: 0, errors: [] as string[] };
  const workers = Array.from({ length: 20 }, async () => {
    while (!stop) {
      try {
        await db.query('load', 'SELECT pg_sleep(0.002)');
        counts.ok++;
      } catch (e) {
        counts.failed++;
        counts.errors.push((e as Error).message);
      }
    }
  });
  const progress = async (n: number) => {
    const target = counts.ok + n;
    t.true(await eventually(() => counts.ok >= target, 20_000), `${n} more queries`);
  };
  try {
    await progress(100);
    t.true(await eventually(() => db.getPoolStatus('load').total === 5, 10_000));
    const shrink = await cli(t, ['resize', 'load', '--max', '2']);
    t.is(shrink.code, 0, shrink.stderr);
    t.true(await eventually(() => db.getPoolStatus('load').total <= 2, 10_000));
    await progress(100);
    const grow = await cli(t, ['resize', 'load', '--max', '8', '--json']);
    t.deepEqual(json(grow).changed, { max: { from: 2, to: 8 } });
    // The pool's total counts connections still being opened; wait for eight open sessions.
    const openSessions = () =>
      db
        .getConnectionDetails('load')
        .filter((c) => c.processId !== undefined)
        .map((c) => c.processId);
    t.true(await eventually(() => openSessions().length === 8, 10_000), 'eight sessions before the restart');
    const pidsBefore = new Set(openSessions());
    t.is(pidsBefore.size, 8, 'eight distinct sessions before the restart');
    const restart = await cli(t, ['restart', 'load', '--json']);
    t.is(restart.code, 0, restart.stderr);
    t.true(
      await eventually(() => {
        const now = db.getConnectionDetails('load');
        return now.length > 0 && now.every((c) => !pidsBefore.has(c.processId));
      }, 10_000),
      'the restart replaced every session',
    );
    await progress(100);
  } finally {
    stop = true;
    await Promise.all(workers);
  }
  t.log(`${counts.ok} queries during resize 5 → 2 → 8 and a restart, ${counts.failed} failed`);
  t.is(counts.failed, 0, counts.errors.slice(0, 3).join('; '));
});

test('exit codes: 2 for usage errors, 3 for an unreachable or foreign endpoint, 1 for an unknown pool', async (t) => {
  const foreign = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not it</html>'));
  await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => foreign.close(() => resolve())));
  const port = await closedPort();
  // Two through the binary (its exit status is the code run() returns), the rest in process.
  const [unknownCommand, unreachable] = await Promise.all([
    cli(t, ['restat', 'main']),
    cli(t, ['pools'], { env: { DB_POOL_ADMIN_URL: `http://127.0.0.1:${port}` } }),
  ]);
  t.is(unknownCommand.code, 2);
  t.regex(unknownCommand.stderr, /^db-pool: error: unknown command 'restat'\n\(Did you mean restart\?\)/);
  t.is(unreachable.code, 3);
  t.is(
    unreachable.stderr.trim(),
    `db-pool: error: cannot reach http://127.0.0.1:${port}: connection refused — is the app running with db.startAdminServer()? set --url or DB_POOL_ADMIN_URL`,
  );
  const badNumber = await inProcess(['resize', 'main', '--max', 'ten']);
  t.is(badNumber.code, 2);
  t.regex(badNumber.stderr, /--max needs a whole number, got "ten"/);
  const notAdmin = await inProcess(['--url', `http://127.0.0.1:${(foreign.address() as { port: number }).port}`, 'health']);
  t.is(notAdmin.code, 3);
  t.regex(notAdmin.stderr, /answered HTTP 200 with text\/html, not the db-pool admin API/);
  const unknownPool = await inProcess(['metrics', 'nope']);
  t.is(unknownPool.code, 1);
  t.regex(unknownPool.stderr, /Pool "nope" does not exist.*\(pools: main, mut, tok, load, ops\) — run "db-pool pools"/);
  const rejected = await inProcess(['resize', 'main', '--max', '0']);
  t.is(rejected.code, 2, 'a value the endpoint rejects is a usage error');
  t.regex(rejected.stderr, /rejected, nothing changed\n {2}- max: must be from 1 to 10000 \(got 0\)/);
  t.is(db.getPoolConfig('main').max, 4);

  for (const [args, pattern] of [
    [['resize', 'main'], /required option '--max <n>' not specified/],
    [['timeouts', 'main'], /give --query MS and \/ or --acquire MS/],
    [['slow-queries', 'main', '--limit', '0'], /--limit needs a whole number of at least 1/],
    [['--url', 'ftp://example.com', 'pools'], /must start with http:\/\/ or https:\/\//],
    [['--url', 'not a url', 'pools'], /invalid admin endpoint URL \(not shown, it may hold credentials\)/],
    [['metrics'], /missing required argument 'pool'/],
    [['pools', 'extra'], /too many arguments/],
    [[], /Usage: db-pool/],
  ] as [string[], RegExp][]) {
    const r = await inProcess(args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, pattern, args.join(' '));
  }
});

test('--help works for the program and every command and names the environment and exit codes', async (t) => {
  const top = await cli(t, ['--help']);
  t.is(top.code, 0);
  for (const command of ['health', 'pools', 'config', 'metrics', 'slow-queries', 'connections', 'diagnose', 'restart', 'cleanup', 'resize', 'timeouts']) {
    t.regex(top.stdout, new RegExp(`^ {2}${command}\\b`, 'm'), command);
    for (const args of [
      [command, '--help'],
      ['help', command],
    ]) {
      const r = await inProcess(args);
      t.is(r.code, 0, args.join(' '));
      t.regex(r.stdout, new RegExp(`^Usage: db-pool ${command}`), args.join(' '));
      t.regex(r.stdout, /Global Options:[\s\S]*--url <url>[\s\S]*--token <token>[\s\S]*--json/);
    }
  }
  t.regex(
    top.stdout,
    /DB_POOL_ADMIN_URL[\s\S]*DB_POOL_ADMIN_TOKEN[\s\S]*Exit codes: 0 ok, 1 unhealthy or failed operation, 2 usage error,\s+3 admin endpoint unreachable or unauthorized/,
  );
});

test('examples/recovery_operations.sh: restart_pool, cleanup_pool and export_metrics on top of the CLI', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'db-pool-ops-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await db.query('ops', 'SELECT 1');
  const pidsBefore = db.getConnectionDetails('ops').map((c) => c.processId);
  const env = childEnv({ DB_POOL: `${process.execPath} --import ${TSX} ${ENTRY}` });
  const bash = (args: string[]) =>
    slot(
      () =>
        new Promise<CliRun>((resolve) => {
          execFile('bash', args, { env, cwd: dir, timeout: 60_000 }, (err, stdout, stderr) =>
            resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout, stderr }),
          );
        }),
    );
  const sourced = await bash(['-c', `set -e; source ${SCRIPT}; restart_pool ops; cleanup_pool ops; export_metrics ops; export_metrics ops before.json`]);
  t.is(sourced.code, 0, sourced.stderr);
  t.regex(sourced.stdout, /^Restarting pool: ops\nrestarted pool ops in [\d.]+ ms; now /m);
  t.regex(sourced.stdout, /^Cleaning up pool: ops\ncleaned pool ops: closed \d+ idle connection\(s\)/m);
  const exported = /^Metrics exported to: (metrics_\d{8}_\d{6}\.json)$/m.exec(sourced.stdout)?.[1];
  t.truthy(exported, sourced.stdout);
  t.is(JSON.parse(await readFile(join(dir, exported!), 'utf8')).poolId, 'ops');
  t.false(db.getConnectionDetails('ops').some((c) => pidsBefore.includes(c.processId)));
  t.regex(sourced.stdout, /^Metrics exported to: before\.json$/m);
  t.deepEqual(Object.keys(JSON.parse(await readFile(join(dir, 'before.json'), 'utf8'))), Object.keys(db.getDetailedMetrics('ops').toJSON()));

  t.false(sourced.stdout.includes(TOKEN) || sourced.stderr.includes(TOKEN));
  const failed = await bash([SCRIPT, 'restart_pool', 'nope']);
  t.is(failed.code, 1, 'run directly, the CLI exit code comes through');
  t.regex(failed.stderr, /Pool "nope" does not exist/);
  const usage = await bash([SCRIPT]);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /usage: .*recovery_operations\.sh \{restart_pool\|cleanup_pool\|export_metrics\} POOL \[FILE\]/);
});
