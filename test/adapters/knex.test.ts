/**
 * knex 3.3 on our pool (`knexConfig`): knex's features on real PostgreSQL, and the traps of knex as
 * a pool consumer (double release of stream connections, releases that must never reject,
 * disposal, cancel connections).
 */
import test, { type ExecutionContext } from 'ava';
import knex, { type Knex } from 'knex';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import pg from 'pg';
import { knexConfig, type KnexConfigOptions } from '../../src/adapters/knex-config.js';
import { pgPool } from '../../src/adapters/pg-pool.js';
import { AcquireTimeoutError, type PoolConfig } from '../../src/index.js';
import { nextTurn, recordChannels, tempSchema } from '../support/adapter-helpers.js';
import { adminClient, databaseUrl, eventually, newDb, serverConnections, uniqueName } from '../support/helpers.js';

/** A knex instance on pool `poolId` of a fresh DatabasePool, destroyed when the test ends. */
function setup(t: ExecutionContext, pool: Partial<PoolConfig> = {}, options: KnexConfigOptions = {}, extra: Partial<Knex.Config> = {}) {
  const poolId = uniqueName('knex');
  const db = newDb(t, { [poolId]: { min: 0, ...pool } });
  const k = knex({ ...knexConfig(db, poolId, options), ...extra });
  t.teardown(() => k.destroy());
  return { db, poolId, k };
}

interface KnexClientInternals {
  acquireConnection(): Promise<pg.Client & Record<string, unknown>>;
  releaseConnection: (c: unknown) => Promise<void>;
  version?: string;
  connectionSettings: Record<string, unknown>;
}
const internals = (k: Knex): KnexClientInternals => k.client as unknown as KnexClientInternals;

test('query builder: create, insert, select, update and delete', async (t) => {
  const schema = await tempSchema(t);
  const { k } = setup(t);
  await k.schema.withSchema(schema).createTable('users', (tb) => {
    tb.increments('id');
    tb.string('name').notNullable();
    tb.integer('age');
  });
  const users = () => k.withSchema(schema).table('users');
  const inserted = await users()
    .insert([
      { name: 'ada', age: 36 },
      { name: 'alan', age: 41 },
      { name: 'grace', age: 85 },
    ])
    .returning(['id', 'name']);
  t.is(inserted.length, 3);
  t.deepEqual(await users().where('age', '>', 40).orderBy('name').pluck('name'), ['alan', 'grace']);
  t.is(await users().where({ name: 'ada' }).update({ age: 37 }), 1);
  t.like(await users().where({ name: 'ada' }).first(), { name: 'ada', age: 37 });
  t.is(await users().where({ name: 'alan' }).del(), 1);
  const [{ count }] = (await users().count('* as count')) as [{ count: string }];
  t.is(Number(count), 2);
});

test('raw queries: bindings, named bindings, and pg result objects', async (t) => {
  const { k } = setup(t);
  const res = (await k.raw('select ?::int + ?::int as sum, ? as word', [2, 3, 'x'])) as pg.QueryResult;
  t.is(res.command, 'SELECT');
  t.deepEqual(res.rows, [{ sum: 5, word: 'x' }]);
  const named = (await k.raw('select :a::text as a', { a: 'hello' })) as pg.QueryResult;
  t.is(named.rows[0].a, 'hello');
});

test('transactions: commit keeps rows, a throw or rollback() removes them', async (t) => {
  const schema = await tempSchema(t);
  const { k } = setup(t, { max: 2 });
  await k.schema.withSchema(schema).createTable('accounts', (tb) => {
    tb.integer('id').primary();
    tb.integer('balance');
  });
  const accounts = (q: Knex | Knex.Transaction) => q.withSchema(schema).table('accounts');
  await k.transaction(async (trx) => {
    await accounts(trx).insert({ id: 1, balance: 100 });
    await accounts(trx).insert({ id: 2, balance: 0 });
  });
  await t.throwsAsync(
    k.transaction(async (trx) => {
      await accounts(trx).where({ id: 1 }).decrement('balance', 30);
      await accounts(trx).insert({ id: 3, balance: 1 });
      throw new Error('changed my mind');
    }),
    { message: 'changed my mind' },
  );
  const trx = await k.transaction();
  await accounts(trx).insert({ id: 4, balance: 4 });
  await trx.rollback();
  const rows = await accounts(k).orderBy('id');
  t.deepEqual(rows, [
    { id: 1, balance: 100 },
    { id: 2, balance: 0 },
  ]);
});

