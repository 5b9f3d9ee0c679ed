import test from 'ava';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { DatabasePool, InvalidConfigError, POOL_DEFAULTS, type PoolConfig } from '../../src/index.js';
import { livePoolStatuses } from '../../src/pool/registry.js';
import { databaseUrl, newDb } from '../support/helpers.js';

const SECRET = 'S3cr3t-Pa55word-xyz';
const conn = { host: '127.0.0.1', port: 5432, user: 'app', password: SECRET, database: 'app' };

function invalid(t: import('ava').ExecutionContext, config: unknown): InvalidConfigError {
  const err = t.throws(() => new DatabasePool({ pools: { p: config as PoolConfig } }));
  t.true(err instanceof InvalidConfigError, String(err));
  return err as InvalidConfigError;
}

// One row per rule: the setting, a bad value, and what the error must say.
const rules: [string, Record<string, unknown>, string, RegExp][] = [
  ['connection missing', {}, 'pools.p.connection', /required/],
  ['connection without host or URL', { connection: { user: 'x' } }, 'pools.p.connection', /connectionString or host/],
  ['connectionString not a postgres URL', { connection: { connectionString: 'mysql://x' } }, 'pools.p.connection.connectionString', /postgres:\/\//],
  ['port out of range', { connection: { host: 'h', port: 70000 } }, 'pools.p.connection.port', /from 1 to 65535/],
  ['password not a string', { connection: { host: 'h', password: 1234 } }, 'pools.p.connection.password', /string/],
  ['ssl wrong type', { connection: { host: 'h', ssl: 'yes' } }, 'pools.p.connection.ssl', /TLS/],
  ['unknown connection key', { connection: { host: 'h', hots: 'x' } }, 'pools.p.connection.hots', /not a known setting/],
  ['max zero', { connection: conn, max: 0 }, 'pools.p.max', /from 1 to 10000/],
  ['max fractional', { connection: conn, max: 2.5 }, 'pools.p.max', /whole number/],
  ['min negative', { connection: conn, min: -1 }, 'pools.p.min', /from 0/],
  ['min above max', { connection: conn, min: 5, max: 3 }, 'pools.p.min', /must not exceed max \(3\)/],
  ['acquireTimeoutMs zero', { connection: conn, acquireTimeoutMs: 0 }, 'pools.p.acquireTimeoutMs', /milliseconds/],
  ['queryTimeoutMs string', { connection: conn, queryTimeoutMs: '5s' }, 'pools.p.queryTimeoutMs', /number/],
  ['idleTimeoutMs negative', { connection: conn, idleTimeoutMs: -5 }, 'pools.p.idleTimeoutMs', /from 0/],
  ['maxLifetimeMs too short', { connection: conn, maxLifetimeMs: 10 }, 'pools.p.maxLifetimeMs', /at least 1000/],
  ['maxWaitingClients negative', { connection: conn, maxWaitingClients: -1 }, 'pools.p.maxWaitingClients', /from 0/],
  ['validateOnBorrow not boolean', { connection: conn, validateOnBorrow: 'yes' }, 'pools.p.validateOnBorrow', /true or false/],
  [
    'leakReclaimMs below detection',
    { connection: conn, leakDetectionThresholdMs: 5000, leakReclaimMs: 1000 },
    'pools.p.leakReclaimMs',
    /at least leakDetectionThresholdMs/,
  ],
  ['slowQueryThresholdMs negative', { connection: conn, slowQueryThresholdMs: -1 }, 'pools.p.slowQueryThresholdMs', /from 0/],
  ['backup wrong type', { connection: conn, backup: 5 }, 'pools.p.backup', /pool id or a connection/],
  ['applicationName too long', { connection: conn, applicationName: 'x'.repeat(64) }, 'pools.p.applicationName', /63 characters/],
  ['readReplicas not a list', { connection: conn, readReplicas: 'h2' }, 'pools.p.readReplicas', /list/],
  ['typo in a setting', { connection: conn, maxx: 3 }, 'pools.p.maxx', /did you mean "max"/],
];

for (const [name, config, path, rule] of rules) {
  test(`config rule: ${name}`, (t) => {
    const err = invalid(t, config);
    t.is(err.code, 'INVALID_CONFIG');
    const issue = err.issues.find((i) => i.path === path);
    t.truthy(issue, `an issue at ${path}; got ${err.issues.map((i) => i.path).join(', ')}`);
    t.regex(issue!.rule, rule);
    t.is(err.issues.length, 1, 'one issue per problem');
    t.false(err.message.includes(SECRET));
  });
}

test('every problem is reported at once, each with path, value and rule', (t) => {
  const err = invalid(t, { connection: { host: 'h', password: 99 }, max: -1, queryTimeoutMs: 'x' });
  t.deepEqual(err.issues.map((i) => i.path).sort(), ['pools.p.connection.password', 'pools.p.max', 'pools.p.queryTimeoutMs']);
  t.deepEqual(err.issues.find((i) => i.path === 'pools.p.max')!.value, -1);
  t.is(err.issues.find((i) => i.path === 'pools.p.connection.password')!.value, '[REDACTED]');
});

test('an invalid config changes nothing: no pool is created, existing ones are untouched', async (t) => {
  const before = [...livePoolStatuses()].length;
  t.throws(() => new DatabasePool({ pools: { good: { connection: { connectionString: databaseUrl() } }, bad: { connection: conn, max: 0 } } }), {
    instanceOf: InvalidConfigError,
  });
  t.is([...livePoolStatuses()].length, before);

  const db = newDb(t, { main: { max: 3 } });
  const cfgBefore = db.getPoolConfig('main');
  await t.throwsAsync(db.createPool('other', { connection: conn, min: 9, max: 2 }), { instanceOf: InvalidConfigError });
  t.deepEqual(db.listPools(), ['main']);
  t.deepEqual(db.getPoolConfig('main'), cfgBefore);
});

test('defaults are filled in and documented values hold', async (t) => {
  const db = newDb(t, { main: {} });
  const cfg = db.getPoolConfig('main');
  for (const [k, v] of Object.entries(POOL_DEFAULTS)) t.is((cfg as unknown as Record<string, unknown>)[k], v, k);
  t.is(cfg.applicationName, 'db-pool-otel:main');
  const small = newDb(t, { tiny: { max: 1 } });
  t.is(small.getPoolConfig('tiny').min, 1, 'default min never exceeds max');
});

test('createPoolFromConfig reads YAML and JSON with ${ENV} interpolation and defaults', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'db-pool-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  process.env.DBPOOL_TEST_URL = databaseUrl();
  process.env.DBPOOL_TEST_MAX = '4';
  const yamlFile = join(dir, 'pools.yaml');
  writeFileSync(
    yamlFile,
    [
      'pools:',
      '  primary:',
      '    connection:',
      '      connectionString: ${DBPOOL_TEST_URL}',
      '    max: ${DBPOOL_TEST_MAX}',
      '    idleTimeoutMs: ${DBPOOL_TEST_UNSET:-15000}',
      '  broken:',
      '    connection:',
      '      host: db',
      '      password: ${DBPOOL_TEST_NOT_SET}',
    ].join('\n'),
  );
  const db = new DatabasePool({ configFile: yamlFile });
  t.teardown(() => db.close());
  await db.createPoolFromConfig('primary');
  const cfg = db.getPoolConfig('primary');
  t.is(cfg.max, 4);
  t.is(cfg.idleTimeoutMs, 15_000);
  t.is((await db.query<{ n: number }>('primary', 'SELECT 1 AS n')).rows[0]!.n, 1);

  const missingVar = await t.throwsAsync(db.createPoolFromConfig('broken'), { instanceOf: InvalidConfigError });
  t.regex(missingVar!.message, /DBPOOL_TEST_NOT_SET, which is not set/);
  const notDefined = await t.throwsAsync(db.createPoolFromConfig('nope'), { instanceOf: InvalidConfigError });
  t.regex(notDefined!.message, /is not defined in .*it has: primary, broken/);

  const jsonFile = join(dir, 'pools.json');
  writeFileSync(jsonFile, JSON.stringify({ pools: { j: { connection: { connectionString: '${DBPOOL_TEST_URL}' }, max: 2 } } }));
  const db2 = new DatabasePool({ configFile: jsonFile });
  t.teardown(() => db2.close());
  await db2.createPoolFromConfig('j');
  t.is(db2.getPoolConfig('j').max, 2);

  const noFile = new DatabasePool({ configFile: join(dir, 'absent.yaml') });
  await t.throwsAsync(noFile.createPoolFromConfig('x'), { message: /file does not exist/ });
  writeFileSync(join(dir, 'bad.yaml'), 'pools: [unclosed');
  await t.throwsAsync(new DatabasePool({ configFile: join(dir, 'bad.yaml') }).createPoolFromConfig('x'), { message: /not valid YAML/ });
});

