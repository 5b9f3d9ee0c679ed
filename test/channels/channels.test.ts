import test, { type ExecutionContext } from 'ava';
import { channel, tracingChannel } from 'node:diagnostics_channel';
import {
  CHANNELS,
  acquireChannel,
  connectChannel,
  poolChannel,
  queryChannel,
  releaseChannel,
  type AcquireMessage,
  type ConnectMessage,
  type PoolEventMessage,
  type QueryMessage,
  type ReleaseMessage,
  DatabasePool,
} from '../../src/index.js';
import { tracingActive } from '../../src/channels.js';
import { freePort } from '../support/server.js';
import { newDb, serverOf } from '../support/helpers.js';

type Events<M> = { start: M[]; asyncEnd: M[]; error: M[] };

function record<M extends object>(name: string, poolId: string) {
  const events: Events<M> = { start: [], asyncEnd: [], error: [] };
  const mine = (m: M) => (m as { poolId?: string }).poolId === poolId;
  const handlers = {
    start: (m: M) => mine(m) && events.start.push(m),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (m: M) => mine(m) && events.asyncEnd.push(m),
    error: (m: M) => mine(m) && events.error.push(m),
  };
  const ch = tracingChannel<M, M>(name);
  ch.subscribe(handlers as never);
  return { events, stop: () => ch.unsubscribe(handlers as never) };
}

/** A pool `poolId` of a server nobody listens at, whose circuit opens at the first failed connect. */
async function unreachable(t: ExecutionContext, poolId: string): Promise<DatabasePool> {
  const port = await freePort(); // nothing listens there
  const db = new DatabasePool({
    pools: { [poolId]: { connection: { host: '127.0.0.1', port }, min: 0, max: 1, acquireTimeoutMs: 2_000 } },
    logger: null,
    recovery: { circuitBreakerThreshold: 1, circuitResetMs: 60_000, baseDelayMs: 60_000 },
  });
  t.teardown(() => db.close({ drainTimeoutMs: 100 }));
  return db;
}

test.serial('with nobody subscribed the core has nothing to publish to', async (t) => {
  // Each test file runs in its own process: nothing has subscribed yet.
  t.false(tracingActive(acquireChannel));
  t.false(tracingActive(queryChannel));
  t.false(tracingActive(connectChannel));
  t.false(releaseChannel.hasSubscribers);
  t.false(poolChannel.hasSubscribers);
  const db = newDb(t, { quiet: { max: 1, min: 0 } });
  await db.query('quiet', 'SELECT 1');
  t.false(tracingActive(queryChannel));
});

test.serial('acquire, connect, query and release publish the documented messages', async (t) => {
  const acquire = record<AcquireMessage>(CHANNELS.acquire, 'obs');
  const query = record<QueryMessage>(CHANNELS.query, 'obs');
  const connect = record<ConnectMessage>(CHANNELS.connect, 'obs');
  const releases: ReleaseMessage[] = [];
  const poolEvents: PoolEventMessage[] = [];
  const onRelease = (m: unknown) => (m as ReleaseMessage).poolId === 'obs' && releases.push(m as ReleaseMessage);
  const onPool = (m: unknown) => (m as PoolEventMessage).poolId === 'obs' && poolEvents.push(m as PoolEventMessage);
  channel(CHANNELS.release).subscribe(onRelease);
  channel(CHANNELS.pool).subscribe(onPool);
  t.teardown(() => {
    acquire.stop();
    query.stop();
    connect.stop();
    channel(CHANNELS.release).unsubscribe(onRelease);
    channel(CHANNELS.pool).unsubscribe(onPool);
  });

  const db = newDb(t, { obs: { max: 1, min: 0 } });
  t.deepEqual(
    poolEvents.map((e) => e.event),
    ['created'],
  );
  await db.query('obs', 'SELECT $1::int AS n, $2::text AS s', [7, 'x']);
  await t.throwsAsync(db.query('obs', 'SELECT * FROM missing_table_for_channels'));

  t.is(connect.events.start.length, 1);
  const c = connect.events.asyncEnd[0]!;
  t.is(c.attempt, 1);
  t.true(typeof c.connectionId === 'number' && c.createMs! >= 0);
  t.is(c.serverAddress, serverOf().address);
  t.is(c.serverPort, serverOf().port);

  t.is(acquire.events.start.length, 2);
  const a = acquire.events.asyncEnd[0]!;
  t.is(a.pendingAtStart, 0);
  t.is(a.connectionId, c.connectionId);
  t.true(a.waitMs! >= 0 && typeof a.loanId === 'number');

  const [ok, failed] = query.events.start;
  t.is(ok!.text, 'SELECT $1::int AS n, $2::text AS s');
  t.is(ok!.valuesCount, 2);
  t.is(ok!.connectionId, c.connectionId!);
  t.is(ok!.loanId, a.loanId!);
  t.is(query.events.asyncEnd[0]!.rowCount, 1);
  t.is(query.events.asyncEnd[0]!.command, 'SELECT');
  t.is(query.events.error.length, 1);
  t.is(query.events.error[0], failed);
  t.is(failed!.sqlState, '42P01');

  t.is(releases.length, 2);
  t.is(releases[0]!.loanId, a.loanId!);
  t.false(releases[0]!.destroyed);
  t.true(releases[0]!.useMs >= 0);

  await db.removePool('obs');
  t.deepEqual(
    poolEvents.map((e) => e.event),
    ['created', 'removed'],
  );
});