test('migrations: latest and rollback from a migrations directory', async (t) => {
  const schema = await tempSchema(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'knex-migrations-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    path.join(dir, '20240101000000_create_notes.cjs'),
    `exports.up = (knex) => knex.schema.createTable('notes', (t) => { t.increments('id'); t.text('body').notNullable(); });
exports.down = (knex) => knex.schema.dropTable('notes');
`,
  );
  writeFileSync(
    path.join(dir, '20240102000000_add_author.cjs'),
    `exports.up = (knex) => knex.schema.alterTable('notes', (t) => { t.string('author'); });
exports.down = (knex) => knex.schema.alterTable('notes', (t) => { t.dropColumn('author'); });
`,
  );
  const { k } = setup(t, {}, { searchPath: [schema] }, { migrations: { directory: dir, schemaName: schema, loadExtensions: ['.cjs'] } });
  const [batch, log] = (await k.migrate.latest()) as [number, string[]];
  t.is(batch, 1);
  t.deepEqual(log, ['20240101000000_create_notes.cjs', '20240102000000_add_author.cjs']);
  t.is(await k.migrate.currentVersion(), '20240102000000');
  await k('notes').insert({ body: 'hi', author: 'me' });
  t.true(await k.schema.withSchema(schema).hasColumn('notes', 'author'));
  await k.migrate.rollback();
  t.false(await k.schema.withSchema(schema).hasTable('notes'));
  t.is(await k.migrate.currentVersion(), 'none');
});

test('a stream delivers every row', async (t) => {
  const schema = await tempSchema(t);
  const { db, poolId, k } = setup(t, { max: 1 });
  await k.raw(`create table "${schema}".numbers as select generate_series(1, 2000) as n`);
  const rows: { n: number }[] = [];
  for await (const row of k.withSchema(schema).table('numbers').select('n').orderBy('n').stream()) rows.push(row as { n: number });
  t.is(rows.length, 2000);
  t.is(rows[1999]!.n, 2000);
  t.true(await eventually(() => db.getPoolStatus(poolId).active === 0));
});

test("knex #6288: a stream's second release comes after the next borrower got the connection, and takes nothing from it", async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  const client = internals(k);
  const release = client.releaseConnection.bind(client);
  let releases = 0;
  client.releaseConnection = (c: unknown) => {
    releases++;
    return release(c);
  };
  // Ten rows fit in the stream's buffers: the query ends (first release) while nobody has read
  // them yet; the stream closes (second release) only once they are read.
  const stream = k.raw('select generate_series(1, 10) as n').stream();
  // Wait for knex's acquire (a count, not the short-lived `active === 1`: the query may end first).
  t.true(await eventually(() => db.getDetailedMetrics(poolId).totals.acquires >= 1));
  const loan = await db.acquire(poolId);
  t.is(releases, 1, 'the borrower got the connection after the first release');
  const rows: unknown[] = [];
  for await (const row of stream) rows.push(row);
  // The second release follows the stream's close, a turn or more after the last row.
  t.true(await eventually(() => releases >= 2), 'knex released the stream connection a second time');
  t.is(rows.length, 10);
  t.is(releases, 2, 'knex released the stream connection a second time');
  t.false(loan.released, 'the borrower still holds its loan');
  t.like(db.getPoolStatus(poolId), { total: 1, active: 1, idle: 0 });
  const { rows: r } = await loan.query<{ one: number }>('select 1 as one');
  t.is(r[0]!.one, 1);
  loan.release();
  t.like(db.getPoolStatus(poolId), { active: 0 });
});

test('a stream destroyed before its end gives its connection back', async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  const stream = k.raw('select generate_series(1, 100000) as n').stream({ batchSize: 50 });
  await new Promise<void>((resolve) => {
    stream.once('data', () => {
      stream.destroy();
      resolve();
    });
  });
  t.true(await eventually(() => db.getPoolStatus(poolId).active === 0, 3_000), 'connection returned');
  const res = (await k.raw('select 2 as two')) as pg.QueryResult;
  t.is(res.rows[0].two, 2);
});

