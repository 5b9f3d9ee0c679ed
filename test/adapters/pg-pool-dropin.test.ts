/**
 * What a drop-in for pg.Pool needs from every pool (issue 15), shown on the core API (`db.query`,
 * `db.acquire`): most recently released connection lent first, an idle pool that shrinks under
 * light load, dead idle connections leaving the counts at once, maxUses, onConnect,
 * allowExitOnIdle, errors code written for pg and knex checks; and knex's pool.max.
 */
import test, { type ExecutionContext } from 'ava';
import knex from 'knex';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import type pg from 'pg';
import { knexConfig } from '../../src/adapters/knex-config.js';
import { DatabasePool, type PoolConfig } from '../../src/index.js';
import { recordChannels } from '../support/adapter-helpers.js';
import { adminClient, newDb, uniqueName } from '../support/helpers.js';

function setup(t: ExecutionContext, pool: Partial<PoolConfig> = {}) {
  const poolId = uniqueName('dropin');
  const db = newDb(t, { [poolId]: { min: 0, ...pool } });
  return { db, poolId };
}

const pid = async (db: DatabasePool, poolId: string): Promise<number> =>
  (await db.query<{ pid: number }>(poolId, 'select pg_backend_pid() as pid')).rows[0]!.pid;

test('the most recently released connection is lent first', async (t) => {
  const { db, poolId } = setup(t, { max: 3 });
  const loans = await Promise.all([db.acquire(poolId), db.acquire(poolId), db.acquire(poolId)]);
  const pids = loans.map((l) => l.processId!);
  for (const l of loans) l.release();
  for (let i = 0; i < 5; i++) t.is(await pid(db, poolId), pids[2]!, 'the last one released, every time');
  const again = await db.acquire(poolId);
  const second = await db.acquire(poolId);
  t.is(again.processId, pids[2]);
  t.is(second.processId, pids[1], 'then the one released before it');
  again.release();
  second.release();
});

test('under light steady load the idle pool shrinks to what the load needs', async (t) => {
  // max 5, idle timeout 2 s, one statement every 300 ms: lent oldest-first, the five would take
  // turns (each idle 1.2 s) and none would ever time out.
  const { db, poolId } = setup(t, { max: 5, idleTimeoutMs: 2_000 });
  const warm = await Promise.all(Array.from({ length: 5 }, () => db.acquire(poolId)));
  for (const l of warm) l.release();
  t.is(db.getPoolStatus(poolId).total, 5);
  let closed = 0;
  const allButOne = new Promise<void>((resolve) => {
    db.on('connectionClosed', (e) => {
      if (e.poolId === poolId && ++closed === 4) resolve();
    });
  });
  let stop = false;
  void allButOne.then(() => (stop = true));
  const used = new Set<number>();
  // The load itself: a statement, then the next one 300 ms later (at most 40 of them).
  for (let i = 0; i < 40 && !stop; i++) {
    used.add(await pid(db, poolId));
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  t.true(stop, 'four of the five idle connections were closed while the load went on');
  t.is(used.size, 1, 'one connection served the whole load');
  t.like(db.getPoolStatus(poolId), { total: 1 });
});

test('a dead idle connection leaves the counts at once, before connectionError is emitted', async (t) => {
  const { db, poolId } = setup(t, { max: 2 });
  const admin = await adminClient(t);
  const a = await db.acquire(poolId);
  const b = await db.acquire(poolId);
  const victim = a.processId;
  a.release();
  b.release();
  t.like(db.getPoolStatus(poolId), { total: 2, idle: 2 });
  const reported = once(db, 'connectionError') as Promise<[{ poolId: string; idle: boolean }]>;
  let atEvent: { total: number; idle: number } | undefined;
  db.once('connectionError', () => {
    const s = db.getPoolStatus(poolId);
    atEvent = { total: s.total, idle: s.idle };
  });
  await admin.query('select pg_terminate_backend($1)', [victim]);
  const [event] = await reported;
  t.like(event, { poolId, idle: true });
  t.deepEqual(atEvent, { total: 1, idle: 1 });
});

test('maxUses closes a connection after that many loans, on every pool', async (t) => {
  const { db, poolId } = setup(t, { max: 1, maxUses: 3 });
  const rec = recordChannels(t, poolId);
  const pids = [];
  for (let i = 0; i < 4; i++) pids.push(await pid(db, poolId));
  t.is(new Set(pids.slice(0, 3)).size, 1);
  t.not(pids[3], pids[0], 'the fourth loan got a new connection');
  t.deepEqual(
    rec.releases.map((r) => r.reason),
    [undefined, undefined, 'max-uses', undefined],
  );
});

test('onConnect runs once per new physical connection, before it is first lent, whatever face lends it', async (t) => {
  const seen: number[] = [];
  const { db, poolId } = setup(t, {
    max: 2,
    onConnect: async (client: pg.Client) => {
      seen.push((client as unknown as { processID: number }).processID);
      await client.query("SET application_name = 'set-by-onConnect'");
    },
  });
  const face = db.pgPool(poolId);
  const names = await Promise.all([
    db.query<{ application_name: string }>(poolId, 'show application_name'),
    face.query<{ application_name: string }>('show application_name'),
    db.query<{ application_name: string }>(poolId, 'show application_name'),
  ]);
  t.true(names.every((r) => r.rows[0]!.application_name === 'set-by-onConnect'));
  // Every connection that served a call ran onConnect, and none ran it twice (a third call may have
  // been served before a second connection finished opening: that one is not counted here).
  const lent = db
    .getConnectionDetails(poolId)
    .filter((c) => c.useCount > 0)
    .map((c) => c.processId);
  t.true(lent.length >= 1);
  t.true(
    lent.every((p) => seen.includes(p!)),
    `lent ${lent.join(', ')}, onConnect saw ${seen.join(', ')}`,
  );
  t.is(new Set(seen).size, seen.length, 'once per connection');
  t.true(seen.length <= 2);

  const failing = uniqueName('dropin');
  await db.createPool(failing, { connection: { connectionString: process.env.DATABASE_URL }, min: 0, onConnect: () => Promise.reject(new Error('not ready')) });
  const err = await t.throwsAsync(db.query(failing, 'select 1'));
  t.is((err as Error & { code?: string }).code, 'CONNECTION_FAILED');
  t.is(((err as Error).cause as Error).message, 'not ready');
  t.is(db.getPoolStatus(failing).total, 0);
});

test('an acquire timeout says "timeout" (as pg and knex do), keeping its code and the pool state', async (t) => {
  const { db, poolId } = setup(t, { max: 1 });
  // Opened with the default timeout: under load a first connect can take longer than the short one tested.
  const held = await db.acquire(poolId);
  await db.updatePoolConfig(poolId, { acquireTimeoutMs: 200 });
  t.teardown(() => held.release());
  const err = await t.throwsAsync(db.query(poolId, 'select 1'));
  t.regex(err!.message, /timeout/);
  t.like(err as unknown as Record<string, unknown>, { code: 'ACQUIRE_TIMEOUT', total: 1, active: 1, waiting: 1, max: 1 });
});

test('a connect failure is CONNECTION_FAILED, with the system error code as cause.code', async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const poolId = uniqueName('dropin');
  const db = new DatabasePool({
    pools: { [poolId]: { connection: { host: '127.0.0.1', port, user: 'x', database: 'x' }, min: 0 } },
    logger: null,
    recovery: { enabled: false },
  });
  t.teardown(() => db.close());
  const err = await t.throwsAsync(db.query(poolId, 'select 1'));
  t.is((err as Error & { code?: string }).code, 'CONNECTION_FAILED');
  t.is(((err as Error).cause as Error & { code?: string }).code, 'ECONNREFUSED');
});

