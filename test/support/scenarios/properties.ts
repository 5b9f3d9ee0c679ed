/**
 * Bad input, property-based (fast-check): configs, config files, pool ids, SQL text and values,
 * admin request bodies and CLI arguments. Each generated case must end in success or a typed error
 * (a library code, a SQLSTATE, a TypeError for a value that cannot be sent) — never a crash, a
 * hang, a leaked connection, or a changed config after a rejection. Generated hosts, URLs and ports
 * are rewritten to a closed loopback port or a `.invalid` name, and name lookups are answered in
 * process, so no case can reach another machine or a real server by accident.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabasePool, DbPoolError, loadConfigFile } from '../../../src/index.js';
import { startAdminServer } from '../../../src/admin/admin-server.js';
import { run as runCli } from '../../../src/cli/main.js';
import { guardLookups, safeConfig } from '../net-guard.js';
import { CallLedger, Checks, isTyped, errorCode, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { accountLeaks, adminClient, appName, freePort } from '../server.js';

export interface PropertySize {
  /** Generated cases per property. */
  runs: number;
  seed?: number;
}

export const PROPERTIES_FULL: PropertySize = { runs: 2_000 };
export const PROPERTIES_CI: PropertySize = { runs: 150 };

/** Runs a fast-check property and turns its verdict into a check. */
async function verdict(
  checks: Checks,
  name: string,
  prop: fc.IAsyncPropertyWithHooks<unknown[]> | fc.IAsyncProperty<unknown[]>,
  size: PropertySize,
): Promise<number> {
  const r = await fc.check(prop, { numRuns: size.runs, seed: size.seed, endOnFailure: true });
  const detail = r.failed
    ? `seed ${r.seed}, path ${r.counterexamplePath}: ${fc.stringify(r.counterexample).slice(0, 400)}${r.errorInstance ? ` → ${String((r.errorInstance as Error).message ?? r.errorInstance).slice(0, 300)}` : ''}`
    : `${r.numRuns} cases`;
  checks.add(name, !r.failed, detail);
  return r.numRuns;
}

/** An error the property accepts: the library's own, a SQLSTATE, a system code, or a TypeError / RangeError for an unusable value. */
function typedError(err: unknown): boolean {
  return err instanceof DbPoolError || isTyped(errorCode(err));
}

function fail(message: string): never {
  throw new Error(message);
}

// ------------------------------------------------------------------ configs

const POOL_KEYS = [
  'min',
  'max',
  'acquireTimeoutMs',
  'queryTimeoutMs',
  'idleTimeoutMs',
  'maxLifetimeMs',
  'maxWaitingClients',
  'validateOnBorrow',
  'leakDetectionThresholdMs',
  'leakReclaimMs',
  'slowQueryThresholdMs',
  'metricsWindowMs',
  'backup',
  'applicationName',
  'readReplicas',
  'transactionPooling',
];

function connectionArb(port: number) {
  const good = fc.constantFrom<unknown>(
    { host: '127.0.0.1', port, user: 'u', password: 'p', database: 'd' },
    { connectionString: `postgres://u:p@127.0.0.1:${port}/d` },
    { host: 'x.invalid' },
  );
  const fields = fc.record(
    {
      connectionString: fc.oneof(fc.string(), fc.constantFrom('postgres://', 'postgresql://u@h/d', 'mysql://u@h/d', 'postgres://u:p@[::1', 'http://x')),
      host: fc.oneof(fc.string(), fc.constant(''), fc.integer()),
      port: fc.oneof(fc.integer({ min: -10, max: 70_000 }), fc.string(), fc.double()),
      user: fc.oneof(fc.string(), fc.constant(null)),
      password: fc.oneof(fc.string(), fc.integer(), fc.array(fc.string())),
      database: fc.oneof(fc.string(), fc.constant('')),
      ssl: fc.oneof(fc.boolean(), fc.anything(), fc.record({ rejectUnauthorized: fc.anything() })),
    },
    { requiredKeys: [] },
  );
  return fc.oneof(good, fields, fc.anything());
}