test('.connection(c).stream(): the connection stays with whoever acquired it', async (t) => {
  const { db, poolId, k } = setup(t, { max: 2 });
  const c = await internals(k).acquireConnection();
  const rows = await new Promise<unknown[]>((resolve, reject) => {
    const got: unknown[] = [];
    const s = k.raw('select generate_series(1, 10) as n').connection(c).stream();
    s.on('data', (r) => got.push(r));
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
  await nextTurn(20);
  t.is(rows.length, 10);
  t.is(db.getPoolStatus(poolId).active, 1, 'still lent to its holder');
  const res = (await c.query('select 3 as three')) as pg.QueryResult;
  t.is(res.rows[0].three, 3);
  await internals(k).releaseConnection(c);
  t.is(db.getPoolStatus(poolId).active, 0);
});

test('a failing query rejects with the server error; the connection is reused', async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  const pid = ((await k.raw('select pg_backend_pid() as pid')) as pg.QueryResult).rows[0].pid as number;
  const err = await t.throwsAsync(k.raw('select * from no_such_table_here'));
  t.is((err as Error & { code?: string }).code, '42P01');
  t.regex(err!.message, /no_such_table_here/);
  await t.throwsAsync(k.raw('selec 1'), { message: /syntax error/ });
  const again = ((await k.raw('select pg_backend_pid() as pid')) as pg.QueryResult).rows[0].pid as number;
  t.is(again, pid, 'same connection: a statement error does not cost the connection');
  t.like(db.getPoolStatus(poolId), { total: 1, active: 0 });
});

test('200 concurrent queries through a pool of max 5', async (t) => {
  const app = uniqueName('knex200');
  const admin = await adminClient(t);
  const { db, poolId, k } = setup(t, { max: 5, applicationName: app });
  let maxTotal = 0;
  let maxServer = 0;
  const sampler = setInterval(() => {
    maxTotal = Math.max(maxTotal, db.getPoolStatus(poolId).total);
  }, 5);
  const started = performance.now();
  const queries = Array.from({ length: 200 }, (_, i) =>
    k.raw('select ?::int as i, pg_sleep(0.002)', [i]).then((r) => (r as pg.QueryResult).rows[0].i as number),
  );
  maxServer = await serverConnections(admin, app);
  const results = await Promise.all(queries);
  const elapsed = performance.now() - started;
  clearInterval(sampler);
  t.deepEqual(
    results,
    Array.from({ length: 200 }, (_, i) => i),
  );
  t.true(maxTotal <= 5, `pool never above max (saw ${maxTotal})`);
  t.true(maxServer <= 5, `server saw at most 5 connections (saw ${maxServer})`);
  t.like(db.getPoolStatus(poolId), { active: 0, waiting: 0 });
  t.log(`200 queries, max 5 connections: ${Math.round(elapsed)} ms`);
});

test('acquire timeout: a KnexTimeoutError whose message carries the pool state', async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  // Opened with the default timeout: under load a first connect can take longer than the short one tested.
  const held = await db.acquire(poolId);
  await db.updatePoolConfig(poolId, { acquireTimeoutMs: 1_000 });
  t.teardown(() => held.release());
  const started = Date.now();
  const err = await t.throwsAsync(k.raw('select 42'), { instanceOf: knex.KnexTimeoutError });
  t.true(Date.now() - started < 3_000);
  t.regex(err!.message, /^Knex: Timeout acquiring a connection\./);
  t.regex(err!.message, new RegExp(`Acquire timeout: no connection from pool "${poolId}" within 1000 ms \\(total 1, active 1, idle 0, waiting 1, max 1\\)`));
  t.regex(err!.message, /Are you missing a \.transacting\(trx\) call\?/);
  const e = err as Error & { code?: string; sql?: string; active?: number; cause?: unknown };
  t.is(e.code, 'ACQUIRE_TIMEOUT');
  t.is(e.active, 1);
  t.true(e.cause instanceof AcquireTimeoutError);
  t.is(e.sql, 'select 42', 'knex attaches the query to its timeout errors');
});

test("knex's acquireConnectionTimeout applies when it is shorter than the pool's", async (t) => {
  const { db, poolId, k } = setup(t, { max: 1, acquireTimeoutMs: 10_000 }, {}, { acquireConnectionTimeout: 200 });
  const held = await db.acquire(poolId);
  const started = Date.now();
  const err = await t.throwsAsync(k.raw('select 1'), { instanceOf: knex.KnexTimeoutError });
  t.true(Date.now() - started < 1_500);
  t.regex(err!.message, /Acquire timeout: no connection from pool "[^"]+" within 200 ms/);
  held.release();
  // The abandoned request is served later and handed straight back.
  t.true(await eventually(() => db.getPoolStatus(poolId).active === 0 && db.getPoolStatus(poolId).waiting === 0));
});

