/**
 * Terminal escape injection through the CLI (issue 14, item 13): text that reaches the terminal
 * from the endpoint — SQL aliases in query text, a server's error message naming a database, an
 * endpoint's error message and issues, any field of any answer — is shown with its control
 * characters escaped (`\x1b`, `\x07`, `\r`, `\n`, `\x9b`), in every human output; only the
 * layout's own line feeds remain. Against a live endpoint (real values), against a fake endpoint
 * answering every field with the payload (every command, every error form), and once through the
 * binary.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { startAdminServer } from '../../src/admin/admin-server.js';
import { run } from '../../src/cli/main.js';
import { TOKEN, quietDb } from '../support/admin-helpers.js';
import { eventually } from '../support/helpers.js';

/** The payload: set the window title, clear the screen, go back to column 0, a fake line, an 8-bit CSI. */
const EVIL = 'x\x1b]0;pwned\x07|\x1b[2J|\r|\nFAKE-LINE|\u009b31m|';
/** Any control character but the line feed; C1 included. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** What a terminal would get, checked: no raw control character, no line forged by the payload. */
function assertClean(t: import('ava').ExecutionContext, output: string, what: string): void {
  const raw = RAW_CONTROL.exec(output);
  t.is(raw, null, `${what}: raw control character ${raw ? JSON.stringify(raw[0]) : ''} in ${JSON.stringify(output)}`);
  t.false(/^FAKE-LINE/m.test(output), `${what}: the payload forged a line: ${JSON.stringify(output)}`);
}

async function cli(args: string[], url: string, token: string | undefined = TOKEN): Promise<{ code: number; stdout: string; stderr: string; all: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { env: { DB_POOL_ADMIN_URL: url, DB_POOL_ADMIN_TOKEN: token }, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr, all: stdout + stderr };
}

test('live endpoint: SQL aliases and a server error message with control characters are shown escaped', async (t) => {
  const server = new URL(process.env.DATABASE_URL!);
  const db = quietDb(t, {
    esc: { max: 2, min: 1, slowQueryThresholdMs: 1, leakDetectionThresholdMs: 100 },
    // The server under test's credentials (the embedded server checks passwords), a database that does not exist.
    baddb: {
      connection: {
        host: '127.0.0.1',
        port: Number(server.port || 5432),
        user: decodeURIComponent(server.username) || 'postgres',
        password: decodeURIComponent(server.password) || undefined,
        database: EVIL,
      },
      min: 0,
      acquireTimeoutMs: 2_000,
    },
  });
  const admin = await startAdminServer(db, { port: 0, token: TOKEN, logger: null });
  t.teardown(() => admin.close());
  await db.query('esc', `SELECT pg_sleep(0.01) AS "${EVIL}"`);
  await t.throwsAsync(db.query('baddb', 'SELECT 1'));
  t.true(await eventually(() => (db.getDetailedMetrics('baddb').lastConnectError ?? '').includes('\x1b]0;pwned')), 'the server echoed the database name');
  const held = await db.acquire('esc'); // a loan held past the threshold: diagnose lists it
  t.teardown(() => held.release());
  await eventually(() => db.getDetailedMetrics('esc').leakedConnections > 0);

  // The pool retries its connects now and then, and an attempt under way clears its last connect
  // error: run until the answer carries it.
  const showing = async (args: string[]) => {
    let r = await cli(args, admin.url);
    await eventually(async () => (r = await cli(args, admin.url)).all.includes('pwned'), 5_000, 50);
    return r;
  };
  const outputs = {
    pools: await showing(['pools']),
    metrics: await showing(['metrics', 'baddb']),
    config: await cli(['config', 'baddb'], admin.url),
    slow: await cli(['slow-queries', 'esc'], admin.url),
    connections: await cli(['connections', 'esc'], admin.url),
    diagnose: await cli(['diagnose', 'esc'], admin.url),
    // An error message from the endpoint quoting a pool id the endpoint does not know.
    notFound: await cli(['config', EVIL], admin.url),
    resizeNotFound: await cli(['resize', EVIL, '--max', '3'], admin.url),
    json: await showing(['pools', '--json']),
    // Last: its probe of baddb starts a new connect attempt, which clears the pool's last connect error meanwhile.
    health: await cli(['health'], admin.url),
  };
  const { json } = outputs;
  for (const [what, r] of Object.entries(outputs)) assertClean(t, r.all, what);

  // Shown, escaped: where the text is a field it keeps every character; one-line renderings of
  // query text and errors turn whitespace runs into one space.
  t.true(outputs.pools.stdout.includes('\\x1b]0;pwned\\x07'), outputs.pools.stdout);
  t.true(outputs.health.stdout.includes('\\x1b[2J'), outputs.health.stdout);
  t.true(outputs.metrics.stdout.includes('\\x1b]0;pwned\\x07'), outputs.metrics.stdout);
  t.true(outputs.config.stdout.includes('\\x1b]0;pwned\\x07|\\x1b[2J|\\r|\\nFAKE-LINE|\\x9b31m|'), outputs.config.stdout);
  t.true(outputs.slow.stdout.includes('\\x1b]0;pwned\\x07'), outputs.slow.stdout);
  t.true(outputs.slow.stdout.includes('\\x9b31m'), outputs.slow.stdout);
  t.true(outputs.connections.stdout.includes('\\x1b]0;pwned\\x07'), outputs.connections.stdout);
  t.true(outputs.diagnose.stdout.includes('\\x1b]0;pwned\\x07'), outputs.diagnose.stdout);
  t.is(outputs.notFound.code, 1);
  t.true(outputs.notFound.stderr.includes('Pool "x\\x1b]0;pwned\\x07|\\x1b[2J|\\r|\\nFAKE-LINE|\\x9b31m|" does not exist'), outputs.notFound.stderr);
  t.is(outputs.notFound.stderr.split('\n').length, 2, 'one line and its line feed');
  t.true(outputs.resizeNotFound.stderr.includes('\\x1b]0;pwned\\x07'), outputs.resizeNotFound.stderr);
  // The layout is intact: a header and one row per pool.
  t.is(outputs.pools.stdout.trimEnd().split('\n').length, 3, outputs.pools.stdout);

  // --json keeps the data exact (JSON escapes it; the parse gives the original back).
  assertClean(t, json.stdout, 'pools --json');
  const baddb = (JSON.parse(json.stdout) as { pools: { poolId: string; lastConnectError: string }[] }).pools.find((p) => p.poolId === 'baddb')!;
  t.true(baddb.lastConnectError.includes(EVIL));
});

