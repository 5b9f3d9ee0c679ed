import test from 'ava';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { channel } from 'node:diagnostics_channel';
import { CHANNELS, DatabasePool, type PoolEventMessage } from '../../src/index.js';
import { databaseUrl, newDb } from '../support/helpers.js';

/** A TCP server on loopback that accepts connections and never answers: a hung database. */
async function hungServer(t: import('ava').ExecutionContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

test('healthCheck: healthy, degraded and unhealthy, with the failing pools and why', async (t) => {
  const db = newDb(t, { a: { max: 2 }, b: { max: 2 } });
  const healthy = await db.healthCheck();
  t.is(healthy.status, 'healthy');
  t.deepEqual(healthy.healthyPools.sort(), ['a', 'b']);
  t.deepEqual(healthy.unhealthyPools, []);
  t.false(Number.isNaN(Date.parse(healthy.timestamp)));

  await db.createPool('down', { connection: { host: '127.0.0.1', port: 1 }, min: 0 });
  const degraded = await db.healthCheck();
  t.is(degraded.status, 'degraded');
  t.is(degraded.unhealthyPools[0]!.poolId, 'down');
  t.regex(degraded.unhealthyPools[0]!.error, /ECONNREFUSED/);

  const onlyDown = new DatabasePool({ pools: { down: { connection: { host: '127.0.0.1', port: 1 }, min: 0 } } });
  t.teardown(() => onlyDown.close({ drainTimeoutMs: 200 }));
  t.is((await onlyDown.healthCheck()).status, 'unhealthy');
});

test('a hung server does not hang healthCheck', async (t) => {
  const port = await hungServer(t);
  const db = new DatabasePool({
    pools: {
      ok: { connection: { connectionString: databaseUrl() }, max: 1 },
      hung: { connection: { host: '127.0.0.1', port, user: 'x', database: 'x' }, min: 0, acquireTimeoutMs: 30_000 },
    },
    health: { probeTimeoutMs: 1_000 },
  });
  t.teardown(() => db.close({ drainTimeoutMs: 200 }));
  await db.query('ok', 'SELECT 1'); // open: under load a first connect can take longer than a probe may
  const started = Date.now();
  const report = await db.healthCheck();
  const took = Date.now() - started;
  t.log(`healthCheck with a hung server answered in ${took} ms`);
  t.true(took < 5_000, 'answered after the probe timeout, not the 30 s acquire timeout');
  t.is(report.status, 'degraded');
  t.deepEqual(report.healthyPools, ['ok']);
  t.regex(report.unhealthyPools[0]!.error, /timed out after 1000 ms/);
});

test('deepHealthCheck reports each check against its threshold', async (t) => {
  const db = new DatabasePool({
    pools: { d: { connection: { connectionString: databaseUrl() }, max: 2, min: 0 } },
    health: { errorRateThreshold: 0.1, latencyThresholdMs: 1_000 },
  });
  t.teardown(() => db.close());
  await db.query('d', 'SELECT 1'); // the probe then measures a query, not a first connect
  const fine = await db.deepHealthCheck('d');
  t.true(fine.overallHealthy);
  t.true(fine.checks.connectivity.healthy);
  t.true(fine.checks.performance.value >= 0);
  t.is(fine.checks.errorRate.threshold, 0.1);
  t.is(typeof fine.metrics.latencyP99, 'number');
  await Promise.all(Array.from({ length: 10 }, () => db.query('d', 'SELECT 1 / 0').catch(() => undefined)));
  const failing = await db.deepHealthCheck('d');
  t.false(failing.overallHealthy);
  t.false(failing.checks.errorRate.healthy);
  t.true(failing.checks.connectivity.healthy);
  t.regex(failing.checks.errorRate.message, /% of queries failed/);
});

test("diagnosePerformanceIssues and diagnoseConnectionLeak explain with the pool's own numbers", async (t) => {
  const db = newDb(t, { p: { max: 2, min: 0, slowQueryThresholdMs: 50, leakDetectionThresholdMs: 400 } });
  await db.query('p', "SELECT pg_sleep(0.08), 'literal-123'");
  await Promise.all(Array.from({ length: 5 }, () => db.query('p', 'SELECT 1 / 0').catch(() => undefined)));
  const held = await db.acquire('p');
  await once(db, 'leak');
  const perf = await db.diagnosePerformanceIssues('p');
  const types = perf.issues.map((i) => i.type);
  t.true(types.includes('slow_queries'));
  t.true(types.includes('high_error_rate'));
  t.true(types.includes('connection_leaks'));
  t.is(perf.overallHealth, 'critical');
  t.regex(perf.issues.find((i) => i.type === 'high_error_rate')!.description, /22012 ×5/);
  t.true(perf.issues.every((i) => i.recommendations.length > 0));
  // Listed sanitized (on a loaded machine SELECT 1 / 0 may cross the threshold too).
  t.true(
    perf.slowQueries.some((q) => q.text === 'SELECT pg_sleep(?), ?'),
    JSON.stringify(perf.slowQueries.map((q) => q.text)),
  );

  const leaks = await db.diagnoseConnectionLeak('p');
  t.is(leaks.suspiciousConnections.length, 1);
  t.regex(leaks.suspiciousConnections[0]!.stackTrace!, /health\.test\.ts/);
  t.true(leaks.recommendations.length > 0);
  held.release();
  const clean = await db.diagnoseConnectionLeak('p');
  t.deepEqual(clean.suspiciousConnections, []);
});

/**
 * Keeps `workers` callers busy on the pool until the returned stop function is called, which
 * resolves to the failed calls' messages (a failing load would not be the load the numbers assume).
 */
function loadPool(db: DatabasePool, poolId: string, workers: number, sql: string) {
  let running = true;
  const failures: string[] = [];
  const done = Promise.all(
    Array.from({ length: workers }, async () => {
      while (running) await db.query(poolId, sql).catch((e: unknown) => failures.push(String(e)));
    }),
  );
  return async () => {
    running = false;
    await done;
    return failures;
  };
}

test("optimizePoolSize grows a saturated busy pool ×1.5 and shrinks an idle one ×0.8, with Little's law beside", async (t) => {
  const db = new DatabasePool({
    pools: {
      busy: { connection: { connectionString: databaseUrl() }, max: 4, min: 0 },
      idle: { connection: { connectionString: databaseUrl() }, max: 20, min: 0 },
    },
    // The rule's thresholds, lowered so a laptop-sized load crosses them.
    autoTune: { scaleUpQps: 20, scaleDownQps: 100, minConnections: 10 },
  });
  t.teardown(() => db.close());
  const stop = loadPool(db, 'busy', 12, 'SELECT pg_sleep(0.005)');
  const { eventually } = await import('../support/helpers.js');
  t.true(await eventually(() => db.getDetailedMetrics('busy').totals.queries >= 200, 15_000));
  const grow = await db.optimizePoolSize('busy');
  const failures = await stop();
  t.deepEqual(failures, [], 'every call of the load succeeded');
  t.log(grow.reason, JSON.stringify(grow.littlesLaw));
  t.is(grow.before, 4);
  t.is(grow.after, 6);
  t.is(db.getPoolConfig('busy').max, 6);
  // Little's law: connections in use on average (12 callers on 4 connections keep it well above 1), × 1.2 headroom.
  t.true(grow.littlesLaw.meanInUse > 1);
  t.is(grow.littlesLaw.suggestedMax, Math.max(1, Math.ceil(grow.littlesLaw.meanInUse * 1.2)));

  await db.query('idle', 'SELECT 1');
  const shrink = await db.optimizePoolSize('idle');
  t.is(shrink.after, 16);
  t.regex(shrink.reason, /max ×0.8/);
  const floor = await db.optimizePoolSize('idle', { apply: false });
  t.is(floor.after, 12, 'a report only: 16 × 0.8 rounded down');
  t.is(db.getPoolConfig('idle').max, 16);
});

test('optimizeTimeouts measures 10 probes and sets query = max(3 × P95, 1 s), acquire = half', async (t) => {
  const db = newDb(t, { o: { max: 2, min: 0 } });
  const d = await db.optimizeTimeouts('o');
  t.is(d.probes, 10);
  t.true(d.measuredP95Ms > 0);
  t.is(d.queryTimeoutMs, Math.max(1_000, Math.ceil(3 * d.measuredP95Ms)));
  t.is(d.acquireTimeoutMs, Math.ceil(d.queryTimeoutMs / 2));
  t.is(db.getPoolConfig('o').queryTimeoutMs, d.queryTimeoutMs);
  t.is(db.getPoolConfig('o').acquireTimeoutMs, d.acquireTimeoutMs);
});

test('autoTune with intervalMs tunes pools by itself, within its bounds', async (t) => {
  const events: PoolEventMessage[] = [];
  const onPool = (m: unknown) => {
    if ((m as PoolEventMessage).poolId === 'auto') events.push(m as PoolEventMessage);
  };
  channel(CHANNELS.pool).subscribe(onPool);
  t.teardown(() => channel(CHANNELS.pool).unsubscribe(onPool));
  const resized = new Promise<void>((resolve) => {
    const check = (m: unknown) => {
      const e = m as PoolEventMessage;
      if (e.poolId === 'auto' && e.event === 'resized' && (e.detail as { max: number }).max < 20) {
        channel(CHANNELS.pool).unsubscribe(check);
        resolve();
      }
    };
    channel(CHANNELS.pool).subscribe(check);
  });
  const db = new DatabasePool({
    pools: { auto: { connection: { connectionString: databaseUrl() }, max: 20, min: 0 } },
    autoTune: { intervalMs: 100, minConnections: 15 },
    logger: null,
  });
  t.teardown(() => db.close());
  await resized;
  t.true(db.getPoolConfig('auto').max >= 15, 'never below the floor');
  t.true(events.some((e) => e.event === 'resized'));
});