test('knex.destroy() lets go of the pool without closing it', async (t) => {
  const { db, poolId, k } = setup(t);
  await k.raw('select 1');
  await k.destroy();
  t.false(db.getPoolStatus(poolId).closed);
  const { rows } = await db.query<{ ok: number }>(poolId, 'select 1 as ok');
  t.is(rows[0]!.ok, 1);
  await t.throwsAsync(k.raw('select 1'), { message: /Unable to acquire a connection/ });
  k.initialize();
  t.truthy(((await k.raw('select 1 as x')) as pg.QueryResult).rows[0]);
});

test('searchPath: set on the connection, and reset for a knex without one on the same connection', async (t) => {
  const schema = await tempSchema(t);
  const { db, poolId, k } = setup(t, { max: 1 }, { searchPath: [schema, 'public'] });
  const plain = knex(knexConfig(db, poolId));
  t.teardown(() => plain.destroy());
  await k.schema.createTable('things', (tb) => tb.integer('id'));
  await k('things').insert({ id: 7 });
  t.deepEqual(await k('things').pluck('id'), [7]);
  t.deepEqual(await k.withSchema(schema).table('things').pluck('id'), [7]);
  const show = async (kx: Knex) => ((await kx.raw('show search_path')) as pg.QueryResult).rows[0].search_path as string;
  t.is(await show(k), `${schema}, public`);
  t.is(await show(plain), '"$user", public');
  t.is(await show(k), `${schema}, public`);
});

test('afterCreate runs once per physical connection; when it fails, the acquire fails and the connection is closed', async (t) => {
  const { db, poolId, k } = setup(
    t,
    { max: 2 },
    {
      afterCreate: (conn, done) => {
        calls++;
        conn.query("SET TIME ZONE 'Pacific/Chatham'", (err: Error | null) => done(err, conn));
      },
    },
  );
  let calls = 0;
  const uids = new Set<string>();
  k.on('query', (q: { __knexUid?: string }) => uids.add(String(q.__knexUid)));
  const zones = await Promise.all(Array.from({ length: 20 }, () => k.raw('show timezone').then((r) => (r as pg.QueryResult).rows[0].TimeZone as string)));
  t.true(zones.every((z) => z === 'Pacific/Chatham'));
  t.is(calls, uids.size, 'once per physical connection knex used');
  t.true(calls >= 1 && calls <= 2);
  await Promise.all(Array.from({ length: 20 }, () => k.raw('select 1')));
  t.is(calls, uids.size);

  const rec = recordChannels(t, poolId);
  const failing = knex({ ...knexConfig(db, poolId), pool: { afterCreate: (_c: unknown, done: (e: Error) => void) => done(new Error('setup refused')) } });
  t.teardown(() => failing.destroy());
  await t.throwsAsync(failing.raw('select 1'), { message: 'setup refused' });
  t.true(rec.releases.some((r) => r.destroyed && r.reason === 'error'));
});

test('the server version is detected once', async (t) => {
  const { k } = setup(t);
  t.is(internals(k).version, undefined);
  const { rows } = (await k.raw('show server_version')) as pg.QueryResult;
  t.is(internals(k).version, String(rows[0].server_version).split(' ')[0]);
});

test('.timeout(ms, { cancel: true }) cancels on the server and keeps the connection; without cancel the connection is closed', async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  const pid = async () => ((await k.raw('select pg_backend_pid() as pid')) as pg.QueryResult).rows[0].pid as number;
  const first = await pid();
  const started = Date.now();
  const err = await t.throwsAsync(k.raw('select pg_sleep(20)').timeout(200, { cancel: true }), { instanceOf: knex.KnexTimeoutError });
  t.regex(err!.message, /Defined query timeout of 200ms exceeded when running query/);
  t.is(await pid(), first, 'cancelled, not closed: the same connection answers');
  t.true(Date.now() - started < 5_000, 'the sleep was cancelled on the server');

  const rec = recordChannels(t, poolId);
  await t.throwsAsync(k.raw('select pg_sleep(2)').timeout(100), { instanceOf: knex.KnexTimeoutError });
  t.true(
    rec.releases.some((r) => r.destroyed && r.reason === 'error'),
    'disposed by knex: closed, not reused',
  );
  t.not(await pid(), first);
  t.true(await eventually(() => db.getPoolStatus(poolId).total === 1));
});

