/**
 * Alerts end to end on a real PostgreSQL: the evaluator watching a DatabasePool, its handlers'
 * default deliveries reaching local receivers (trigger, then resolve with the same key), and a
 * channel that is down while queries keep running undisturbed.
 */
import test, { type ExecutionContext } from 'ava';
import { AlertEvaluator, AlertHandler, DatabasePool, type AlertHandlerOptions, type PoolConfig } from '../../src/index.js';
import { closedPort, deferred, httpReceiver, recordingLogger } from '../support/alert-receivers.js';
import { databaseUrl, uniqueName } from '../support/helpers.js';

const quiet = { warn() {} };

function pool(t: ExecutionContext, cfg: Partial<PoolConfig> = {}): { db: DatabasePool; poolId: string } {
  const poolId = uniqueName('alerts');
  const db = new DatabasePool({ pools: { [poolId]: { connection: { connectionString: databaseUrl() }, min: 0, ...cfg } }, logger: null });
  t.teardown(() => db.close({ drainTimeoutMs: 2_000 }));
  return { db, poolId };
}

function evaluator(t: ExecutionContext, db: DatabasePool, handler: AlertHandler, rules: ConstructorParameters<typeof AlertEvaluator>[2]): AlertEvaluator {
  const ev = new AlertEvaluator(db, handler, { intervalMs: 25, logger: quiet, probe: false, ...rules });
  t.teardown(() => ev.stop());
  return ev;
}

test('ConnectionExhaustion on a real pool: webhook gets the trigger after the hold time, then the resolve', async (t) => {
  const rx = await httpReceiver(t);
  const { db, poolId } = pool(t, { max: 1, acquireTimeoutMs: 10_000 });
  const handler = new AlertHandler({ channels: { ops: { type: 'webhook', url: rx.url('/alerts') } }, logger: null });
  // Open the connection first: a caller waiting for a connection being opened also counts as
  // "waiting with none idle", which would start the episode early.
  await db.query(poolId, 'SELECT 1');
  evaluator(t, db, handler, { rules: { connectionExhaustion: { forMs: 200 } } });

  const held = await db.acquire(poolId);
  const started = performance.now();
  const waiting = db.query(poolId, 'SELECT 1 AS one'); // waits: the only connection is held
  waiting.catch(() => {}); // awaited below; this only keeps a failed assertion from adding an unhandled rejection
  const [fire] = await rx.waitFor(1);
  t.true(fire!.at - started >= 195, `held for 200 ms first (${Math.round(fire!.at - started)} ms)`);
  t.like(fire!.json, { level: 'critical', status: 'firing', poolId, kind: 'ConnectionExhaustion', dedupKey: `db-pool-otel/${poolId}/ConnectionExhaustion` });
  t.regex(
    (fire!.json as { message: string }).message,
    new RegExp(`Pool "${poolId}" is out of connections: 1 of 1 connections in use, 0 idle, 1 callers waiting \\(for 200 ms\\)`),
  );

  held.release();
  t.deepEqual((await waiting).rows, [{ one: 1 }]);
  const [, end] = await rx.waitFor(2);
  t.like(end!.json, { status: 'resolved', poolId, kind: 'ConnectionExhaustion', dedupKey: `db-pool-otel/${poolId}/ConnectionExhaustion`, level: 'critical' });
  t.is(rx.requests.length, 2);
});

test("LeakSuspected on a real pool: PagerDuty trigger with the holder's stack, resolve with the same dedup_key", async (t) => {
  const rx = await httpReceiver(t, () => ({ status: 202, body: '{"status":"success"}' }));
  const { db, poolId } = pool(t, { max: 3, leakDetectionThresholdMs: 100 });
  const handler = new AlertHandler({ channels: { pager: { type: 'pagerduty', routingKey: 'a'.repeat(32), eventsUrl: rx.url('/v2/enqueue') } }, logger: null });
  evaluator(t, db, handler, {});

  const leaked = await db.acquire(poolId);
  await leaked.query('SELECT 42 AS answer');
  const [trigger] = await rx.waitFor(1);
  const ev = trigger!.json as {
    event_action: string;
    dedup_key: string;
    payload: { severity: string; component: string; summary: string; custom_details: Record<string, unknown> };
  };
  t.is(ev.event_action, 'trigger');
  t.is(ev.dedup_key, `db-pool-otel/${poolId}/LeakSuspected`);
  t.is(ev.payload.severity, 'warning');
  t.is(ev.payload.component, poolId);
  t.regex(ev.payload.summary, /connection \d+ held for \d+ ms, possibly leaked; last query: SELECT \?/);
  t.regex(String(ev.payload.custom_details.stackTrace), /alerts-db\.test/);
  t.is(typeof ev.payload.custom_details.connectionId, 'number');

  leaked.release();
  const [, resolve] = await rx.waitFor(2);
  t.deepEqual(resolve!.json, { routing_key: 'a'.repeat(32), event_action: 'resolve', dedup_key: `db-pool-otel/${poolId}/LeakSuspected` });
});