function poolConfigArb(port: number) {
  const value = (valid: fc.Arbitrary<unknown>) => fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: fc.anything() });
  const known = fc.record(
    {
      connection: connectionArb(port),
      min: value(fc.integer({ min: 0, max: 3 })),
      max: value(fc.integer({ min: 0, max: 12_000 })),
      acquireTimeoutMs: value(fc.integer({ min: -1, max: 4_000_000 })),
      queryTimeoutMs: value(fc.integer({ min: -1, max: 100_000_000 })),
      idleTimeoutMs: value(fc.integer({ min: -1, max: 100_000_000 })),
      maxLifetimeMs: value(fc.integer({ min: -1, max: 700_000_000 })),
      maxWaitingClients: value(fc.integer({ min: -1, max: 11_000_000 })),
      validateOnBorrow: value(fc.boolean()),
      leakDetectionThresholdMs: value(fc.integer({ min: -1, max: 100_000_000 })),
      leakReclaimMs: value(fc.integer({ min: -1, max: 100_000_000 })),
      slowQueryThresholdMs: value(fc.integer({ min: -1, max: 100_000_000 })),
      metricsWindowMs: value(fc.integer({ min: 0, max: 4_000_000 })),
      backup: value(fc.oneof(fc.string(), connectionArb(port))),
      applicationName: value(fc.string({ maxLength: 80 })),
      readReplicas: value(fc.array(connectionArb(port), { maxLength: 2 })),
      transactionPooling: value(fc.boolean()),
    },
    { requiredKeys: [] },
  );
  const extra = fc.dictionary(
    fc.string({ maxLength: 12 }).filter((k) => !POOL_KEYS.includes(k) && k !== 'connection'),
    fc.anything(),
    { maxKeys: 2 },
  );
  return fc.oneof({ weight: 6, arbitrary: fc.tuple(known, extra).map(([k, e]) => ({ ...e, ...k })) }, { weight: 1, arbitrary: fc.anything() });
}

/**
 * Configs: `new DatabasePool`, `createPool`, `updatePoolConfig` and config files with generated
 * contents — INVALID_CONFIG (naming every problem, changing nothing) or a working pool.
 */
export async function configProperties(ctx: ScenarioContext, size: PropertySize): Promise<ScenarioResult> {
  const started = performance.now();
  const port = await freePort();
  const restore = guardLookups();
  const checks = new Checks();
  const ledger = new CallLedger();
  const db = new DatabasePool({ pools: { keep: { connection: { host: '127.0.0.1', port }, min: 0 } }, logger: null, recovery: { enabled: false } });
  const dir = mkdtempSync(join(tmpdir(), 'db-pool-otel-props-'));
  let cases = 0;
  const outcome = async (what: () => Promise<unknown>) => {
    const r = await ledger.track(what, 10_000);
    if (r.hung) fail('hung');
    if (!r.ok && !(r.error instanceof DbPoolError && r.code === 'INVALID_CONFIG')) fail(`not INVALID_CONFIG: ${r.code} ${(r.error as Error)?.message}`);
    return r.ok;
  };
  try {
    cases += await verdict(
      checks,
      'createPool: INVALID_CONFIG with every problem, nothing created — or a pool',
      fc.asyncProperty(poolConfigArb(port), async (raw) => {
        const cfg = safeConfig(raw, port);
        const before = db.listPools().join();
        const ok = await outcome(() => db.createPool('gen', cfg as never));
        if (!ok && db.listPools().join() !== before) fail('a rejected config changed the pools');
        if (ok) await db.removePool('gen', { drainTimeoutMs: 100 });
        return true;
      }),
      size,
    );
    cases += await verdict(
      checks,
      'new DatabasePool({ pools }): all or nothing',
      fc.asyncProperty(fc.dictionary(fc.constantFrom('a', 'b', 'c'), poolConfigArb(port), { maxKeys: 3 }), async (raw) => {
        let made: DatabasePool | undefined;
        await outcome(async () => {
          made = new DatabasePool({ pools: safeConfig(raw, port) as never, logger: null, recovery: { enabled: false } });
        });
        await made?.close({ drainTimeoutMs: 100 });
        return true;
      }),
      size,
    );
    cases += await verdict(
      checks,
      'updatePoolConfig: a rejected patch leaves the config exactly as it was',
      fc.asyncProperty(fc.oneof(poolConfigArb(port), fc.anything()), async (raw) => {
        const patch = safeConfig(raw, port);
        const before = JSON.stringify(db.getPoolConfig('keep'));
        const ok = await outcome(() => db.updatePoolConfig('keep', patch as never));
        if (!ok && JSON.stringify(db.getPoolConfig('keep')) !== before) fail('a rejected patch changed the config');
        if (ok) await db.updatePoolConfig('keep', { connection: { host: '127.0.0.1', port }, min: 0, max: 10 } as never);
        return true;
      }),
      size,
    );
    const fileArb = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      poolConfigArb(port).map((c) => JSON.stringify({ pools: { p: c } })),
      fc.constantFrom(
        'pools: [unclosed',
        'pools:\n  p:\n    connection:\n      connectionString: ${NOT_SET_ANYWHERE_42}\n',
        'pools: {p: {connection: {host: "${HOME}"}, max: "${X:-7}"}}',
        '\u0000\u0001',
        '{"pools": null}',
        'a: &a [*a]',
      ),
    );
    cases += await verdict(
      checks,
      'createPoolFromConfig with a generated YAML / JSON file',
      fc.asyncProperty(fileArb, fc.constantFrom('yaml', 'json'), async (text, ext) => {
        const file = join(dir, `pools.${ext}`);
        writeFileSync(file, text);
        const fdb = new DatabasePool({ configFile: file, logger: null, recovery: { enabled: false } });
        await outcome(async () => {
          // Only a pool that stays on the closed loopback port or a .invalid name is created.
          const { pools } = await loadConfigFile(file, { only: 'p' });
          if (JSON.stringify(safeConfig(pools.p, port)) !== JSON.stringify(pools.p)) return;
          await fdb.createPoolFromConfig('p');
        });
        await fdb.close({ drainTimeoutMs: 100 });
        return true;
      }),
      size,
    );
  } finally {
    restore();
    await db.close({ drainTimeoutMs: 100 });
    rmSync(dir, { recursive: true, force: true });
  }
  checks.add('no case hung', ledger.hung === 0, `${ledger.hung}`);
  return {
    name: 'bad input: configs',
    ...ledger.summary(),
    leaked: 0,
    figures: { 'generated cases': cases, operations: ledger.requests },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ pool ids

const idArb = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,70}$/),
  fc.constantFrom(
    '',
    ' ',
    'main',
    'MAIN',
    'main ',
    '../main',
    'main/metrics',
    '__proto__',
    'constructor',
    'toString',
    'a'.repeat(64),
    'a'.repeat(65),
    '%2e%2e',
    'main\u0000',
  ),
  fc.anything(),
);