/** Runs a script whose DatabasePool is never closed; resolves with its output once the process exits on its own. */
async function exitsOnItsOwn(pool: Partial<PoolConfig>): Promise<string> {
  const script = `
    import { DatabasePool } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
    const db = new DatabasePool({ pools: { p: { connection: { connectionString: process.env.DATABASE_URL }, min: 0, ...${JSON.stringify(pool)} } }, logger: null });
    db.on('connectionClosed', () => console.log('closed'));
    await db.query('p', 'select 1');
    console.log('queried');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await once(child, 'close');
  return out;
}

test('allowExitOnIdle: an idle connection does not keep the process alive; without it, it does until it is closed', async (t) => {
  t.is(await exitsOnItsOwn({ allowExitOnIdle: true, idleTimeoutMs: 600_000 }), 'queried\n', 'exited with its connection still open');
  t.is(await exitsOnItsOwn({ idleTimeoutMs: 300 }), 'queried\nclosed\n', 'alive until the idle connection was closed');
});

test("knex's pool.max caps the connections one knex instance holds; the others wait, then time out", async (t) => {
  const { db, poolId } = setup(t, { max: 5 });
  const k = knex({ ...knexConfig(db, poolId), pool: { max: 1 }, acquireConnectionTimeout: 2_000 });
  t.teardown(() => k.destroy());
  await k.transaction(async (trx) => {
    await trx.raw('select 1');
    const err = await t.throwsAsync(k.raw('select 2'), { instanceOf: knex.KnexTimeoutError });
    t.regex(err!.message, /Timeout acquiring a connection/);
  });
  t.is(((await k.raw('select 3 as n')) as pg.QueryResult).rows[0].n, 3, 'the slot came back');
  const both = await Promise.all([k.raw('select pg_backend_pid() as p'), k.raw('select pg_backend_pid() as p')]);
  t.is(new Set(both.map((r) => (r as pg.QueryResult).rows[0].p)).size, 1, 'one at a time, on one connection');
});