test('the password never appears in errors, configs, dumps or status', async (t) => {
  const url = new URL(databaseUrl());
  url.password = SECRET;
  const db = new DatabasePool({
    pools: {
      wrongpw: { connection: { connectionString: url.toString() }, min: 0, acquireTimeoutMs: 3000 },
      parts: { connection: { ...conn, host: '127.0.0.1', port: 1 }, min: 0, acquireTimeoutMs: 1000 },
    },
  });
  t.teardown(() => db.close({ drainTimeoutMs: 500 }));
  const seen: string[] = [];
  const record = (v: unknown) => seen.push(typeof v === 'string' ? v : inspect(v, { depth: 8, showHidden: true }), JSON.stringify(v) ?? '');

  // Errors from a failed login (where the server checks passwords) and from an unreachable host.
  const recordError = (err: unknown) => {
    record(err);
    record((err as Error).stack);
    record((err as Error).cause);
  };
  const login = await db.query('wrongpw', 'SELECT 1').then(
    () => undefined,
    (e: unknown) => e,
  );
  if (login) {
    t.is((login as { code?: string }).code, 'CONNECTION_FAILED');
    recordError(login);
  } else {
    // A trust server ignores the password: the failed-login path is scanned by reliability-server (own server).
    t.log('the server does not check passwords (trust): no failed-login error to scan');
  }
  recordError(await t.throwsAsync(db.query('parts', 'SELECT 1'), { code: 'CONNECTION_FAILED' }));
  for (const id of ['wrongpw', 'parts']) {
    record(db.getPoolStatus(id));
    record(db.getPoolConfig(id));
  }
  // Config errors that name the password field.
  for (const bad of [
    { connection: { ...conn, port: 0 } },
    { connection: { connectionString: `postgres://u:${SECRET}@h:99999/d` } },
    { connection: { ...conn, password: [SECRET] } },
  ]) {
    const e = t.throws(() => new DatabasePool({ pools: { p: bad as PoolConfig } }), { instanceOf: InvalidConfigError });
    record(e);
    record(e?.stack);
  }
  record(db);
  record(JSON.stringify(db));
  t.true(seen.length > 10);
  for (const text of seen) t.false(text.includes(SECRET), `secret leaked in: ${text.slice(0, 200)}`);
  t.is(db.getPoolConfig('parts').connection.password, '[REDACTED]');
  t.regex(db.getPoolConfig('wrongpw').connection.connectionString!, /\[REDACTED\]@/);
});