/** Pool ids: every method taking one answers INVALID_CONFIG / POOL_NOT_FOUND / POOL_EXISTS or works. */
export async function poolIdProperties(ctx: ScenarioContext, size: PropertySize): Promise<ScenarioResult> {
  const started = performance.now();
  const port = await freePort();
  const checks = new Checks();
  const ledger = new CallLedger();
  const db = new DatabasePool({
    pools: { main: { connection: { host: '127.0.0.1', port }, min: 0, acquireTimeoutMs: 300 } },
    logger: null,
    recovery: { enabled: false },
  });
  const allowed = new Set(['INVALID_CONFIG', 'POOL_NOT_FOUND', 'POOL_EXISTS', 'CONNECTION_FAILED', 'ACQUIRE_TIMEOUT', 'CIRCUIT_OPEN']);
  const step = async (what: () => unknown) => {
    const r = await ledger.track(async () => what(), 5_000);
    if (r.hung) fail('hung');
    if (!r.ok && !(r.error instanceof DbPoolError && allowed.has(r.code!))) fail(`${r.code}: ${(r.error as Error)?.message}`);
    return r.ok;
  };
  let cases = 0;
  try {
    cases += await verdict(
      checks,
      'every method taking a pool id: a typed answer, the pools unchanged unless it was created',
      fc.asyncProperty(idArb, async (id) => {
        const before = db.listPools().join('|');
        const pid = id as string;
        await step(() => db.getMetrics(pid));
        await step(() => db.getPoolConfig(pid));
        await step(() => db.getPoolStatus(pid));
        await step(() => db.getSlowQueries(pid));
        await step(() => db.getConnectionDetails(pid));
        await step(() => db.cleanupPool(pid));
        await step(() => db.updatePoolConfig(pid, { max: 3 }));
        await step(() => db.query(pid, 'SELECT 1'));
        await step(() => db.acquire(pid).then((c) => c.release()));
        if (db.listPools().join('|') !== before) fail('pools changed');
        const created = await step(() => db.createPool(pid, { connection: { host: '127.0.0.1', port }, min: 0, acquireTimeoutMs: 300 }));
        if (created) {
          if (!db.listPools().includes(pid)) fail('created but not listed');
          if (pid !== 'main') await step(() => db.removePool(pid, { drainTimeoutMs: 100 }));
        }
        await step(() => db.removePool(pid === 'main' ? 'main-not-there' : pid));
        if (db.listPools().join('|') !== before) fail('pools changed');
        return true;
      }),
      size,
    );
  } finally {
    await db.close({ drainTimeoutMs: 100 });
  }
  checks.add('no call hung', ledger.hung === 0, `${ledger.hung}`);
  return {
    name: 'bad input: pool ids',
    ...ledger.summary(),
    leaked: 0,
    figures: { 'generated cases': cases },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ SQL text and values

/** Tokens SQL is generated from: harmless keywords, every quoting, comments, placeholders, junk. */
const SQL_TOKENS = [
  'SELECT',
  'FROM',
  'WHERE',
  'AND',
  'OR',
  'NOT',
  'NULL',
  'AS',
  'IN',
  'VALUES',
  'WITH',
  'UNION',
  'ALL',
  'CASE',
  'WHEN',
  'THEN',
  'END',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'EXPLAIN',
  'SHOW',
  'TABLE',
  'generate_series(1, 3)',
  'pg_sleep(0.001)',
  'now()',
  'count(*)',
  '1',
  '-1',
  '1.5e3',
  "'x'",
  "E'\\n'",
  "'",
  '"',
  '""',
  '$$',
  '$$a$$',
  '$t$b$t$',
  '$1',
  '$2',
  '$0',
  '$99',
  '?',
  ':x',
  '::int',
  '::text',
  '::jsonb',
  '(',
  ')',
  ',',
  ';',
  '*',
  '+',
  '-',
  '/',
  '=',
  '<>',
  '||',
  '[',
  ']',
  '{',
  '}',
  '--',
  '/*',
  '*/',
  '\n',
  ' ',
  "U&'\\0041'",
  "B'101'",
  "X'ff'",
  'pg_catalog.pg_class',
  'information_schema.tables',
  'ARRAY[1,2]',
  "'{1,2}'::int[]",
  '\'{"a":1}\'::json',
  'ROW(1,2)',
  'current_user',
];

/** Statements that could change the server or outlive the case are never generated (or let through). */
const HARMFUL =
  /\b(drop|alter|truncate|delete|update|insert|create|grant|revoke|copy|vacuum|analyze|cluster|reindex|lock|set|reset|listen|notify|unlisten|do|call|checkpoint|load|import|security|comment|prepare|execute|deallocate|declare|fetch|move|close|discard|savepoint|release|refresh|merge|terminate|cancel|reload|rotate|promote|lo_|dblink|pg_read|pg_write|pg_ls|pg_stat_reset|pg_advisory|txid|set_config|nextval|setval)/i;

const sqlArb = fc
  .oneof(
    { weight: 3, arbitrary: fc.array(fc.constantFrom(...SQL_TOKENS), { minLength: 1, maxLength: 12 }).map((ts) => ts.join(' ')) },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => `SELECT '${s}'`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        ';',
        ';;',
        'SELECT 1; SELECT 2',
        'BEGIN',
        'BEGIN; SELECT 1',
        'COMMIT',
        'SELECT 1/0',
        'SELECT $1',
        'SELECT $1::int',
        "SELECT 'a",
        'SELECT "a',
        'SELECT $$a',
        'SELECT /* a',
        '\u0000',
        "SELECT E'\\x00'",
        'select pg_sleep(5)',
        "SELECT repeat('x', 1000000)",
      ),
    },
  )
  .filter((s) => !HARMFUL.test(s));

