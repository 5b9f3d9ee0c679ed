import test from 'ava';
import { once } from 'node:events';
import { DatabasePool, PooledConnection } from '../../src/index.js';
import { adminClient, databaseUrl, eventually, newDb, serverConnections, uniqueName } from '../support/helpers.js';

test('200 concurrent queries through a pool of max 5 all succeed on at most 5 server connections', async (t) => {
  const app = uniqueName('conc');
  const db = newDb(t, { main: { max: 5, min: 0, applicationName: app } });
  const admin = await adminClient(t);
  let peak = 0;
  const results = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const r = await db.query<{ n: number; pid: number }>('main', 'SELECT $1::int AS n, pg_backend_pid() AS pid', [i]);
      peak = Math.max(peak, db.getPoolStatus('main').total);
      return r.rows[0]!;
    }),
  );
  t.deepEqual(
    results.map((r) => r.n),
    Array.from({ length: 200 }, (_, i) => i),
  );
  t.true(new Set(results.map((r) => r.pid)).size <= 5);
  t.true(peak <= 5);
  t.true((await serverConnections(admin, app)) <= 5);
  const s = db.getPoolStatus('main');
  t.is(s.active, 0);
  t.is(s.waiting, 0);
});

test('transaction commits on success and rolls back on throw', async (t) => {
  const db = newDb(t, { main: { max: 2 } });
  const table = uniqueName('tx');
  await db.query('main', `CREATE TABLE ${table} (id int primary key, v text)`);
  t.teardown(() => db.query('main', `DROP TABLE IF EXISTS ${table}`).then(() => undefined));

  const committed = await db.transaction('main', async (tx) => {
    await tx.query(`INSERT INTO ${table} VALUES (1, 'kept')`);
    return 'done';
  });
  t.is(committed, 'done');

  const boom = new Error('boom');
  const err = await t.throwsAsync(
    db.transaction('main', async (tx) => {
      await tx.query(`INSERT INTO ${table} VALUES (2, 'gone')`);
      throw boom;
    }),
  );
  t.is(err, boom);
  const { rows } = await db.query<{ id: number }>('main', `SELECT id FROM ${table} ORDER BY id`);
  t.deepEqual(
    rows.map((r) => r.id),
    [1],
  );
  t.is(db.getPoolStatus('main').active, 0);
});

test('transaction applies the isolation level and read-only mode, and rejects unknown levels', async (t) => {
  const db = newDb(t, { main: { max: 1 } });
  const level = await db.transaction(
    'main',
    async (tx) => (await tx.query<{ l: string }>('SELECT current_setting($1) AS l', ['transaction_isolation'])).rows[0]!.l,
    { isolationLevel: 'SERIALIZABLE' },
  );
  t.is(level, 'serializable');
  const ro = await t.throwsAsync(db.transaction('main', (tx) => tx.query('CREATE TEMP TABLE x (a int)'), { readOnly: true }));
  t.is((ro as { code?: string }).code, '25006');
  const bad = await t.throwsAsync(db.transaction('main', async () => 1, { isolationLevel: 'chaos; DROP TABLE x' as never }));
  t.is((bad as { code?: string }).code, 'INVALID_CONFIG');
  t.is(db.getPoolStatus('main').active, 0);
});

