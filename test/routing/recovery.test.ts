import test from 'ava';
import { once } from 'node:events';
import { AlertHandler, DatabasePool } from '../../src/index.js';
import { httpReceiver } from '../support/alert-receivers.js';
import { adminClient, databaseUrl, eventually, serverConnections, uniqueName } from '../support/helpers.js';
import { FaultProxy } from '../support/fault-proxy.js';

interface LoadReport {
  ok: number;
  failed: number;
  byCode: Record<string, number>;
  slowestMs: number;
}

/** `workers` callers looping short queries until stopped; every call timed. */
function startLoad(db: DatabasePool, poolId: string, workers: number) {
  const report: LoadReport = { ok: 0, failed: 0, byCode: {}, slowestMs: 0 };
  let running = true;
  const done = Promise.all(
    Array.from({ length: workers }, async () => {
      while (running) {
        const t0 = performance.now();
        try {
          await db.query(poolId, 'SELECT pg_sleep(0.002)');
          report.ok++;
        } catch (err) {
          report.failed++;
          const code = String((err as { code?: string }).code ?? (err as Error).message);
          report.byCode[code] = (report.byCode[code] ?? 0) + 1;
          await new Promise((r) => setTimeout(r, 5)); // a real caller backs off a little
        }
        report.slowestMs = Math.max(report.slowestMs, performance.now() - t0);
      }
    }),
  );
  return {
    report,
    stop: async () => {
      running = false;
      await done;
      return report;
    },
  };
}

async function proxyFor(t: import('ava').ExecutionContext): Promise<FaultProxy> {
  const proxy = await FaultProxy.start(databaseUrl());
  t.teardown(() => proxy.close());
  return proxy;
}

test('a server stopped under a 20-worker load and started again: the pool recovers by itself, nobody waits past the acquire timeout, nothing leaks', async (t) => {
  const proxy = await proxyFor(t);
  const app = uniqueName('restart');
  const acquireTimeoutMs = 2_000;
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: proxy.url(databaseUrl()) }, max: 5, min: 0, acquireTimeoutMs, applicationName: app } },
    recovery: { baseDelayMs: 100, circuitResetMs: 200 },
    logger: null,
  });
  t.teardown(() => db.close({ drainTimeoutMs: 1_000 }));
  const admin = await adminClient(t);
  const load = startLoad(db, 'main', 20);
  t.true(await eventually(() => load.report.ok >= 300, 15_000));

  const downAt = Date.now();
  await proxy.down();
  t.true(await eventually(() => load.report.failed >= 20, 15_000), 'callers see the outage');
  await proxy.up();
  const okAtRestart = load.report.ok;
  t.true(await eventually(() => load.report.ok >= okAtRestart + 300, 20_000), 'the pool recovered by itself');
  const recoveredMs = Date.now() - downAt;
  const report = await load.stop();
  t.log(
    `down→recovered in ${recoveredMs} ms; ${report.ok} ok, ${report.failed} failed ${JSON.stringify(report.byCode)}; slowest call ${report.slowestMs.toFixed(0)} ms`,
  );
  t.true(report.slowestMs <= acquireTimeoutMs + 500, `slowest call ${report.slowestMs} ms`);
  for (const code of Object.keys(report.byCode)) {
    t.true(['CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ACQUIRE_TIMEOUT'].includes(code) || /Connection terminated|ECONNRESET|not queryable/.test(code), code);
  }
  // Server side: exactly the pool's own connections, none left behind by the outage.
  t.true(await eventually(async () => (await serverConnections(admin, app)) === db.getPoolStatus('main').total, 10_000));
  t.is(db.getPoolStatus('main').circuit, 'closed');
});

test('a pool that reconnects by itself during the recovery backoff is kept, and so is the work running on it', async (t) => {
  const proxy = await proxyFor(t);
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: proxy.url(databaseUrl()) }, max: 2, min: 0, acquireTimeoutMs: 2_000 } },
    // A backoff long enough to reconnect in, and no circuit in the way of that reconnect.
    recovery: { baseDelayMs: 1_000, circuitBreakerThreshold: 0 },
    logger: null,
  });
  t.teardown(() => db.close({ drainTimeoutMs: 500 }));
  const events: { event: string; detail: Record<string, unknown> }[] = [];
  db.on('recovery', (e: { event: string; detail: Record<string, unknown> }) => events.push(e));
  await db.query('main', 'SELECT 1');

  await proxy.down();
  // The first call may fail on the reset idle connection; a call that has to connect starts recovery.
  const recovering = () => events.some((e) => e.event === 'recovering');
  t.true(await eventually(async () => await db.query('main', 'SELECT 1').then(() => false, recovering)), 'recovery started');
  await proxy.up();
  // Work that starts on the reconnected pool before the recovery's first try, and runs across it.
  const loan = await db.acquire('main');
  t.true(await eventually(() => events.some((e) => e.event === 'recovered'), 5_000), 'recovered');
  t.like(events.find((e) => e.event === 'recovered')?.detail, { attempt: 1, recreated: false });
  t.true(
    db.getConnectionDetails('main').some((c) => c.id === loan.connectionId),
    'the pool routed now is the one that lent the loan',
  );
  t.is((await loan.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
  loan.release();
  t.is(db.getDetailedMetrics('main').totals.recoveries, 1);
});