const valueArb = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date(),
  fc.bigInt(),
  fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
  fc.array(fc.oneof(fc.integer(), fc.string(), fc.constant(null)), { maxLength: 4 }),
  fc.jsonValue(),
  fc.constantFrom<unknown>(Symbol('s'), () => 1, new Date(Number.NaN), Number.NaN, Number.POSITIVE_INFINITY, -0, { toPostgres: () => 'tp' }),
);

/**
 * SQL text and values: on a real pool, each generated statement with generated values ends in a
 * result, a server error with a SQLSTATE, QUERY_TIMEOUT, or a TypeError / RangeError for a value
 * that cannot be sent; the loan is always returned, the pool serves the next call, and the
 * server-side connection count stays the pool's own. Generated strings round-trip as data.
 */
export async function sqlProperties(ctx: ScenarioContext, size: PropertySize): Promise<ScenarioResult> {
  const started = performance.now();
  const checks = new Checks();
  const ledger = new CallLedger();
  const app = appName('prop-sql');
  const max = 3;
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: ctx.databaseUrl }, max, min: 0, queryTimeoutMs: 1_500, acquireTimeoutMs: 5_000, applicationName: app } },
    logger: null,
  });
  const admin = await adminClient(ctx.databaseUrl);
  let cases = 0;
  const after = async () => {
    const s = db.getPoolStatus('main');
    if (s.active !== 0 || s.waiting !== 0) fail(`loan kept: active ${s.active}, waiting ${s.waiting}`);
    const { rows } = await db.query<{ one: number }>('main', 'SELECT 1 AS one');
    if (rows[0]?.one !== 1) fail('the pool does not serve after the case');
  };
  try {
    cases += await verdict(
      checks,
      'generated SQL with generated values: a result or a typed error; the loan returned; the pool serves on',
      fc.asyncProperty(sqlArb, fc.array(valueArb, { maxLength: 3 }), async (sql, values) => {
        const r = await ledger.track(() => db.query('main', sql, values), 1_500 + 5_000 + 2_000);
        if (r.hung) fail('hung');
        if (!r.ok && !typedError(r.error)) fail(`untyped error ${r.code}`);
        await after();
        return true;
      }),
      size,
    );
    cases += await verdict(
      checks,
      'generated strings round-trip as bound values (a NUL byte is 22021)',
      fc.asyncProperty(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })), async (v) => {
        const r = await ledger.track(() => db.query<{ v: string }>('main', 'SELECT $1::text AS v', [v]), 10_000);
        if (v.includes('\u0000')) {
          if (r.ok || r.code !== '22021') fail(`NUL: ${r.code}`);
        } else if (!r.ok || (r as { value?: { rows: { v: string }[] } }).value?.rows[0]?.v !== v) fail(`did not round-trip: ${r.code ?? 'different value'}`);
        return true;
      }),
      size,
    );
  } finally {
    await ledger.drain();
  }
  const leaks = await accountLeaks(db, 'main', app, admin);
  await admin.end();
  checks.add(
    "server-side connections returned to the pool's own, and to none after close",
    leaks.matched && leaks.leakedAfterClose === 0,
    `server ${leaks.serverCount}, pool ${leaks.poolTotal}`,
  );
  checks.add('no call hung', ledger.hung === 0, `${ledger.hung}`);
  return {
    name: 'bad input: SQL and values',
    ...ledger.summary(),
    leaked: leaks.leakedWhileOpen + leaks.leakedAfterClose,
    figures: { 'generated cases': cases },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ admin request bodies

const TOKEN_LEN = 32;

/**
 * Admin requests with generated methods, paths, query strings, content types and bodies, with the
 * right token (and sometimes a wrong one): a documented status with a JSON error body, never a 500
 * or a hang; a refused request changes nothing; the endpoint keeps answering. The pool behind it
 * points at a closed loopback port, so accepted resizes and restarts touch no server.
 */
export async function adminBodyProperties(ctx: ScenarioContext, size: PropertySize): Promise<ScenarioResult> {
  const started = performance.now();
  const port = await freePort();
  const checks = new Checks();
  const ledger = new CallLedger();
  const token = 'p'.repeat(TOKEN_LEN);
  const db = new DatabasePool({
    pools: { main: { connection: { host: '127.0.0.1', port }, min: 0, acquireTimeoutMs: 300 } },
    logger: null,
    recovery: { enabled: false },
  });
  const admin = await startAdminServer(db, { port: 0, token, logger: null, maxBodyBytes: 4_096 });
  const statuses: Record<number, number> = {};
  const segment = fc.oneof(
    fc.constantFrom('main', 'nope', '', '%', '%2F', '..', 'pools', 'metrics', 'config', 'restart', 'cleanup'),
    fc.webSegment(),
    fc.string({ maxLength: 12 }).map(encodeURIComponent),
  );
  const pathArb = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '/healthz',
        '/readyz',
        '/health',
        '/pools',
        '/pools/main',
        '/pools/main/metrics',
        '/pools/main/query-metrics',
        '/pools/main/slow-queries',
        '/pools/main/connections',
        '/pools/main/diagnosis',
        '/pools/main/restart',
        '/pools/main/cleanup',
        '/pools/main/config',
        '/pools/main/config',
        '/pools/main/config',
      ),
    },
    fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`),
    fc
      .tuple(fc.constantFrom('metrics', 'query-metrics', 'slow-queries', 'connections', 'diagnosis', 'restart', 'cleanup', 'config'), segment)
      .map(([r, id]) => `/pools/${id}/${r}`),
  );
  const queryArb = fc.oneof(
    fc.constant(''),
    fc.webQueryParameters().map((q) => `?${q}`),
    fc.constantFrom('?limit=0', '?limit=-1', '?limit=1e3', '?limit=999999999999', '?limit=5&limit=6', '?limit=%zz'),
  );
  const patchish = fc.record(
    { min: fc.anything(), max: fc.anything(), acquireTimeoutMs: fc.anything(), connection: fc.anything(), drainTimeoutMs: fc.anything() },
    { requiredKeys: [] },
  );
  const bodyArb = fc.oneof(
    fc.constant(undefined),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    patchish.map((v) => {
      try {
        return JSON.stringify(v);
      } catch {
        return '{}';
      }
    }),
    fc.record({ max: fc.integer({ min: -5, max: 50 }), min: fc.integer({ min: -5, max: 5 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    fc.constantFrom(
      '{',
      '{"max": 1e400}',
      '{"__proto__": {"max": 1}}',
      '{"constructor": {"prototype": {"x": 1}}}',
      '[]',
      'null',
      '0',
      '"x"',
      '{"max": 3, "max": "a"}',
      'x'.repeat(5_000),
    ),
  );
  const ctArb = fc.constantFrom<string | undefined>(
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'application/x-www-form-urlencoded',
    undefined,
    'application/jsonx',
    'APPLICATION/JSON',
  );
  const methodArb = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('GET', 'POST', 'PATCH') },
    { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'OPTIONS', 'HEAD') },
  );
  // Half the time a method and path that go together, so bodies reach their validation.
  const targetArb = fc.oneof(
    fc.tuple(methodArb, pathArb),
    fc.constantFrom<[string, string]>(['PATCH', '/pools/main/config'], ['POST', '/pools/main/restart'], ['POST', '/pools/main/cleanup']),
  );
  const tokenArb = fc.oneof(
    { weight: 5, arbitrary: fc.constant(token) },
    { weight: 1, arbitrary: fc.constantFrom<string | undefined>(undefined, 'q'.repeat(TOKEN_LEN), '') },
  );
  let cases = 0;
  try {
    cases += await verdict(
      checks,
      'generated admin requests: a documented status and JSON error, no 500, no hang; refusals change nothing',
      fc.asyncProperty(targetArb, queryArb, bodyArb, ctArb, tokenArb, async ([method, path], query, body, ct, tok) => {
        const before = JSON.stringify(db.getPoolConfig('main'));
        const headers: Record<string, string> = {};
        if (tok !== undefined) headers.authorization = `Bearer ${tok}`;
        if (ct !== undefined && body !== undefined) headers['content-type'] = ct;
        const r = await ledger.track(async () => {
          const res = await fetch(`${admin.url}${path}${query}`, {
            method,
            headers,
            body: method === 'GET' || method === 'HEAD' ? undefined : body,
            signal: AbortSignal.timeout(20_000),
          });
          return { status: res.status, text: await res.text() };
        }, 25_000);
        if (r.hung) fail('hung');
        if (!r.ok) fail(`request failed: ${r.code}`);
        const { status, text } = (r as { value?: { status: number; text: string } }).value!;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (![200, 400, 401, 403, 404, 405, 413, 415, 503].includes(status)) fail(`status ${status}: ${text.slice(0, 200)}`);
        // /readyz answers 503 with the health report when a pool is down (it is: the port is closed).
        const readiness = status === 503 && /^\/readyz\/?$/.test(path);
        if (status >= 400 && method !== 'HEAD' && !readiness) {
          const json = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
          if (typeof json.error?.code !== 'string' || typeof json.error?.message !== 'string') fail(`error body ${text.slice(0, 200)}`);
          if (JSON.stringify(db.getPoolConfig('main')) !== before) fail('a refused request changed the config');
        }
        if (text.includes(token)) fail('the token was echoed');
        return true;
      }),
      size,
    );
    const alive = await fetch(`${admin.url}/healthz`).then(
      (r) => r.status,
      () => 0,
    );
    checks.add('the endpoint still answers', alive === 200, `${alive}`);
  } finally {
    await admin.close();
    await db.close({ drainTimeoutMs: 100 });
  }
  checks.add('no request hung', ledger.hung === 0, `${ledger.hung}`);
  return {
    name: 'bad input: admin requests',
    ...ledger.summary(),
    leaked: 0,
    figures: { 'generated cases': cases, statuses: JSON.stringify(statuses) },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

// ------------------------------------------------------------------ CLI arguments

/**
 * CLI arguments: generated argument lists for `db-pool` (run in process against a live endpoint
 * over a pool on a closed loopback port): exit code 0-3, never an internal error or a throw, the
 * token never printed, and the config unchanged unless the command succeeded. `--url` values come
 * from a fixed set (loopback, a closed port, malformed), `--out` files stay in a temporary directory.
 */
export async function cliProperties(ctx: ScenarioContext, size: PropertySize): Promise<ScenarioResult> {
  const started = performance.now();
  const port = await freePort();
  const deadPort = await freePort();
  const checks = new Checks();
  const ledger = new CallLedger();
  const token = 'c'.repeat(TOKEN_LEN);
  const db = new DatabasePool({
    pools: { main: { connection: { host: '127.0.0.1', port }, min: 0, acquireTimeoutMs: 300 } },
    logger: null,
    recovery: { enabled: false },
  });
  const admin = await startAdminServer(db, { port: 0, token, logger: null });
  const cwd = mkdtempSync(join(tmpdir(), 'db-pool-otel-cli-props-'));
  const codes: Record<number, number> = {};
  const commands = [
    'health',
    'pools',
    'config',
    'metrics',
    'slow-queries',
    'connections',
    'diagnose',
    'restart',
    'cleanup',
    'resize',
    'timeouts',
    'help',
    'nope',
  ];
  const numberish = fc.oneof(fc.integer({ min: -3, max: 40 }).map(String), fc.constantFrom('0', '1e3', '0x10', '', ' 5', '999999999999', 'NaN', '-0', '5.5'));
  const argArb = fc.oneof(
    fc.constantFrom(...commands),
    fc.constantFrom(
      'main',
      'nope',
      '',
      '--',
      '-',
      '--json',
      '--help',
      '-h',
      '--version',
      '--out',
      '--max',
      '--min',
      '--limit',
      '--query',
      '--acquire',
      '--drain-timeout',
      '--timeout',
      '--token',
      '--url',
      '--unknown',
    ),
    numberish,
    fc.string({ maxLength: 12 }).filter((s) => !s.startsWith('/') && !s.includes('..')),
  );
  const flagArb = fc.oneof(
    fc.tuple(
      fc.constant('--url'),
      fc.constantFrom(
        admin.url,
        `http://127.0.0.1:${deadPort}`,
        'not a url',
        'ftp://127.0.0.1/',
        `${admin.url}/extra`,
        `https://127.0.0.1:${deadPort}`,
        `http://u:pw@127.0.0.1:${deadPort}`,
      ),
    ),
    fc.tuple(fc.constant('--token'), fc.constantFrom(token, 'wrong-token-wrong-token', '', ' ')),
    fc.tuple(fc.constantFrom('--max', '--min', '--limit', '--query', '--acquire', '--drain-timeout', '--timeout'), numberish),
    fc.tuple(fc.constant('--out'), fc.oneof(fc.constantFrom('m.json', 'no/such/dir/m.json', ''), fc.stringMatching(/^[a-z0-9_-]{1,10}\.json$/))),
  );
  const argvArb = fc
    .tuple(fc.constantFrom(...commands), fc.array(fc.oneof(argArb, flagArb), { maxLength: 5 }))
    .map(([cmd, rest]) => [cmd, ...rest.flatMap((a) => (Array.isArray(a) ? a : [a]))]);
  let cases = 0;
  try {
    cases += await verdict(
      checks,
      'generated command lines: exit 0-3, no internal error, no token printed, config unchanged unless it succeeded',
      fc.asyncProperty(argvArb, async (argv) => {
        const before = JSON.stringify(db.getPoolConfig('main'));
        let out = '';
        const r = await ledger.track(
          () =>
            runCli(argv, {
              env: { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: token },
              stdout: (s) => void (out += s),
              stderr: (s) => void (out += s),
              cwd,
            }),
          30_000,
        );
        if (r.hung) fail('hung');
        if (!r.ok) fail(`run() threw: ${(r.error as Error)?.message}`);
        const code = (r as { value?: number }).value!;
        codes[code] = (codes[code] ?? 0) + 1;
        if (![0, 1, 2, 3].includes(code)) fail(`exit ${code}`);
        if (/internal error/i.test(out)) fail(`internal error: ${out.slice(0, 200)}`);
        if (out.includes(token)) fail('token printed');
        if (code !== 0 && JSON.stringify(db.getPoolConfig('main')) !== before) fail('a failed command changed the config');
        return true;
      }),
      size,
    );
  } finally {
    await admin.close();
    await db.close({ drainTimeoutMs: 100 });
    rmSync(cwd, { recursive: true, force: true });
  }
  checks.add('no command hung', ledger.hung === 0, `${ledger.hung}`);
  return {
    name: 'bad input: CLI arguments',
    ...ledger.summary(),
    leaked: 0,
    figures: { 'generated cases': cases, 'exit codes': JSON.stringify(codes) },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

/**
 * Found by the admin property, and fixed in the admin router: a request target starting with `//` was parsed
 * as scheme-relative, so `//x/pools` was served as `/pools` and `//a%5E/b` or `//[/pools` answered
 * 500 INTERNAL. Each must answer 400 or 404.
 */
export async function doubleSlashScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const port = await freePort();
  const token = 'd'.repeat(TOKEN_LEN);
  const checks = new Checks();
  const ledger = new CallLedger();
  const db = new DatabasePool({ pools: { main: { connection: { host: '127.0.0.1', port }, min: 0 } }, logger: null, recovery: { enabled: false } });
  const admin = await startAdminServer(db, { port: 0, token, logger: null });
  const { request } = await import('node:http');
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port: admin.port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
        .on('error', reject)
        .end();
    });
  try {
    for (const path of ['//a%5E/b', '//[/pools', '//x/pools']) {
      const r = await ledger.track(() => get(path), 10_000);
      const status = (r as { value?: number }).value;
      checks.add(`GET ${path} answers 400 or 404, not 500 or another route`, status === 400 || status === 404, `${status}`);
    }
  } finally {
    await admin.close();
    await db.close({ drainTimeoutMs: 100 });
  }
  return {
    name: 'admin: request target starting with //',
    ...ledger.summary(),
    leaked: 0,
    figures: {},
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

/**
 * Found by the CLI property, and fixed in the CLI and the admin router: `db-pool config ""` requested `/pools/`, served as
 * `/pools`, and ended in "internal error: Cannot convert undefined or null to object" (exit 1), or
 * printed the pool list with --json. It must be a usage error (exit 2).
 */
export async function cliEmptyPoolScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const port = await freePort();
  const token = 'e'.repeat(TOKEN_LEN);
  const checks = new Checks();
  const ledger = new CallLedger();
  const db = new DatabasePool({ pools: { main: { connection: { host: '127.0.0.1', port }, min: 0 } }, logger: null, recovery: { enabled: false } });
  const admin = await startAdminServer(db, { port: 0, token, logger: null });
  try {
    for (const argv of [
      ['config', ''],
      ['config', '', '--json'],
    ]) {
      let out = '';
      const r = await ledger.track(
        () =>
          runCli(argv, { env: { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: token }, stdout: (s) => void (out += s), stderr: (s) => void (out += s) }),
        10_000,
      );
      const code = (r as { value?: number }).value;
      checks.add(
        `db-pool ${argv.map((a) => JSON.stringify(a)).join(' ')}: a usage error, no internal error`,
        code === 2 && !/internal error/i.test(out),
        `exit ${code}: ${out.trim().slice(0, 160)}`,
      );
    }
  } finally {
    await admin.close();
    await db.close({ drainTimeoutMs: 100 });
  }
  return { name: 'CLI: empty pool id', ...ledger.summary(), leaked: 0, figures: {}, checks: checks.list, durationMs: performance.now() - started };
}
