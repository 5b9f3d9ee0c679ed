/**
 * Hostile and mistaken configs (issue 14, items 5, 6, 7, 11, 12): a password under an unexpected
 * key, one-slash URLs, broken and tagged config files, huge and deeply nested files, nested
 * `${...}` defaults and pool ids that are `Object.prototype` names. Each ends in an INVALID_CONFIG
 * error that names the problem and never quotes the secret — or, where the input is valid, in the
 * right value.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { DatabasePool, InvalidConfigError, loadConfigFile, type PoolConfig } from '../../src/index.js';
import { databaseUrl } from '../support/helpers.js';

const SECRET = 's3cr3t-PW';
const URL_WITH_SECRET = `postgres://app:${SECRET}@db.example/app`;

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'db-pool-hostile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeTemp(t: ExecutionContext, name: string, text: string): string {
  const file = join(tempDir(t), name);
  writeFileSync(file, text);
  return file;
}

/** The error of `fn` (sync or async), which must be INVALID_CONFIG. */
async function invalidConfig(t: ExecutionContext, fn: () => unknown): Promise<InvalidConfigError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  t.true(caught instanceof InvalidConfigError, `expected INVALID_CONFIG, got ${inspect(caught).slice(0, 300)}`);
  t.is((caught as InvalidConfigError).code, 'INVALID_CONFIG');
  return caught as InvalidConfigError;
}

/** Every way the error can be shown or serialized. */
function renderings(err: InvalidConfigError): string[] {
  return [err.message, String(err.stack), JSON.stringify(err), JSON.stringify(err.issues), inspect(err, { depth: 10, showHidden: true })];
}

function assertNoSecret(t: ExecutionContext, err: InvalidConfigError, secret = SECRET): void {
  for (const text of renderings(err)) t.false(text.includes(secret), `secret shown in: ${text.slice(0, 400)}`);
}

