/** The `pg.Pool` face (`pgPool`): pg's surface over a pool of a DatabasePool. */
import test, { type ExecutionContext } from 'ava';
import { createRequire } from 'node:module';
import pg from 'pg';
import { PgCompatiblePool, pgPool } from '../src/adapters/pg-pool.js';
import type { PoolConfig } from '../src/index.js';
import { recordChannels } from './adapter-helpers.js';
import { adminClient, eventually, newDb, uniqueName } from './helpers.js';

const require = createRequire(import.meta.url);
const Cursor = require('pg-cursor') as new (text: string, values?: unknown[], config?: { rowMode?: string }) => pg.Submittable & {
  read(n: number): Promise<unknown[]>;
  close(): Promise<void>;
};

function setup(t: ExecutionContext, pool: Partial<PoolConfig> = {}) {
  const poolId = uniqueName('pgface');
  const db = newDb(t, { [poolId]: { min: 0, ...pool } });
  const face = pgPool(db, poolId);
  return { db, poolId, face };
}

const pidOf = async (c: pg.PoolClient): Promise<number> => (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;

test('it is a pg.Pool, by instanceof and by constructor name', (t) => {
  const { face } = setup(t);
  t.true(face instanceof pg.Pool);
  t.true(face instanceof PgCompatiblePool);
  t.true(Object.getPrototypeOf(face).constructor.name.includes('Pool'));
  t.false(face.ended);
});

test('connect() lends the same client object for the same physical connection; the counts are the pool\'s', async (t) => {
  const { db, poolId, face } = setup(t, { max: 1 });
  const first = await face.connect();
  const pid = await pidOf(first);
  t.like({ total: face.totalCount, idle: face.idleCount, waiting: face.waitingCount }, { total: 1, idle: 0, waiting: 0 });
  const second = face.connect();
  t.true(await eventually(() => face.waitingCount === 1));
  first.release();
  const again = await second;
  t.is(again, first, 'one object per physical connection');
  t.is(await pidOf(again), pid);
  again.release();
  t.like(db.getPoolStatus(poolId), { total: 1, active: 0, idle: 1 });
  t.is(face.idleCount, 1);
  t.is(face.expiredCount, 0);
});

test('query(): text and values, config objects passed to pg untouched, and callbacks', async (t) => {
  const { face } = setup(t);
  const res = await face.query<{ a: number; b: string }>('select $1::int as a, $2::text as b', [7, 'x']);
  t.deepEqual(res.rows, [{ a: 7, b: 'x' }]);
  const types = { getTypeParser: () => (value: string) => `parsed:${value}` };
  const config = Object.freeze({ text: 'select $1::int as a, 2 as b', values: [1], rowMode: 'array' as const, types });
  const arrays = await face.query(config);
  t.deepEqual(arrays.rows, [['parsed:1', 'parsed:2']], 'rowMode and types reached pg');
  const client = await face.connect();
  try {
    const named = { name: uniqueName('stmt'), text: 'select $1::int * 2 as d', values: [21] };
    t.is((await client.query<{ d: number }>(named)).rows[0]!.d, 42);
    t.deepEqual(named.values, [21]);
    const viaCallback = await new Promise<pg.QueryResult>((resolve, reject) =>
      client.query('select $1::text as c', ['cb'], (err: Error, r: pg.QueryResult) => (err ? reject(err) : resolve(r))),
    );
    t.is(viaCallback.rows[0].c, 'cb');
  } finally {
    client.release();
  }
  const poolCallback = await new Promise<pg.QueryResult>((resolve, reject) =>
    face.query('select 5 as five', (err: Error, r: pg.QueryResult) => (err ? reject(err) : resolve(r))),
  );
  t.is(poolCallback.rows[0].five, 5);
  const connected = await new Promise<pg.PoolClient>((resolve, reject) => face.connect((err, c) => (err || !c ? reject(err) : resolve(c))));
  connected.release();
  await t.throwsAsync(face.query('select * from no_such_table_x'), { message: /no_such_table_x/ });
});

test('release(err) and release(true) close the connection; release() returns it; a second release is a no-op', async (t) => {
  const { db, poolId, face } = setup(t, { max: 1 });
  const rec = recordChannels(t, poolId);
  let c = await face.connect();
  const pid1 = await pidOf(c);
  c.release(new Error('this connection is suspect'));
  t.like(rec.releases.at(-1), { destroyed: true, reason: 'error' });
  c = await face.connect();
  const pid2 = await pidOf(c);
  t.not(pid2, pid1);
  c.release(true);
  t.like(rec.releases.at(-1), { destroyed: true });
  c = await face.connect();
  const pid3 = await pidOf(c);
  t.not(pid3, pid2);
  c.release();
  c.release();
  t.like(rec.releases.at(-1), { destroyed: false });
  t.is(rec.releases.length, 3, 'the second release did nothing');
  t.like(db.getPoolStatus(poolId), { active: 0, total: 1 });
  await t.throwsAsync(c.query('select 1'), { message: /released/ }, 'a released client refuses queries');
});

test('end() ends this face only; the pool stays open', async (t) => {
  const { db, poolId, face } = setup(t);
  await face.query('select 1');
  await face.end();
  t.true(face.ended);
  const err = await t.throwsAsync(face.connect());
  t.is((err as Error & { code?: string }).code, 'POOL_CLOSED');
  t.regex(err!.message, /still open/);
  t.false(db.getPoolStatus(poolId).closed);
  t.is((await db.query<{ one: number }>(poolId, 'select 1 as one')).rows[0]!.one, 1);
  const other = pgPool(db, poolId);
  t.is((await other.query<{ two: number }>('select 2 as two')).rows[0]!.two, 2);
});

test("on('error') reports a connection killed while idle; the face listens to the DatabasePool only while it has listeners", async (t) => {
  const { db, face } = setup(t, { max: 1 });
  const admin = await adminClient(t);
  const before = db.listenerCount('connectionError');
  const errors: Error[] = [];
  const onError = (err: Error) => errors.push(err);
  face.on('error', onError);
  t.is(db.listenerCount('connectionError'), before + 1);
  const c = await face.connect();
  const pid = await pidOf(c);
  c.release();
  await admin.query('select pg_terminate_backend($1)', [pid]);
  t.true(await eventually(() => errors.length > 0), 'error reported');
  t.regex(errors[0]!.message, /terminat/i);
  face.off('error', onError);
  t.is(db.listenerCount('connectionError'), before);
  t.is((await face.query<{ ok: number }>('select 1 as ok')).rows[0]!.ok, 1, 'the pool replaced it');
});

test('a cursor runs on the lent connection and is traced; pool.query() refuses one', async (t) => {
  const { poolId, face } = setup(t);
  const rec = recordChannels(t, poolId);
  const client = await face.connect();
  try {
    const cursor = client.query(new Cursor('select generate_series(1, $1::int) as n', [25]));
    const first = await cursor.read(10);
    const rest = await cursor.read(100);
    await cursor.close();
    t.is(first.length + rest.length, 25);
  } finally {
    client.release();
  }
  // The cursor's query-end event can follow its close.
  t.true(await eventually(() => rec.queriesEnded.some((q) => q.text.startsWith('select generate_series'))), 'the cursor\'s query ended');
  const traced = rec.queriesEnded.find((q) => q.text.startsWith('select generate_series'));
  t.truthy(traced);
  t.like(traced, { valuesCount: 1, command: 'SELECT', rowCount: 25 });
  t.throws(() => face.query(new Cursor('select 1') as never), { instanceOf: TypeError });
});

test('face queries publish acquire and query events on the core channels', async (t) => {
  const { poolId, face } = setup(t);
  const rec = recordChannels(t, poolId);
  await face.query('select $1::int as x', [1]);
  const c = await face.connect();
  await c.query({ text: 'select 2 as y', rowMode: 'array' });
  c.release();
  t.is(rec.acquires.length, 2);
  t.deepEqual(
    rec.queriesEnded.map((q) => [q.text, q.valuesCount, q.rowCount]),
    [
      ['select $1::int as x', 1, 1],
      ['select 2 as y', 0, 1],
    ],
  );
});