test('failover to the backup server and failback to the primary, with few failed calls', async (t) => {
  const primary = await proxyFor(t);
  const backup = await proxyFor(t);
  const hook = await httpReceiver(t);
  const db = new DatabasePool({
    alertHandlers: [new AlertHandler({ channels: { ops: { type: 'webhook', url: hook.url('/alerts') } } })],
    alerts: { intervalMs: 60_000 },
    pools: {
      main: {
        connection: { connectionString: primary.url(databaseUrl()) },
        backup: { connectionString: backup.url(databaseUrl()) },
        max: 4,
        min: 0,
        acquireTimeoutMs: 5_000,
      },
    },
    recovery: { baseDelayMs: 100, probeIntervalMs: 200 },
    logger: null,
  });
  t.teardown(() => db.close({ drainTimeoutMs: 1_000 }));
  const events: string[] = [];
  db.on('recovery', (e) => events.push(e.event));
  const load = startLoad(db, 'main', 10);
  t.true(await eventually(() => load.report.ok >= 200, 15_000));
  t.is(backup.accepted, 0, 'the backup is idle while the primary serves');

  await primary.down();
  await once(db, 'recovery'); // recovering
  t.true(await eventually(() => events.includes('failed-over'), 15_000));
  const okOnBackup = load.report.ok;
  t.true(await eventually(() => load.report.ok >= okOnBackup + 200, 15_000), 'traffic flows through the backup');
  t.true(backup.accepted > 0);
  const failedDuringFailover = load.report.failed;

  // The listener was closed while down: every connection accepted from here on is the failback's.
  const acceptedWhileDown = primary.accepted;
  await primary.up();
  t.true(await eventually(() => events.includes('failed-back'), 15_000));
  const okAfter = load.report.ok;
  t.true(await eventually(() => load.report.ok >= okAfter + 200, 15_000));
  t.true(primary.accepted > acceptedWhileDown, 'the primary accepted connections again');
  t.true(primary.openConnections > 0, 'the pool holds connections to the primary');
  const report = await load.stop();
  t.log(
    `events ${events.join(' → ')}; ${report.ok} ok, ${report.failed} failed ${JSON.stringify(report.byCode)}, ${failedDuringFailover} of them during the failover`,
  );
  t.deepEqual(events, ['recovering', 'failed-over', 'failed-back']);
  // Only calls in flight on the cut connections can fail: at most one per connection (max 4).
  t.true(report.failed <= 4, `failed ${report.failed}`);
  const totals = db.getDetailedMetrics('main').totals;
  t.is(totals.failovers, 1);
  t.is(totals.failbacks, 1);
  // The failover paged the alert channel, and the failback resolved the same incident.
  const [fired, resolved] = (await hook.waitFor(2)).map((r) => r.json as { status: string; level: string; message: string; dedupKey?: string });
  t.is(fired!.status, 'firing');
  t.is(fired!.level, 'critical');
  t.regex(fired!.message, /failed over to its backup/);
  t.is(resolved!.status, 'resolved');
});

test('circuit breaker: with no server reachable, calls fail fast with CIRCUIT_OPEN and the cause; it closes when the server is back', async (t) => {
  const proxy = await proxyFor(t);
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: proxy.url(databaseUrl()) }, max: 3, min: 0, acquireTimeoutMs: 3_000 } },
    recovery: { circuitBreakerThreshold: 3, circuitResetMs: 300, baseDelayMs: 5_000 },
    logger: null,
  });
  t.teardown(() => db.close({ drainTimeoutMs: 500 }));
  await db.query('main', 'SELECT 1');
  await proxy.down();
  const codes: string[] = [];
  let circuitError: { code?: string; cause?: { code?: string } } | undefined;
  while (!circuitError) {
    const err = (await db.query('main', 'SELECT 1').catch((e: unknown) => e)) as { code?: string; cause?: { code?: string } };
    codes.push(String(err?.code));
    if (err?.code === 'CIRCUIT_OPEN') circuitError = err;
    await new Promise((r) => setImmediate(r));
  }
  t.is(circuitError.cause?.code, 'ECONNREFUSED');
  const t0 = performance.now();
  const many = await Promise.allSettled(Array.from({ length: 100 }, () => db.query('main', 'SELECT 1')));
  const ms = performance.now() - t0;
  t.true(many.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'CIRCUIT_OPEN'));
  t.is(db.getPoolStatus('main').waiting, 0, 'no waiters pile up');
  t.log(`${codes.length} calls until the circuit opened (${codes.join(', ')}); 100 calls rejected in ${ms.toFixed(1)} ms`);

  await proxy.up();
  // After circuitResetMs one call goes through (half-open); when it connects the circuit closes.
  t.true(
    await eventually(
      async () =>
        await db.query('main', 'SELECT 1').then(
          () => true,
          () => false,
        ),
      5_000,
    ),
  );
  t.is(db.getPoolStatus('main').circuit, 'closed');
  t.true(db.getDetailedMetrics('main').totals.circuitOpens >= 1);
});