test('HighErrorRate on a real pool: Slack trigger, and the resolve once the window has only successes', async (t) => {
  const rx = await httpReceiver(t);
  const { db, poolId } = pool(t, { max: 2, metricsWindowMs: 1_000 });
  const handler = new AlertHandler({ channels: { chat: { type: 'slack', webhookUrl: rx.url('/services/T/B/token') } }, logger: null });
  evaluator(t, db, handler, { rules: { highErrorRate: { forMs: 0 } } });

  for (let i = 0; i < 3; i++) await t.throwsAsync(db.query(poolId, 'SELECT 1/0'));
  const [fire] = await rx.waitFor(1);
  t.regex(
    (fire!.json as { text: string }).text,
    new RegExp(`WARNING: HighErrorRate on pool "${poolId}": Pool "${poolId}": 100 % of queries are failing \\(threshold 5 %, for 0 ms\\)`),
  );

  // Successful queries until the failures have left the 1 s window and the resolve arrives.
  const resolved = rx.waitFor(2, 15_000);
  let done = false;
  void resolved.finally(() => (done = true));
  while (!done) await db.query(poolId, 'SELECT 1');
  const [, end] = await resolved;
  t.is((end!.json as { attachments: { color: string }[] }).attachments[0]!.color, '#2EB67D');
});

test('a channel that is down (closed port, hung receiver) is retried and logged while queries run undisturbed', async (t) => {
  const port = await closedPort();
  const hung = await httpReceiver(t, () => 'hang');
  const { db, poolId } = pool(t, { max: 5, min: 5, leakDetectionThresholdMs: 50 });
  const log = recordingLogger();
  const gaveUp = deferred();
  const logger = {
    warn(line: string) {
      log.warn(line);
      if (log.lines.filter((l) => l.includes('giving up')).length === 2) gaveUp.resolve();
    },
  };
  const options: AlertHandlerOptions = {
    channels: { down: { type: 'webhook', url: `http://127.0.0.1:${port}/x` }, slow: { type: 'slack', webhookUrl: hung.url('/never'), timeoutMs: 300 } },
    retry: { attempts: 3, baseDelayMs: 200 },
    logger,
  };
  // Open all five connections first, so the numbers below are not connection set-up.
  const warm = await Promise.all(Array.from({ length: 5 }, () => db.acquire(poolId)));
  for (const c of warm) c.release();
  evaluator(t, db, new AlertHandler(options), {});

  const leak = await db.acquire(poolId); // fires LeakSuspected, whose delivery fails for about 1.5 s
  const latencies: number[] = [];
  let failures = 0;
  let delivering = true;
  void gaveUp.promise.then(() => (delivering = false));
  const worker = async () => {
    while (delivering) {
      const t0 = performance.now();
      try {
        await db.query(poolId, 'SELECT pg_backend_pid()');
      } catch {
        failures++;
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  leak.release();

  t.is(failures, 0);
  t.true(latencies.length >= 20, `${latencies.length} queries ran meanwhile`);
  const sorted = [...latencies].sort((a, b) => a - b);
  const p99 = sorted[Math.floor(sorted.length * 0.99)]!;
  const max = sorted[sorted.length - 1]!;
  // The failing delivery takes about 1.5 s (3 attempts of 300 ms plus 200 + 400 ms of backoff):
  // no query waited for it.
  t.true(max < 750, `slowest query ${max.toFixed(1)} ms`);
  const down = log.lines.filter((l) => l.includes('"down"'));
  const slow = log.lines.filter((l) => l.includes('"slow"'));
  t.is(down.length, 3);
  t.is(slow.length, 3);
  t.regex(down[0]!, /attempt 1 of 3 failed: .*ECONNREFUSED.*; retrying in 200 ms/);
  t.regex(slow[2]!, /attempt 3 of 3 failed: no answer within 300 ms; giving up on alert WARNING LeakSuspected/);
  t.log(`${latencies.length} queries during the failing delivery, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
});

test('a handler attached by the evaluator heals the real pool (emergencyScaleUp on exhaustion)', async (t) => {
  const { db, poolId } = pool(t, { max: 2, acquireTimeoutMs: 10_000 });
  const scaled = deferred<{ before: number; after: number }>();
  class Healer extends AlertHandler {
    override async handleConnectionExhaustion(id: string): Promise<void> {
      scaled.resolve(await this.emergencyScaleUp(id));
    }
  }
  const healer = new Healer({ logger: null });
  evaluator(t, db, healer, { rules: { connectionExhaustion: { forMs: 0 } } });
  t.true(healer.attached);
  const a = await db.acquire(poolId);
  const b = await db.acquire(poolId);
  const third = db.acquire(poolId); // waits until the pool grows
  t.like(await scaled.promise, { before: 2, after: 3 });
  t.is(db.getPoolConfig(poolId).max, 3);
  const c = await third;
  for (const conn of [a, b, c]) conn.release();
});