/** Process warnings emitted while `fn` runs (they are delivered on a later tick). */
async function warningsDuring(fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (w: Error) => seen.push(`${w.name}: ${w.message}`);
  process.on('warning', listener);
  try {
    await fn();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

// ------------------------------------------------------------------ item 5: secrets under other keys

const secretShapes: [string, Record<string, unknown>, string][] = [
  ['a URL given as connection', { connection: URL_WITH_SECRET }, 'pools.p.connection'],
  ['a URL given as backup', { connection: { host: 'h' }, backup: URL_WITH_SECRET }, 'pools.p.backup'],
  ['a URL given as a read replica', { connection: { host: 'h' }, readReplicas: [URL_WITH_SECRET] }, 'pools.p.readReplicas.0'],
  ['connection.url', { connection: { host: 'h', url: URL_WITH_SECRET } }, 'pools.p.connection.url'],
  ['misspelled Password', { connection: { host: 'h', Password: SECRET } }, 'pools.p.connection.Password'],
  ['misspelled passwd', { connection: { host: 'h', passwd: SECRET } }, 'pools.p.connection.passwd'],
  ['misspelled pass', { connection: { host: 'h', pass: SECRET } }, 'pools.p.connection.pass'],
  ['a top-level password', { connection: { host: 'h' }, password: SECRET }, 'pools.p.password'],
  ['ssl.passphrase', { connection: { host: 'h', ssl: { passphrase: SECRET } } }, 'pools.p.connection.ssl.passphrase'],
  ['a URL with no scheme', { connection: { connectionString: `app:${SECRET}@db.example/app` } }, 'pools.p.connection.connectionString'],
  ['a URL with no scheme, starting with //', { connection: { connectionString: `//app:${SECRET}@db.example/app` } }, 'pools.p.connection.connectionString'],
  [
    'a URL whose password is in the path',
    { connection: { connectionString: `mysql://app:123/${SECRET}@db.example/app` } },
    'pools.p.connection.connectionString',
  ],
  ['a URL in an object under an unknown key', { connection: { host: 'h' }, extra: { target: URL_WITH_SECRET } }, 'pools.p.extra'],
];

for (const [name, config, path] of secretShapes) {
  test(`INVALID_CONFIG hides a secret given as ${name}`, async (t) => {
    const err = await invalidConfig(t, () => new DatabasePool({ pools: { p: config as unknown as PoolConfig }, logger: null }));
    t.true(
      err.issues.some((i) => i.path === path),
      `an issue at ${path}; got ${err.issues.map((i) => i.path).join(', ')}`,
    );
    assertNoSecret(t, err);
  });
}

test('INVALID_CONFIG hides a numeric password under a misspelled key', async (t) => {
  const err = await invalidConfig(
    t,
    () => new DatabasePool({ pools: { p: { connection: { host: 'h', passwd: 86753099 } } as unknown as PoolConfig }, logger: null }),
  );
  assertNoSecret(t, err, '86753099');
});

test('INVALID_CONFIG still shows harmless values, so the problem can be found', async (t) => {
  const err = await invalidConfig(
    t,
    () =>
      new DatabasePool({
        pools: { p: { connection: { host: 'h', port: 70_000 }, max: 'twenty', applicationName: 'x'.repeat(64) } as unknown as PoolConfig },
        logger: null,
      }),
  );
  const byPath = Object.fromEntries(err.issues.map((i) => [i.path, i.value]));
  t.is(byPath['pools.p.connection.port'], 70_000);
  t.is(byPath['pools.p.max'], 'twenty');
  t.is(byPath['pools.p.applicationName'], 'x'.repeat(64));
});

test('a patch given as a URL string is not echoed', async (t) => {
  const db = new DatabasePool({ pools: { main: { connection: { host: '127.0.0.1', port: 1 }, min: 0 } }, logger: null, recovery: { enabled: false } });
  t.teardown(() => db.close({ drainTimeoutMs: 100 }));
  const err = await invalidConfig(t, () => db.updatePoolConfig('main', URL_WITH_SECRET as never));
  assertNoSecret(t, err);
});

test('a pool id that is a URL is not echoed', async (t) => {
  const db = new DatabasePool({ logger: null });
  t.teardown(() => db.close());
  const err = await invalidConfig(t, () => db.createPool(URL_WITH_SECRET, { connection: { host: 'h' }, min: 0 }));
  assertNoSecret(t, err);
});

test('YAML `connection: ${DATABASE_URL}` (a URL where an object belongs) does not echo the password', async (t) => {
  process.env.DBPOOL_HOSTILE_URL = URL_WITH_SECRET;
  t.teardown(() => delete process.env.DBPOOL_HOSTILE_URL);
  const file = writeTemp(t, 'pools.yaml', 'pools:\n  p:\n    connection: ${DBPOOL_HOSTILE_URL}\n    min: 0\n');
  const db = new DatabasePool({ configFile: file, logger: null });
  t.teardown(() => db.close());
  const err = await invalidConfig(t, () => db.createPoolFromConfig('p'));
  t.true(err.issues.some((i) => i.path === 'pools.p.connection'));
  assertNoSecret(t, err);
});

// ------------------------------------------------------------------ item 6: one-slash URLs

for (const url of [
  `postgres:/app:${SECRET}@db.example/app`,
  `postgres:app:${SECRET}@db.example/app`,
  `postgresql:/app:${SECRET}@db.example/app`,
  `POSTGRES:app:${SECRET}@db.example/app`,
]) {
  test(`a postgres URL without a // authority is refused: ${url.replace(SECRET, '<pw>')}`, async (t) => {
    const err = await invalidConfig(t, () => new DatabasePool({ pools: { p: { connection: { connectionString: url }, min: 0 } }, logger: null }));
    const issue = err.issues.find((i) => i.path === 'pools.p.connection.connectionString');
    t.truthy(issue);
    t.regex(issue!.rule, /\/\/|host/);
    assertNoSecret(t, err);
  });
}

test('postgres URLs with a host (or a host parameter) are still accepted', async (t) => {
  for (const url of [
    'postgres://app:pw@127.0.0.1:5432/app',
    'postgresql://app@db.example/app?sslmode=require',
    'postgres:///app?host=/var/run/postgresql',
    'postgres://%2Fvar%2Frun%2Fpostgresql/app',
  ]) {
    const db = new DatabasePool({ pools: { p: { connection: { connectionString: url }, min: 0 } }, logger: null, recovery: { enabled: false } });
    t.deepEqual(db.listPools(), ['p'], url);
    await db.close({ drainTimeoutMs: 100 });
  }
  const noHost = await invalidConfig(
    t,
    () => new DatabasePool({ pools: { p: { connection: { connectionString: 'postgres:///app' }, min: 0 } }, logger: null }),
  );
  t.regex(noHost.issues[0]!.rule, /host/);
});

// ------------------------------------------------------------------ item 7: parse errors and warnings

test('a JSON syntax error names line and column, not the file text', async (t) => {
  const file = writeTemp(t, 'pools.json', `{\n  "pools": {\n    "p": { "connection": { "host": "h", "password": ${SECRET} } }\n  }\n}\n`);
  const warnings = await warningsDuring(async () => {
    const err = await invalidConfig(t, () => loadConfigFile(file));
    t.regex(err.message, /JSON/);
    t.regex(err.message, /line 3, column 53/);
    assertNoSecret(t, err);
  });
  t.deepEqual(warnings, []);
});

test('a JSON error at the end of the file names the end', async (t) => {
  const file = writeTemp(t, 'pools.json', `{"pools": {"p": {"connection": {"password": "${SECRET}`);
  const err = await invalidConfig(t, () => loadConfigFile(file));
  t.regex(err.message, /line 1/);
  assertNoSecret(t, err);
});

test('a YAML custom tag (!secret) is an INVALID_CONFIG error with line and column, and no process warning', async (t) => {
  const file = writeTemp(t, 'pools.yaml', `pools:\n  p:\n    connection:\n      host: h\n      password: !secret ${SECRET}\n`);
  const warnings = await warningsDuring(async () => {
    const err = await invalidConfig(t, () => loadConfigFile(file));
    t.regex(err.message, /line 5, column 17/);
    t.regex(err.message, /tag/);
    assertNoSecret(t, err);
  });
  t.deepEqual(warnings, []);
});

test('a YAML error whose parser message quotes the source does not quote it', async (t) => {
  // yaml's own messages name the alias or tag they could not resolve, i.e. text of the file.
  for (const text of [
    `pools:\n  p:\n    connection:\n      password: *${SECRET}\n`,
    `pools:\n  p:\n    connection: { password: "${SECRET}\n`,
    `pools:\n  p:\n    connection:\n      password: !<tag:${SECRET}> x\n`,
  ]) {
    const file = writeTemp(t, 'pools.yaml', text);
    const warnings = await warningsDuring(async () => {
      const err = await invalidConfig(t, () => loadConfigFile(file));
      t.regex(err.message, /line \d+, column \d+/);
      assertNoSecret(t, err);
    });
    t.deepEqual(warnings, []);
  }
});

// ------------------------------------------------------------------ item 11: size, nesting, re-parsing, nested defaults

test('a config file over the size cap is refused, naming its size and the cap', async (t) => {
  const file = writeTemp(t, 'pools.yaml', `pools:\n  p:\n    connection:\n      host: h\n# ${'x'.repeat(1_100_000)}\n`);
  const started = performance.now();
  let thrown: unknown;
  try {
    await loadConfigFile(file);
  } catch (e) {
    thrown = e;
  }
  const ms = performance.now() - started;
  const err = await invalidConfig(t, () => {
    throw thrown;
  });
  t.regex(err.message, /1100\d{3} bytes/);
  t.regex(err.message, /1048576 bytes/);
  t.log(`refused in ${ms.toFixed(1)} ms`);
});

test('a large file parses in linear time, once: an unchanged file is not parsed again', async (t) => {
  // ~0.8 MB: one mapping of 34 000 keys (the shape whose duplicate-key check was quadratic).
  const keys = Array.from({ length: 34_000 }, (_, i) => `    k${i}: value-${i}`).join('\n');
  const file = writeTemp(t, 'pools.yaml', `pools:\n  p:\n    connection: { host: h }\n    min: 0\n  big:\n${keys}\n`);
  t.log(`file: ${statSync(file).size} bytes`);
  // CPU time, not wall time: the load is synchronous, and other processes may hold the CPUs meanwhile.
  const cpuMs = (since: NodeJS.CpuUsage) => {
    const d = process.cpuUsage(since);
    return (d.user + d.system) / 1000;
  };
  let started = process.cpuUsage();
  const first = await loadConfigFile(file, { only: 'p' });
  const firstMs = cpuMs(started);
  started = process.cpuUsage();
  const second = await loadConfigFile(file, { only: 'p' });
  const secondMs = cpuMs(started);
  t.log(`first load ${firstMs.toFixed(0)} ms of CPU, second ${secondMs.toFixed(1)} ms`);
  // Before: ~10 s (yaml's duplicate-key check compares every key with every other).
  t.true(firstMs < 4_000, `first load took ${firstMs.toFixed(0)} ms of CPU`);
  // The same parsed (frozen) document serves both calls.
  t.is(first.pools.big, second.pools.big);
  t.true(Object.isFrozen(second.pools.big));
  t.true(secondMs < firstMs / 5, `second load ${secondMs.toFixed(1)} ms vs first ${firstMs.toFixed(0)} ms`);
});

test('a changed file is parsed again, even with the same size and modification time', async (t) => {
  const file = writeTemp(t, 'pools.yaml', 'pools:\n  p:\n    connection: { host: aaaa }\n');
  t.is(((await loadConfigFile(file)).pools.p as { connection: { host: string } }).connection.host, 'aaaa');
  const { atime, mtime } = statSync(file);
  writeFileSync(file, 'pools:\n  p:\n    connection: { host: bbbb }\n');
  utimesSync(file, atime, mtime);
  t.is(((await loadConfigFile(file)).pools.p as { connection: { host: string } }).connection.host, 'bbbb');
});

// Serial: other tests' files must not push this one out of the cache of parsed files meanwhile.
test.serial('createPoolFromConfig on an unchanged file reuses the parse', async (t) => {
  const file = writeTemp(
    t,
    'pools.yaml',
    `pools:\n${Array.from({ length: 200 }, (_, i) => `  p${i}:\n    connection:\n      connectionString: \${DBPOOL_HOSTILE_DB}\n    min: 0\n`).join('')}`,
  );
  process.env.DBPOOL_HOSTILE_DB = databaseUrl();
  t.teardown(() => delete process.env.DBPOOL_HOSTILE_DB);
  const db = new DatabasePool({ configFile: file, logger: null });
  t.teardown(() => db.close());
  const a = await loadConfigFile(file, { only: 'p0' });
  for (let i = 0; i < 200; i++) await db.createPoolFromConfig(`p${i}`);
  t.is(db.listPools().length, 200);
  t.is((await loadConfigFile(file, { only: 'p0' })).pools.p1, a.pools.p1, 'still the first parse');
  t.is((await db.query<{ n: number }>('p7', 'SELECT 1 AS n')).rows[0]!.n, 1);
});

for (const [name, text] of [
  ['JSON arrays', `{"pools": {"p": ${'['.repeat(20_000)}${']'.repeat(20_000)}}}`],
  ['JSON objects', `{"pools": {"p": ${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}}`],
  ['YAML flow sequences', `pools:\n  p: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`],
  ['YAML flow mappings', `pools:\n  p: ${'{a: '.repeat(20_000)}1${'}'.repeat(20_000)}\n`],
  ['YAML anchors forming a cycle', 'pools: &a\n  p: *a\n'],
] as const) {
  test(`20 000-level nesting (${name}) is INVALID_CONFIG, not a RangeError`, async (t) => {
    const file = writeTemp(t, name.startsWith('JSON') ? 'pools.json' : 'pools.yaml', text);
    const err = await invalidConfig(t, () => loadConfigFile(file, { only: 'p' }));
    t.regex(err.message, /nested|deep/);
    const db = new DatabasePool({ configFile: file, logger: null });
    t.teardown(() => db.close());
    await invalidConfig(t, () => db.createPoolFromConfig('p'));
  });
}

test('nested defaults ${A:-${B}} resolve, or fail naming the variable — never a wrong value', async (t) => {
  const env = { SET_B: 'from-b', SET_C: 'from-c' };
  const file = writeTemp(
    t,
    'pools.yaml',
    [
      'pools:',
      '  p:',
      '    connection:',
      '      host: ${UNSET_A:-${SET_B}}',
      '      user: ${UNSET_A:-${UNSET_B:-plain}}',
      '      database: ${SET_C:-${SET_B}}',
      '      password: pre-${UNSET_A:-${UNSET_B:-${SET_C}}}-post',
      '    applicationName: ${UNSET_A:-}',
    ].join('\n'),
  );
  const { pools } = await loadConfigFile(file, { env });
  t.deepEqual((pools.p as { connection: unknown }).connection, { host: 'from-b', user: 'plain', database: 'from-c', password: 'pre-from-c-post' });
  t.is((pools.p as { applicationName: string }).applicationName, '');

  const unset = writeTemp(t, 'pools.yaml', 'pools:\n  p:\n    connection:\n      host: ${UNSET_A:-${UNSET_B}}\n');
  const err = await invalidConfig(t, () => loadConfigFile(unset, { env }));
  t.regex(err.message, /UNSET_B, which is not set/);
});

test('malformed ${...} references are INVALID_CONFIG, not left in the value', async (t) => {
  for (const value of ['${UNSET_A:-${UNSET_B}', '${UNSET_A', 'x${SET_B-default}', '${SET_B:=x}']) {
    const file = writeTemp(t, 'pools.yaml', `pools:\n  p:\n    connection:\n      host: "${value}"\n      password: ${SECRET}\n`);
    const err = await invalidConfig(t, () => loadConfigFile(file, { env: { SET_B: 'b' } }));
    t.true(
      err.issues.some((i) => i.path === 'pools.p.connection.host'),
      value,
    );
    assertNoSecret(t, err);
  }
  // A `$` or `{` that is not a reference stays as written.
  const file = writeTemp(t, 'pools.yaml', 'pools:\n  p:\n    connection:\n      host: h\n      password: "a$b{c}${"\n');
  t.is(((await loadConfigFile(file)).pools.p as { connection: { password: string } }).connection.password, 'a$b{c}${');
});

test('references nested too deeply are INVALID_CONFIG, not a RangeError', async (t) => {
  const file = writeTemp(t, 'pools.yaml', `pools:\n  p:\n    connection:\n      host: "${'${A:-'.repeat(20_000)}x${'}'.repeat(20_000)}"\n`);
  const err = await invalidConfig(t, () => loadConfigFile(file, { env: {} }));
  t.regex(err.message, /nested/);
});

// ------------------------------------------------------------------ item 12: Object.prototype names

test('createPoolFromConfig with an Object.prototype name says the pool is not defined', async (t) => {
  const file = writeTemp(t, 'pools.yaml', 'pools:\n  main:\n    connection: { host: h }\n    min: 0\n');
  const db = new DatabasePool({ configFile: file, logger: null });
  t.teardown(() => db.close());
  for (const id of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', 'isPrototypeOf']) {
    const err = await invalidConfig(t, () => db.createPoolFromConfig(id));
    t.regex(err.message, new RegExp(`pools\\.${id}: is not defined in .*it has: main`), id);
  }
  t.deepEqual(db.listPools(), []);
});

test('a pool named like an Object.prototype member is found; __proto__ keys are data, never a prototype', async (t) => {
  // Written by hand: in a JS object literal `__proto__` would set the prototype, not a key.
  const file = writeTemp(
    t,
    'pools.json',
    `{"pools": {
    "constructor": {"connection": {"host": "127.0.0.1", "port": 1}, "min": 0},
    "q": {"connection": {"host": "127.0.0.1", "port": 1, "__proto__": {"host": "elsewhere"}}, "min": 0}
  }}`,
  );
  const { pools } = await loadConfigFile(file);
  t.deepEqual(Object.keys(pools).sort(), ['constructor', 'q']);
  const db = new DatabasePool({ configFile: file, logger: null, recovery: { enabled: false } });
  t.teardown(() => db.close({ drainTimeoutMs: 100 }));
  await db.createPoolFromConfig('constructor');
  t.deepEqual(db.listPools(), ['constructor']);
  // `__proto__` inside a connection is an unknown key, not a hidden prototype that supplies `host`.
  const err = await invalidConfig(t, () => db.createPoolFromConfig('q'));
  t.true(
    err.issues.some((i) => i.path === 'pools.q.connection.__proto__'),
    err.message,
  );

  // A pool id `__proto__` is not a valid pool id: the file is refused, and nothing is polluted.
  const proto = writeTemp(t, 'pools.json', '{"pools": {"__proto__": {"polluted": true}, "main": {"connection": {"host": "h"}}}}');
  const bad = await invalidConfig(t, () => loadConfigFile(proto));
  t.true(
    bad.issues.some((i) => i.path === 'pools.__proto__' && /not a valid pool id/.test(i.rule)),
    bad.message,
  );
  t.is(({} as Record<string, unknown>).polluted, undefined);
});