test('__knexUid is stable per physical connection', async (t) => {
  const { k } = setup(t, { max: 1 });
  const uids: string[] = [];
  k.on('query', (q: { __knexUid?: string }) => uids.push(String(q.__knexUid)));
  for (let i = 0; i < 5; i++) await k.raw('select 1');
  await k.transaction(async (trx) => {
    await trx.raw('select 2');
  });
  t.true(uids.length >= 6);
  t.is(new Set(uids).size, 1);
  t.regex(uids[0]!, /^__knexUid\d+$/);
});

test('releaseConnection never rejects, and a released connection cannot be used again', async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  const client = internals(k);
  await t.notThrowsAsync(client.releaseConnection({}));
  await t.notThrowsAsync(client.releaseConnection(null));
  const c = await client.acquireConnection();
  t.is(db.getPoolStatus(poolId).active, 1);
  await t.notThrowsAsync(client.releaseConnection(c));
  await t.notThrowsAsync(client.releaseConnection(c));
  t.is(db.getPoolStatus(poolId).active, 0);
  const next = await client.acquireConnection();
  t.not(next, c, 'every loan is a different object');
  await client.releaseConnection(c); // a stale release: must not take `next` back
  t.is(db.getPoolStatus(poolId).active, 1);
  await t.throwsAsync(c.query('select 1'), { message: /revoked|released/ });
  await client.releaseConnection(next);
});

test('__knex__disposed closes the connection instead of reusing it', async (t) => {
  const { poolId, k } = setup(t, { max: 1 });
  const rec = recordChannels(t, poolId);
  const client = internals(k);
  const c = await client.acquireConnection();
  const pid = c.processID;
  c.__knex__disposed = new Error('broken by the test');
  await client.releaseConnection(c);
  t.like(rec.releases.at(-1), { destroyed: true, reason: 'error' });
  const next = await client.acquireConnection();
  t.not(next.processID, pid);
  t.is(next.__knex__disposed, undefined, 'knex state belongs to the loan, not the connection');
  await client.releaseConnection(next);
});

test("a knex connection behaves as the loan's pg.Client: its members, methods bound to it, instanceof; knex's own properties stay with the loan", async (t) => {
  const { db, poolId, k } = setup(t, { max: 1 });
  const client = internals(k);
  const c = await client.acquireConnection();
  t.true(c instanceof pg.Client);
  t.is(typeof c.processID, 'number');
  // Read through to the client: an instance field, and a method that needs the client as `this`.
  const current = (await c.query('SELECT current_database() AS d')) as unknown as pg.QueryResult<{ d: string }>;
  t.is(c.database, current.rows[0]!.d);
  t.is((c as unknown as { escapeIdentifier(s: string): string }).escapeIdentifier('a"b'), '"a""b"');
  const notices: string[] = [];
  const onNotice = (n: { message?: string | undefined }): void => void notices.push(String(n.message));
  c.on('notice', onNotice);
  await c.query("DO $$ BEGIN RAISE NOTICE 'hello'; END $$");
  c.removeListener('notice', onNotice);
  t.deepEqual(notices, ['hello']);
  t.false('__knexTxId' in c);
  c.__knexTxId = 'trx1';
  t.true('__knexTxId' in c);
  t.is(c.__knexTxId, 'trx1');
  t.true('query' in c && 'on' in c);
  await client.releaseConnection(c);
  const next = await client.acquireConnection();
  t.is(next.__knexTxId, undefined, 'knex state belongs to the loan, not the connection');
  t.false(Object.hasOwn(next, '__knexTxId'));
  await client.releaseConnection(next);
  t.is(db.getPoolStatus(poolId).active, 0);
});