test.serial('an acquire that waited names the loan it waited behind', async (t) => {
  const acquire = record<AcquireMessage>(CHANNELS.acquire, 'wait');
  t.teardown(acquire.stop);
  const db = newDb(t, { wait: { max: 1, min: 0, acquireTimeoutMs: 5_000 } });
  const first = await db.acquire('wait');
  const second = db.acquire('wait');
  first.release();
  (await second).release();
  const [m1, m2] = acquire.events.asyncEnd;
  t.true(m2!.mustWait);
  t.is(m2!.servedByLoanId, m1!.loanId!);
});

test.serial('a failed acquire publishes an error with the typed error', async (t) => {
  const acquire = record<AcquireMessage>(CHANNELS.acquire, 'timeout');
  t.teardown(acquire.stop);
  const db = newDb(t, { timeout: { max: 1, min: 0 } });
  // Opened with the default timeout: under load a first connect can take longer than the short one tested.
  const held = await db.acquire('timeout');
  await db.updatePoolConfig('timeout', { acquireTimeoutMs: 100 });
  await t.throwsAsync(db.acquire('timeout'));
  held.release();
  t.is(acquire.events.error.length, 1);
  t.is((acquire.events.error[0]!.error as { code?: string }).code, 'ACQUIRE_TIMEOUT');
  t.is(acquire.events.error[0]!.pendingAtStart, 0);
});

test.serial('a call refused by an open circuit is a failed acquire on the channel, with CIRCUIT_OPEN', async (t) => {
  const acquire = record<AcquireMessage>(CHANNELS.acquire, 'down');
  t.teardown(acquire.stop);
  const db = await unreachable(t, 'down');
  const codes: string[] = [];
  const open = () => codes.filter((c) => c === 'CIRCUIT_OPEN').length;
  for (let i = 0; i < 50 && open() < 5; i++) {
    const err = await db.query('down', 'SELECT 1').catch((e: { code?: string }) => e);
    codes.push((err as { code?: string }).code ?? 'none');
  }
  t.is(open(), 5, codes.join(','));
  // Every call the circuit refused is on the channel, not only the ones that were already queued.
  const published = acquire.events.error.map((m) => (m.error as { code?: string }).code);
  t.deepEqual(published, codes);
});

/** Every event of the acquire and query channels for pool `poolId`, in the order published. */
function sequence(poolId: string) {
  const seen: string[] = [];
  const subs = (['acquire', 'query'] as const).map((kind) => {
    const ch = tracingChannel(CHANNELS[kind]);
    const on = (event: string) => (m: unknown) => {
      if ((m as { poolId?: string }).poolId !== poolId) return;
      const code = event === 'error' ? `(${(m as { error?: { code?: string } }).error?.code ?? 'pg'})` : '';
      seen.push(`${kind}.${event}${code}`);
    };
    const handlers = { start: on('start'), end: on('end'), asyncStart: on('asyncStart'), asyncEnd: on('asyncEnd'), error: on('error') };
    ch.subscribe(handlers as never);
    return () => ch.unsubscribe(handlers as never);
  });
  return {
    seen,
    take: () => seen.splice(0),
    stop: () => {
      for (const u of subs) u();
    },
  };
}

test.serial("db.query publishes what a promise traced by node's tracePromise publishes, in the same order", async (t) => {
  // db.query takes its loan and sends its statement with callbacks (one promise per call), and
  // publishes the channels' events itself; withConnection's statement goes through tracePromise.
  const s = sequence('order');
  t.teardown(s.stop);
  const db = newDb(t, { order: { max: 1, min: 0 } });
  await db.query('order', 'SELECT 1');
  const ok = s.take();
  t.deepEqual(ok, ['acquire.start', 'acquire.end', 'acquire.asyncStart', 'acquire.asyncEnd', 'query.start', 'query.end', 'query.asyncStart', 'query.asyncEnd']);
  await db.withConnection('order', (conn) => conn.query('SELECT 1'));
  t.deepEqual(s.take(), ok, 'the same as through tracePromise');

  await t.throwsAsync(db.query('order', 'SELECT * FROM missing_table_for_channel_order'));
  const failed = s.take();
  await t.throwsAsync(db.withConnection('order', (conn) => conn.query('SELECT * FROM missing_table_for_channel_order')));
  t.deepEqual(s.take(), failed, 'a failed statement: the same as through tracePromise');
  t.deepEqual(failed.slice(4), ['query.start', 'query.end', 'query.error(42P01)', 'query.asyncStart', 'query.asyncEnd']);

  // Refused before anything is sent (bad arguments): nothing on the query channel, as before.
  await t.throwsAsync(db.query('order', 42 as never), { code: 'INVALID_QUERY' });
  t.deepEqual(s.take(), ['acquire.start', 'acquire.end', 'acquire.asyncStart', 'acquire.asyncEnd']);
});

test.serial('a refusal known before the acquire starts waiting is published after end, as a rejected promise would be', async (t) => {
  const s = sequence('refused');
  t.teardown(s.stop);
  const db = await unreachable(t, 'refused');
  for (let i = 0; i < 50; i++) {
    const err = (await db.query('refused', 'SELECT 1').catch((e: { code?: string }) => e)) as { code?: string };
    if (err.code === 'CIRCUIT_OPEN') break;
  }
  s.take();
  await t.throwsAsync(db.query('refused', 'SELECT 1'), { code: 'CIRCUIT_OPEN' });
  t.deepEqual(s.take(), ['acquire.start', 'acquire.end', 'acquire.error(CIRCUIT_OPEN)', 'acquire.asyncStart', 'acquire.asyncEnd']);
  await t.throwsAsync(db.acquire('refused'), { code: 'CIRCUIT_OPEN' });
  t.deepEqual(s.take(), ['acquire.start', 'acquire.end', 'acquire.error(CIRCUIT_OPEN)', 'acquire.asyncStart', 'acquire.asyncEnd']);
});
