/** The `pg.Pool` face (`pgPool`): pg's surface over a pool of a DatabasePool. */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import pg from 'pg';
import { PgCompatiblePool, pgPool } from '../../src/adapters/pg-pool.js';
import { DatabasePool, type PoolConfig } from '../../src/index.js';
import { recordChannels } from '../support/adapter-helpers.js';
import { adminClient, eventually, newDb, uniqueName } from '../support/helpers.js';

const require = createRequire(import.meta.url);
const Cursor = require('pg-cursor') as new (
  text: string,
  values?: unknown[],
  config?: { rowMode?: string },
) => pg.Submittable & {
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

test("connect() lends the same client object for the same physical connection; the counts are the pool's", async (t) => {
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

test('release(err) and release(true) close the connection; release() returns it; a second release throws, as with pg.Pool', async (t) => {
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
  const release = c.release;
  release();
  t.throws(() => release(), { message: 'Release called on client which has already been released to the pool.' });
  t.throws(() => c.release(), { message: /already been released/ });
  t.like(rec.releases.at(-1), { destroyed: false });
  t.is(rec.releases.length, 3, 'the second release did nothing else');
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
  t.regex(err!.message, /^Cannot use a pool after calling end on the pool/);
  t.regex(err!.message, /still open/);
  await t.throwsAsync(face.end(), { message: 'Called end on pool more than once' });
  const viaCallback = await new Promise<Error | undefined>((resolve) => face.end((e) => resolve(e)));
  t.is(viaCallback?.message, 'Called end on pool more than once');
  t.false(db.getPoolStatus(poolId).closed);
  t.is((await db.query<{ one: number }>(poolId, 'select 1 as one')).rows[0]!.one, 1);
  const other = pgPool(db, poolId);
  t.is((await other.query<{ two: number }>('select 2 as two')).rows[0]!.two, 2);
});

test("on('error') reports a connection killed while idle, with its client (pg.Pool's arguments); the face listens to the DatabasePool only while it has listeners", async (t) => {
  const { db, face } = setup(t, { max: 1 });
  const admin = await adminClient(t);
  const before = db.listenerCount('connectionError');
  const errors: { err: Error & { client?: unknown }; client: unknown; total: number; idle: number }[] = [];
  const onError = (err: Error, client: unknown) => errors.push({ err, client, total: face.totalCount, idle: face.idleCount });
  face.on('error', onError);
  t.is(db.listenerCount('connectionError'), before + 1);
  const c = await face.connect();
  const pid = await pidOf(c);
  c.release();
  await admin.query('select pg_terminate_backend($1)', [pid]);
  t.true(await eventually(() => errors.length > 0), 'error reported');
  const [first] = errors;
  t.regex(first!.err.message, /terminat/i);
  t.is(first!.client, c, 'the client is the second argument');
  t.is(first!.err.client, c, 'and err.client');
  t.is((first!.client as { processID?: number }).processID, pid, 'a handler can read client.processID');
  t.like(first!, { total: 0, idle: 0 }, 'the dead connection has already left the counts');
  // A lent client's error reaches its holder, not the pool's 'error' (as with pg.Pool).
  const lent = await face.connect();
  const lentPid = await pidOf(lent);
  const heard = new Promise<Error>((resolve) => lent.once('error', resolve));
  await admin.query('select pg_terminate_backend($1)', [lentPid]);
  await heard;
  t.is(errors.length, 1, 'no pool error for a lent client');
  lent.release();
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
  t.true(await eventually(() => rec.queriesEnded.some((q) => q.text.startsWith('select generate_series'))), "the cursor's query ended");
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

test('query(callback) is refused as pg.Pool refuses it; query(text, values, cb) calls back with undefined on success', async (t) => {
  const { poolId, face } = setup(t);
  const rec = recordChannels(t, poolId);
  const misuse = await new Promise<unknown[]>((resolve) => {
    const returned = (face.query as unknown as (cb: (...a: unknown[]) => void) => unknown)((...args) => resolve(args));
    t.is(returned, undefined);
  });
  t.is(misuse.length, 1);
  t.is((misuse[0] as Error).message, 'Passing a function as the first parameter to pool.query is not supported');
  t.is(rec.acquires.length, 0, 'nothing was acquired or sent');
  const args = await new Promise<unknown[]>((resolve) => face.query('select $1::int as n', [3], (...a: unknown[]) => resolve(a)));
  t.is(args.length, 2);
  t.true(args[0] === undefined, 'undefined, not null, as pg.Pool passes');
  t.is((args[1] as pg.QueryResult).rows[0].n, 3);
  const failed = await new Promise<unknown[]>((resolve) => face.query('select * from no_such_table_cb', (...a: unknown[]) => resolve(a)));
  t.regex((failed[0] as Error).message, /no_such_table_cb/);
  t.is(failed[1], undefined);
});

test('a statement that fails in pool.query closes its connection, as pg.Pool does', async (t) => {
  const { db, poolId, face } = setup(t, { max: 1 });
  const rec = recordChannels(t, poolId);
  await face.query('select 1');
  t.is(db.getPoolStatus(poolId).total, 1);
  await t.throwsAsync(face.query('select * from no_such_table_q'), { message: /no_such_table_q/ });
  t.like(rec.releases.at(-1), { destroyed: true, reason: 'error' });
  t.is(db.getPoolStatus(poolId).total, 0);
});

test("events with pg.Pool's arguments: connect (new connection), acquire, release (err, client), remove (client)", async (t) => {
  const { db, poolId, face } = setup(t, { max: 1 });
  const seen: [string, ...unknown[]][] = [];
  face.on('connect', (c) => seen.push(['connect', c]));
  face.on('acquire', (c) => seen.push(['acquire', c]));
  face.on('release', (err, c) => seen.push(['release', err, c]));
  face.on('remove', (c) => seen.push(['remove', c, db.getPoolStatus(poolId).total]));
  const c = await face.connect();
  t.deepEqual(
    seen,
    [
      ['connect', c],
      ['acquire', c],
    ],
    "'connect' then 'acquire', before connect() resolves",
  );
  c.release();
  const again = await face.connect();
  t.is(again, c);
  const boom = new Error('suspect');
  again.release(boom);
  t.deepEqual(seen.slice(2), [
    ['release', undefined, c],
    ['acquire', c],
    ['release', boom, c],
    ['remove', c, 0],
  ]);
});

test('verify runs on each connection the face lends first; a failure fails that connect() and closes the connection; log hears what the face does', async (t) => {
  const poolId = uniqueName('pgface');
  const db = newDb(t, { [poolId]: { min: 0, max: 2 } });
  const verified: unknown[] = [];
  let refuse = true;
  const messages: unknown[] = [];
  const face = pgPool(db, poolId, {
    verify: (client, done) => {
      verified.push(client);
      if (refuse) {
        refuse = false;
        done(new Error('not this one'));
      } else done();
    },
    log: (...m) => messages.push(m[0]),
  });
  await t.throwsAsync(face.connect(), { message: 'not this one' });
  t.true(await eventually(() => db.getPoolStatus(poolId).total === 0), 'the refused connection was closed');
  const c = await face.connect();
  c.release();
  const d = await face.connect();
  t.is(d, c);
  d.release();
  t.is(verified.length, 2, 'once per physical connection');
  await face.query('select 1');
  t.true(messages.includes('dispatching query'));
  t.true(messages.includes('new client connected'));
});

test("a connect failure reaches the face's callers as the driver's error (its code), as pg.Pool gives it", async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const poolId = uniqueName('pgface');
  const db = new DatabasePool({
    pools: { [poolId]: { connection: { host: '127.0.0.1', port, user: 'x', database: 'x' }, min: 0 } },
    logger: null,
    recovery: { enabled: false },
  });
  t.teardown(() => db.close());
  const face = pgPool(db, poolId);
  const err = await t.throwsAsync(face.connect());
  t.is((err as Error & { code?: string }).code, 'ECONNREFUSED');
  const viaCallback = await new Promise<Error | undefined>((resolve) => face.connect((e) => resolve(e)));
  t.is((viaCallback as Error & { code?: string }).code, 'ECONNREFUSED');
});

test('an exception thrown in a connect() or query() callback is an uncaught exception, not an unhandled rejection', async (t) => {
  const script = `
    import { DatabasePool, pgPool } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
    const db = new DatabasePool({ pools: { p: { connection: { connectionString: process.env.DATABASE_URL }, min: 0 } }, logger: null });
    const face = pgPool(db, 'p');
    const which = process.argv.at(-1);
    process.on('unhandledRejection', (e) => { console.log('unhandledRejection ' + e.message); process.exit(0); });
    process.on('uncaughtException', (e) => { console.log('uncaughtException ' + e.message); process.exit(0); });
    if (which === 'connect') face.connect((err, client) => { client.release(); throw new Error('thrown in connect callback'); });
    else face.query('select 1', () => { throw new Error('thrown in query callback'); });
  `;
  for (const which of ['connect', 'query']) {
    const out = await runChild(script, which);
    t.is(out.trim(), `uncaughtException thrown in ${which} callback`);
  }
});

/** Runs an ESM TypeScript snippet in a child node (with tsx); resolves with its stdout. */
function runChild(source: string, arg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source, arg], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}