test('knex queries publish acquire and query events on the core channels', async (t) => {
  const schema = await tempSchema(t);
  const { poolId, k } = setup(t, { max: 2 });
  const rec = recordChannels(t, poolId);
  await k.raw(`create table "${schema}".t (id int)`);
  await k
    .withSchema(schema)
    .table('t')
    .insert([{ id: 1 }, { id: 2 }]);
  await k.transaction(async (trx) => {
    await trx.withSchema(schema).table('t').insert({ id: 3 });
  });
  const streamed = await new Promise<number>((resolve, reject) => {
    let n = 0;
    const s = k.withSchema(schema).table('t').select('id').stream();
    s.on('data', () => n++);
    s.on('error', reject);
    s.on('close', () => resolve(n));
  });
  // The stream's query-end event can follow its close.
  t.true(await eventually(() => rec.queriesEnded.some((q) => /^select "id" from/.test(q.text))), "the stream's query ended");
  t.is(streamed, 3);
  t.true(rec.acquires.length >= 4, `acquires: ${rec.acquires.length}`);
  const texts = rec.queries.map((q) => q.text);
  t.true(texts.some((x) => /^insert into "[^"]+"\."t"/.test(x)));
  t.true(texts.includes('BEGIN;'));
  t.true(texts.includes('COMMIT;'));
  const streamQuery = rec.queriesEnded.find((q) => /^select "id" from/.test(q.text));
  t.truthy(streamQuery, 'the stream is traced too');
  t.like(streamQuery, { command: 'SELECT', rowCount: 3 });
  t.true(rec.queries.every((q) => q.connectionId > 0 && q.loanId > 0));
  await t.throwsAsync(k.raw('select 1/0'));
  t.like(rec.queryErrors.at(-1), { sqlState: '22012' });
});

test('the connectionPool alternative (knex 3.3): knex on the pg.Pool face, without internals', async (t) => {
  const schema = await tempSchema(t);
  const poolId = uniqueName('knexcp');
  const db = newDb(t, { [poolId]: { max: 2, min: 0 } });
  const face = pgPool(db, poolId);
  const k = knex({ client: 'pg', connectionPool: face });
  t.teardown(() => k.destroy());
  await k.raw(`create table "${schema}".t (id int)`);
  await k.transaction(async (trx) => trx.withSchema(schema).table('t').insert({ id: 1 }));
  await t.throwsAsync(
    k.transaction(async (trx) => {
      await trx.withSchema(schema).table('t').insert({ id: 2 });
      throw new Error('no');
    }),
  );
  t.deepEqual(await k.withSchema(schema).table('t').pluck('id'), [1]);
  // What it loses: knex knows nothing of the server (no db.namespace for instrumentation-knex,
  // no settings for cancelQuery).
  t.deepEqual({ ...internals(k).connectionSettings }, {});
  await k.destroy();
  t.false(face.ended);
  t.false(db.getPoolStatus(poolId).closed);
});

test("what the connectionPool alternative loses on streams: knex #6288 takes the next face borrower's loan (use knexConfig to stream)", async (t) => {
  const poolId = uniqueName('knexcp6288');
  const db = newDb(t, { [poolId]: { max: 1, min: 0 } });
  const face = pgPool(db, poolId);
  const k = knex({ client: 'pg', connectionPool: face });
  t.teardown(() => k.destroy());
  const stream = k.raw('select generate_series(1, 10) as n').stream();
  t.true(await eventually(() => db.getDetailedMetrics(poolId).totals.acquires >= 1), 'knex has taken the connection');
  const next = await face.connect();
  const ns: unknown[] = [];
  for await (const row of stream) ns.push((row as { n: unknown }).n);
  t.deepEqual(ns, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // knex's second release follows the stream's close, a turn or more after the last row.
  t.true(await eventually(() => db.getPoolStatus(poolId).active === 0), 'the second release landed');
  // The face hands out one client object per connection (Kysely needs that), so knex's second
  // release of the stream's connection lands on the loan the next borrower now holds. The core
  // refuses that borrower's next query instead of letting two holders share the session.
  t.is(db.getPoolStatus(poolId).active, 0, 'the borrower lost its loan');
  await t.throwsAsync(next.query('select 1'), { message: /revoked/ });
});

test('no password in what knex shows: config, connectionSettings when logged or serialized', async (t) => {
  const secret = 'n0t-a-real-s3cret';
  const poolId = uniqueName('knexpw');
  const url = new URL(databaseUrl());
  url.password = secret;
  const db = newDb(t, { [poolId]: { min: 0, connection: { connectionString: url.toString() } } });
  const cfg = knexConfig(db, poolId);
  const k = knex(cfg);
  t.teardown(() => k.destroy());
  const settings = internals(k).connectionSettings;
  for (const shown of [
    inspect(cfg, { depth: 5 }),
    JSON.stringify(cfg.connection),
    inspect(settings),
    JSON.stringify(settings),
    inspect(k.client.config, { depth: 5 }),
  ]) {
    t.false(shown.includes(secret), shown);
  }
  t.true(String(settings.connectionString).includes(secret), 'cancelQuery connects with the real settings');
  t.like(settings, { database: url.pathname.slice(1), port: Number(url.port || 5432) });
});
