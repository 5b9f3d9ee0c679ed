/**
 * Per-call limits: `{ timeoutMs, signal }` on query, transaction and withConnection. A limit reached
 * while a statement runs cancels it on the server and the connection goes back clean (same backend
 * reused); reached while waiting for a connection, the caller leaves the queue.
 */
import test from 'ava';
import { DbPoolError } from '../../src/index.js';
import { adminClient, eventually, newDb, uniqueName } from '../support/helpers.js';

const pidOf = async (db: ReturnType<typeof newDb>) => (await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
const codeOf = (err: unknown) => (err as { code?: string } | undefined)?.code;

test('query timeoutMs cancels the statement on the server and keeps the connection', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const pid = await pidOf(db);
  const err = await t.throwsAsync(db.query('main', 'SELECT pg_sleep(10)', [], { timeoutMs: 200 }));
  t.is(codeOf(err), 'QUERY_TIMEOUT');
  t.true(err instanceof DbPoolError);
  t.is(codeOf((err as Error).cause), '57014', 'the server cancelled it (query_canceled)');
  t.regex(err!.message, /timeoutMs \(200 ms\)/);
  t.is(await pidOf(db), pid, 'the same backend serves the next call: it came back clean');
  const admin = await adminClient(t);
  const { rows } = await admin.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid]);
  t.is(rows[0]?.state, 'idle', 'nothing left running on the server');
});

test('an aborted signal cancels the running statement: QUERY_ABORTED with the reason as cause', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const pid = await pidOf(db);
  const ac = new AbortController();
  const running = db.query('main', 'SELECT pg_sleep(10)', [], { signal: ac.signal });
  const admin = await adminClient(t);
  t.true(await eventually(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = $2', [pid, 'active'])).rowCount === 1));
  const reason = new Error('client went away');
  ac.abort(reason);
  const err = await t.throwsAsync(running);
  t.is(codeOf(err), 'QUERY_ABORTED');
  t.is((err as Error).cause, reason);
  t.is(await pidOf(db), pid);
  // Already aborted: nothing is sent, not even an acquire.
  const before = db.getDetailedMetrics('main').totals.acquires;
  t.is(codeOf(await t.throwsAsync(db.query('main', 'SELECT 1', [], { signal: ac.signal }))), 'QUERY_ABORTED');
  t.is(db.getDetailedMetrics('main').totals.acquires, before);
});

test('a call still waiting for a connection leaves the queue on its deadline or its signal', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0, acquireTimeoutMs: 30_000 } });
  const held = await db.acquire('main');
  t.teardown(() => held.release());
  const timedOut = await t.throwsAsync(db.query('main', 'SELECT 1', [], { timeoutMs: 100 }));
  t.is(codeOf(timedOut), 'QUERY_TIMEOUT');
  const ac = new AbortController();
  const waiting = db.query('main', 'SELECT 1', [], { signal: ac.signal });
  t.true(await eventually(() => db.getPoolStatus('main').waiting === 1));
  ac.abort();
  t.is(codeOf(await t.throwsAsync(waiting)), 'QUERY_ABORTED');
  t.is(db.getPoolStatus('main').waiting, 0, 'no one left in the queue');
  held.release();
  t.is((await db.query<{ n: number }>('main', 'SELECT 1 AS n')).rows[0]!.n, 1);
});

test('transaction timeoutMs: the statement is cancelled, the transaction rolled back, the connection reused; nothing written', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const table = uniqueName('calllimits');
  const admin = await adminClient(t);
  await admin.query(`CREATE TABLE ${table} (id int)`);
  t.teardown(() => admin.query(`DROP TABLE IF EXISTS ${table}`).then(() => undefined));
  const pid = await pidOf(db);
  const err = await t.throwsAsync(
    db.transaction(
      'main',
      async (tx) => {
        await tx.query(`INSERT INTO ${table} VALUES (1)`);
        await tx.query('SELECT pg_sleep(10)');
      },
      { timeoutMs: 300 },
    ),
  );
  t.is(codeOf(err), 'QUERY_TIMEOUT');
  t.is(Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n), 0);
  t.is(await pidOf(db), pid);
});

test('withConnection signal: statements after the abort are not sent', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const ac = new AbortController();
  const err = await t.throwsAsync(
    db.withConnection(
      'main',
      async (conn) => {
        await conn.query('SELECT 1');
        ac.abort();
        await conn.query('SELECT 2');
      },
      { signal: ac.signal },
    ),
  );
  t.is(codeOf(err), 'QUERY_ABORTED');
  t.is(db.getDetailedMetrics('main').totals.queries, 1);
});

test('a statement that finishes while its cancel is on the way returns its result', async (t) => {
  // The deadline falls as the statement completes: whatever the race, the caller sees either the
  // result or QUERY_TIMEOUT, never a success reported as failed with rows written, and the pool serves on.
  const db = newDb(t, { main: { max: 1, min: 0 } });
  for (let i = 0; i < 20; i++) {
    const r = await db.query<{ n: number }>('main', 'SELECT 1 AS n, pg_sleep(0.02)', [], { timeoutMs: 20 }).catch((e: unknown) => e);
    t.true(codeOf(r) === 'QUERY_TIMEOUT' || (r as { rows?: { n: number }[] }).rows?.[0]?.n === 1, String(r));
  }
  t.is((await db.query<{ n: number }>('main', 'SELECT 1 AS n')).rows[0]!.n, 1);
});

test('bad limits are INVALID_CONFIG naming the option, and nothing runs', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  for (const [options, path] of [
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ timeoutMs: 1.5 }, 'timeoutMs'],
    [{ timeoutMs: '100' }, 'timeoutMs'],
    [{ signal: {} }, 'signal'],
  ] as const) {
    const err = await t.throwsAsync(db.query('main', 'SELECT 1', [], options as never));
    t.is(codeOf(err), 'INVALID_CONFIG');
    t.is((err as { issues?: { path: string }[] }).issues?.[0]?.path, path);
  }
  t.is(db.getDetailedMetrics('main').totals.acquires, 0);
});