/** An endpoint answering every route with the payload in every string field (a hostile or compromised endpoint). */
async function hostileEndpoint(t: import('ava').ExecutionContext): Promise<string> {
  const status = { total: 1, active: 0, idle: 1, waiting: 0, min: 0, max: 2 };
  const connection = { id: 1, state: EVIL, processId: 7, createdAt: EVIL, activeDurationMs: 5, useCount: 1, lastQuery: EVIL };
  const slowQuery = { durationMs: 12, at: EVIL, connectionId: 1, sqlState: EVIL, fingerprint: EVIL, text: EVIL };
  const bodies: Record<string, [number, unknown]> = {
    'GET /health': [200, { status: EVIL, healthyPools: [EVIL], unhealthyPools: [{ poolId: EVIL, error: EVIL }] }],
    'GET /pools': [200, { pools: [{ poolId: EVIL, total: 1, active: 0, idle: 1, waiting: 0, min: 0, max: 2, utilization: 0, lastConnectError: EVIL }] }],
    'GET /pools/p': [
      200,
      { poolId: EVIL, config: { [EVIL]: EVIL, connection: { host: EVIL, port: 5432, database: EVIL, user: EVIL }, nested: { k: EVIL } }, status },
    ],
    'GET /pools/p/metrics': [200, { poolId: EVIL, timestamp: EVIL, lastConnectError: EVIL, totals: { [EVIL]: EVIL } }],
    'GET /pools/p/slow-queries': [200, { slowQueries: [slowQuery] }],
    'GET /pools/p/connections': [200, { connections: [connection] }],
    'GET /pools/p/diagnosis': [
      200,
      {
        poolId: EVIL,
        performance: { overallHealth: EVIL, issues: [{ severity: EVIL, type: EVIL, description: EVIL, recommendations: [EVIL] }], slowQueries: [slowQuery] },
        leaks: {
          totalConnections: 1,
          thresholdMs: 5,
          suspiciousConnections: [{ id: EVIL, activeDurationMs: 9, loanId: EVIL, stackTrace: `Error\n    at ${EVIL}` }],
          recommendations: [EVIL],
        },
      },
    ],
    'POST /pools/p/restart': [200, { durationMs: 3, status }],
    'POST /pools/p/cleanup': [200, { idleClosed: 0, leaksReclaimed: 0, errorsCleared: true, status }],
    'PATCH /pools/p/config': [200, { changed: { [EVIL]: { from: EVIL, to: EVIL } }, status }],
    // Error answers: a message, and issues with path, rule and value.
    'GET /pools/e500/metrics': [500, { error: { code: EVIL, message: EVIL } }],
    'GET /pools/e503/metrics': [503, { error: { code: 'POOL_NOT_FOUND', message: EVIL } }],
    'PATCH /pools/e400/config': [400, { error: { code: 'INVALID_CONFIG', message: EVIL, issues: [{ path: EVIL, rule: EVIL, value: EVIL }] } }],
    'GET /pools/e401/metrics': [401, { error: { code: 'UNAUTHORIZED', message: EVIL } }],
    'GET /pools/e403/metrics': [403, { error: { code: 'MUTATIONS_DISABLED', message: EVIL } }],
    'GET /pools/e404/metrics': [404, { error: { code: 'NOT_FOUND', message: EVIL } }],
  };
  const server = http.createServer((req, res) => {
    req.resume();
    const [status, body] = bodies[`${req.method} ${(req.url ?? '').split('?')[0]}`] ?? [404, { error: { code: 'NOT_FOUND', message: EVIL } }];
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

test('hostile endpoint: every command and every error form shows the payload escaped, never raw', async (t) => {
  const url = await hostileEndpoint(t);
  const commands: string[][] = [
    ['health'],
    ['pools'],
    ['config', 'p'],
    ['metrics', 'p'],
    ['slow-queries', 'p'],
    ['connections', 'p'],
    ['diagnose', 'p'],
    ['restart', 'p'],
    ['cleanup', 'p'],
    ['resize', 'p', '--max', '3'],
    ['timeouts', 'p', '--query', '10'],
    ['metrics', 'e500'],
    ['metrics', 'e503'],
    ['resize', 'e400', '--max', '3'],
    ['metrics', 'e401'],
    ['metrics', 'e403'],
    ['metrics', 'e404'],
  ];
  for (const args of commands) {
    const r = await cli(args, url);
    assertClean(t, r.all, args.join(' '));
    // restart and cleanup print only numbers of the answer.
    if (args[0] !== 'restart' && args[0] !== 'cleanup')
      t.true(r.all.includes('\\x1b]0;pwned\\x07'), `${args.join(' ')} shows the payload escaped: ${JSON.stringify(r.all)}`);
  }
  // Fields keep all their characters, escaped; the issue list keeps its own layout.
  const health = await cli(['health'], url);
  t.regex(health.stdout, /^status: x\\x1b\]0;pwned\\x07\|\\x1b\[2J\|\\r\|\\nFAKE-LINE\|\\x9b31m\| \(1 of 2 pools answered SELECT 1\)$/m);
  const rejected = await cli(['resize', 'e400', '--max', '3'], url);
  t.is(rejected.code, 2);
  t.is(rejected.stderr.split('\n').length, 3, `a head line and one issue line: ${JSON.stringify(rejected.stderr)}`);
  t.regex(rejected.stderr, /^ {2}- x\\x1b\]0;pwned\\x07.*: x\\x1b/m);
  const diagnose = await cli(['diagnose', 'p'], url);
  t.regex(diagnose.stdout, /^ {6}at x\\x1b\]0;pwned\\x07/m, 'the stack keeps its lines; each is escaped');
  // --json: parses back to the exact payload.
  const json = await cli(['pools', '--json'], url);
  assertClean(t, json.stdout, 'pools --json');
  t.is((JSON.parse(json.stdout) as { pools: { poolId: string }[] }).pools[0]!.poolId, EVIL);
});

test('through the binary: stdout and stderr carry no raw control character', async (t) => {
  const url = await hostileEndpoint(t);
  const entry = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));
  const spawn = (args: string[]) =>
    new Promise<{ stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', import.meta.resolve('tsx'), entry, ...args],
        { env: { ...process.env, DB_POOL_ADMIN_URL: url, DB_POOL_ADMIN_TOKEN: TOKEN }, timeout: 60_000 },
        (_err, stdout, stderr) => resolve({ stdout, stderr }),
      );
    });
  const [pools, failed] = await Promise.all([spawn(['pools']), spawn(['metrics', 'e500'])]);
  assertClean(t, pools.stdout + pools.stderr, 'pools');
  assertClean(t, failed.stdout + failed.stderr, 'metrics e500');
  t.true(pools.stdout.includes('\\x1b]0;pwned\\x07'), pools.stdout);
  t.true(failed.stderr.includes('\\x1b]0;pwned\\x07'), failed.stderr);
});