test('a failing query rejects with the server error and gives its connection back for reuse', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const pid1 = (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const err = await t.throwsAsync(db.query('main', 'SELECT * FROM no_such_table_here'));
  t.is((err as { code?: string }).code, '42P01');
  t.is(db.getPoolStatus('main').active, 0);
  const pid2 = (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  t.is(pid2, pid1, 'a statement error does not cost the connection');
});

test('unknown, duplicate and malformed pool ids get typed errors', async (t) => {
  const db = newDb(t, { main: {} });
  const unknown = await t.throwsAsync(db.query('nope', 'SELECT 1'));
  t.is((unknown as { code?: string }).code, 'POOL_NOT_FOUND');
  t.regex(unknown!.message, /"nope"/);
  const dup = await t.throwsAsync(db.createPool('main', { connection: { connectionString: databaseUrl() } }));
  t.is((dup as { code?: string }).code, 'POOL_EXISTS');
  for (const bad of ['', ' spaced', 'a/b', 'x'.repeat(65), 42]) {
    const e = await t.throwsAsync(db.createPool(bad as string, { connection: { connectionString: databaseUrl() } }));
    t.is((e as { code?: string }).code, 'INVALID_CONFIG');
  }
  t.deepEqual(db.listPools(), ['main']);
  t.throws(() => db.getPoolConfig('nope'), { code: 'POOL_NOT_FOUND' } as never);
});

test('withConnection releases on throw; acquire and release by hand; a second release is a no-op', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  await t.throwsAsync(
    db.withConnection('main', async () => {
      throw new Error('inside');
    }),
    { message: 'inside' },
  );
  t.is(db.getPoolStatus('main').active, 0);

  const a = await db.acquire('main');
  t.true(a instanceof PooledConnection);
  const pidA = (await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  a.release();
  const b = await db.acquire('main'); // the same physical connection, now lent to b
  a.release(); // late second release by a: must not hand b's connection back
  t.is(db.getPoolStatus('main').active, 1);
  const c = db.acquire('main');
  let cServed = false;
  void c.then(() => (cServed = true));
  const pidB = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  t.is(pidB, pidA);
  t.false(cServed, "nobody else got b's connection");
  const late = await t.throwsAsync(a.query('SELECT 1'));
  t.is((late as { code?: string }).code, 'CONNECTION_REVOKED');
  b.release();
  (await c).release();
  t.is(db.getPoolStatus('main').active, 0);
});

test('a connection released inside an open transaction is closed, not handed to the next caller', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const conn = await db.acquire('main');
  const pid = conn.processId;
  await conn.query('BEGIN');
  conn.release();
  const { rows } = await db.query<{ pid: number; tx: string }>('main', 'SELECT pg_backend_pid() AS pid, now() = statement_timestamp() AS tx');
  t.not(rows[0]!.pid, pid);
});

test('removePool lets running queries finish; new calls get POOL_NOT_FOUND', async (t) => {
  const db = newDb(t, { main: { max: 2, min: 0 } });
  const running = Array.from({ length: 4 }, () => db.query<{ ok: number }>('main', 'SELECT 1 AS ok, pg_sleep(0.3)'));
  // Wait until both connections are out and two callers queue, then remove.
  t.true(
    await eventually(() => {
      const s = db.getPoolStatus('main');
      return s.active === 2 && s.waiting === 2;
    }),
    'two connections out and two callers queued before removal',
  );
  const removal = db.removePool('main');
  const late = await t.throwsAsync(db.query('main', 'SELECT 1'));
  t.is((late as { code?: string }).code, 'POOL_NOT_FOUND');
  const results = await Promise.all(running);
  t.deepEqual(
    results.map((r) => r.rows[0]!.ok),
    [1, 1, 1, 1],
  );
  await removal;
  t.deepEqual(db.listPools(), []);
});

test('close() drains every pool and later calls fail with POOL_CLOSED', async (t) => {
  const db = new DatabasePool({ pools: { a: { connection: { connectionString: databaseUrl() }, min: 1 } } });
  await db.query('a', 'SELECT 1');
  await db.close();
  await db.close();
  const err = await t.throwsAsync(db.query('a', 'SELECT 1'));
  t.is((err as { code?: string }).code, 'POOL_CLOSED');
});

test('a pool emits connectionError and drops a connection killed while idle', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const admin = await adminClient(t);
  const pid = (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const errored = once(db, 'connectionError');
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  const [event] = (await errored) as [{ poolId: string; error: Error | undefined }];
  t.is(event.poolId, 'main');
  const next = (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  t.not(next, pid);
  t.is(db.getPoolStatus('main').total, 1);
});

test('a protocol error at ERROR severity (08P01, wrong parameter count) fails the statement but keeps the connection', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const pid1 = (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const err = await t.throwsAsync(db.query('main', 'SELECT 1', [1]));
  t.is((err as { code?: string }).code, '08P01');
  const pid2 = (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  t.is(pid2, pid1);
});
