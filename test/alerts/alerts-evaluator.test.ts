/**
 * AlertEvaluator with a fake source (no database): each rule, held-for durations, one handler call
 * per episode and one on resolve, per-key serialization (and coalescing) under a slow handler and a fast loop,
 * handler failures, removed pools, option validation, an unref'd timer; and PoolDown from a real
 * DatabasePool whose server port is closed.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  AlertEvaluator,
  AlertHandler,
  DatabasePool,
  type AlertContext,
  type AlertMetrics,
  type AlertSource,
  type LeakedConnectionInfo,
  type ResolvedAlert,
} from '../../src/index.js';
import { ALERT_EVALUATOR_DEFAULTS, ALERT_RULE_DEFAULTS } from '../../src/alerts/alert-evaluator.js';
import { closedPort, deferred, recordingLogger, healthyMetrics, withTimeout } from '../support/alert-receivers.js';

const quiet = { warn() {} };

const healthy = healthyMetrics;

/** A source whose metrics the test sets by hand. */
class FakeSource implements AlertSource {
  metrics = new Map<string, AlertMetrics>();
  connections = new Map<string, LeakedConnectionInfo[]>();
  probe: Map<string, string | undefined> | undefined;
  constructor(...pools: string[]) {
    for (const p of pools) this.metrics.set(p, healthy());
  }
  set(poolId: string, patch: Partial<AlertMetrics>): void {
    this.metrics.set(poolId, { ...this.metrics.get(poolId)!, ...patch });
  }
  #evaluations = 0;
  #evalWaiters: { n: number; resolve: () => void }[] = [];
  listPools(): string[] {
    this.#evaluations++;
    this.#evalWaiters = this.#evalWaiters.filter((w) => (this.#evaluations >= w.n ? (w.resolve(), false) : true));
    return [...this.metrics.keys()];
  }
  /** Resolves once `count` more evaluations have started (and, queued behind them, finished reading). */
  evaluations(count: number): Promise<void> {
    const n = this.#evaluations + count + 1;
    return withTimeout(new Promise((resolve) => this.#evalWaiters.push({ n, resolve })), 10_000, `${count} evaluations`);
  }
  getDetailedMetrics(poolId: string): AlertMetrics {
    const m = this.metrics.get(poolId);
    if (!m) throw new Error(`no pool ${poolId}`);
    return { ...m };
  }
  getConnectionDetails(poolId: string): LeakedConnectionInfo[] {
    return this.connections.get(poolId) ?? [];
  }
}

type Call = { method: string; poolId: string; value?: unknown; context?: AlertContext; resolved?: ResolvedAlert; at: number };

/** Records every call; `gate` (when set) holds each call until released. */
class RecordingHandler extends AlertHandler {
  calls: Call[] = [];
  running = new Map<string, number>();
  maxConcurrent = 0;
  gate: Promise<void> | undefined;
  #waiters: { n: number; resolve: () => void }[] = [];

  constructor() {
    super({ logger: null });
  }

  /** Resolves when n calls have started (fails after timeoutMs; its timer also keeps the process alive meanwhile). */
  waitForCalls(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return withTimeout(new Promise((resolve) => this.#waiters.push({ n, resolve })), timeoutMs, `${n} handler calls (got ${this.calls.length})`);
  }

  async #record(key: string, call: Omit<Call, 'at'>): Promise<void> {
    const now = (this.running.get(key) ?? 0) + 1;
    this.running.set(key, now);
    this.maxConcurrent = Math.max(this.maxConcurrent, now);
    this.calls.push({ ...call, at: performance.now() });
    this.#waiters = this.#waiters.filter((w) => (this.calls.length >= w.n ? (w.resolve(), false) : true));
    try {
      if (this.gate) await this.gate;
    } finally {
      this.running.set(key, (this.running.get(key) ?? 1) - 1);
    }
  }

  override handleHighLatency(poolId: string, latencyMs: number, context?: AlertContext) {
    return this.#record(`${poolId}/HighQueryLatency`, { method: 'handleHighLatency', poolId, value: latencyMs, context: context! });
  }
  override handleConnectionExhaustion(poolId: string, context?: AlertContext) {
    return this.#record(`${poolId}/ConnectionExhaustion`, { method: 'handleConnectionExhaustion', poolId, context: context! });
  }
  override handleHighErrorRate(poolId: string, errorRate: number, context?: AlertContext) {
    return this.#record(`${poolId}/HighErrorRate`, { method: 'handleHighErrorRate', poolId, value: errorRate, context: context! });
  }
  override handlePoolDown(poolId: string, error: Error, context?: AlertContext) {
    return this.#record(`${poolId}/PoolDown`, { method: 'handlePoolDown', poolId, value: error, context: context! });
  }
  override handleLeakSuspected(poolId: string, connection: LeakedConnectionInfo, context?: AlertContext) {
    return this.#record(`${poolId}/LeakSuspected`, { method: 'handleLeakSuspected', poolId, value: connection, context: context! });
  }
  override handleResolved(alert: ResolvedAlert) {
    return this.#record(`${alert.poolId}/${alert.kind}`, { method: 'handleResolved', poolId: alert.poolId, resolved: alert });
  }
}

const manual = (rules: ConstructorParameters<typeof AlertEvaluator>[2] = {}) => ({ autoStart: false, logger: quiet, ...rules });

test('a condition must hold for its duration; then one call per episode and one resolve', async (t) => {
  const src = new FakeSource('main');
  const h = new RecordingHandler();
  const ev = new AlertEvaluator(src, h, { intervalMs: 20, logger: quiet, rules: { highQueryLatency: { threshold: 1000, forMs: 200 } } });
  t.teardown(() => ev.stop());
  t.true(ev.running);

  src.set('main', { latencyP99: 1500 });
  const start = performance.now();
  await h.waitForCalls(1);
  const waited = h.calls[0]!.at - start;
  t.true(waited >= 195, `fired after the condition held 200 ms (took ${Math.round(waited)} ms)`);
  t.true(waited < 1_500);
  t.like(h.calls[0], { method: 'handleHighLatency', poolId: 'main', value: 1500 });
  t.like(h.calls[0]!.context, {
    kind: 'HighQueryLatency',
    poolId: 'main',
    dedupKey: 'db-pool-otel/main/HighQueryLatency',
    value: 1500,
    threshold: 1000,
    forMs: 200,
  });

  // Still high, and worse: no second call for the same episode.
  src.set('main', { latencyP99: 2500 });
  for (let i = 0; i < 5; i++) await ev.evaluateNow();
  t.is(h.calls.length, 1);
  t.deepEqual(
    ev.activeAlerts().map((a) => [a.kind, a.poolId, a.value, a.peakValue]),
    [['HighQueryLatency', 'main', 1500, 2500]],
  );

  src.set('main', { latencyP99: 20 });
  await ev.evaluateNow();
  for (let i = 0; i < 3; i++) await ev.evaluateNow();
  t.is(h.calls.length, 2);
  t.like(h.calls[1], { method: 'handleResolved', poolId: 'main' });
  t.like(h.calls[1]!.resolved, { kind: 'HighQueryLatency', dedupKey: 'db-pool-otel/main/HighQueryLatency', value: 1500, peakValue: 2500, reason: 'cleared' });
  t.true(h.calls[1]!.resolved!.durationMs >= 200);
  t.deepEqual(ev.activeAlerts(), []);

  // A new episode fires again (after its duration).
  src.set('main', { latencyP99: 3000 });
  await h.waitForCalls(3);
  t.like(h.calls[2], { method: 'handleHighLatency', value: 3000 });
  t.is(h.maxConcurrent, 1);
});

test('a condition that clears before its duration never calls the handler', async (t) => {
  const src = new FakeSource('main');
  const h = new RecordingHandler();
  const ev = new AlertEvaluator(src, h, manual({ rules: { highErrorRate: { forMs: 60_000 } } }));
  src.set('main', { errorRate: 0.5 });
  await ev.evaluateNow();
  src.set('main', { errorRate: 0 });
  await ev.evaluateNow();
  t.deepEqual(h.calls, []);
});

test('every rule, with the arguments its handler method takes', async (t) => {
  const src = new FakeSource('lat', 'exh', 'err', 'down', 'leak', 'fine');
  src.set('lat', { latencyP99: 1001 });
  src.set('exh', { waitingQueueLength: 4, idleConnections: 0, activeConnections: 10 });
  src.set('err', { errorRate: 0.06 });
  src.set('down', { totalConnections: 0, idleConnections: 0, activeConnections: 0, lastConnectError: 'connect ECONNREFUSED 127.0.0.1:1' });
  src.set('leak', { leakedConnections: 2 });
  src.connections.set('leak', [
    { id: 1, activeDurationMs: 0 },
    { id: 2, activeDurationMs: 5_000, stackTrace: 'Error\n    at held (app.js:1:1)', lastQuery: 'SELECT $1' },
    { id: 3, activeDurationMs: 9_000, stackTrace: 'Error\n    at older (app.js:2:2)' },
  ]);
  const h = new RecordingHandler();
  const zero = { forMs: 0 };
  const ev = new AlertEvaluator(src, h, manual({ rules: { highQueryLatency: zero, connectionExhaustion: zero, highErrorRate: zero, poolDown: zero } }));
  await ev.evaluateNow();
  const by = Object.fromEntries(h.calls.map((c) => [c.poolId, c]));
  t.deepEqual(Object.keys(by).sort(), ['down', 'err', 'exh', 'lat', 'leak']);
  t.like(by.lat, { method: 'handleHighLatency', value: 1001 });
  t.like(by.exh, { method: 'handleConnectionExhaustion' });
  t.like(by.exh!.context, { kind: 'ConnectionExhaustion', value: 4, metrics: { waitingQueueLength: 4, idleConnections: 0 } });
  t.like(by.err, { method: 'handleHighErrorRate', value: 0.06 });
  t.like(by.err!.context, { threshold: 0.05 });
  t.is(by.down!.method, 'handlePoolDown');
  t.true(by.down!.value instanceof Error);
  t.is((by.down!.value as Error).message, 'connect ECONNREFUSED 127.0.0.1:1');
  t.like(by.leak, { method: 'handleLeakSuspected', value: { id: 3, activeDurationMs: 9_000 } });
  t.like(by.leak!.context, { kind: 'LeakSuspected', value: 2, forMs: 0 });
  t.is(h.calls.length, 5);
});

test('defaults are the Prometheus rules', (t) => {
  const ev = new AlertEvaluator(new FakeSource(), new RecordingHandler(), manual());
  t.false(ev.running);
  t.is(ALERT_EVALUATOR_DEFAULTS.intervalMs, 5_000);
  t.deepEqual(ALERT_RULE_DEFAULTS, {
    highQueryLatency: { enabled: true, threshold: 1000, forMs: 120_000 },
    connectionExhaustion: { enabled: true, threshold: 0, forMs: 60_000 },
    highErrorRate: { enabled: true, threshold: 0.05, forMs: 180_000 },
    poolDown: { enabled: true, threshold: 0, forMs: 30_000 },
    leakSuspected: { enabled: true, threshold: 0, forMs: 0 },
  });
});

test('PoolDown from a failing probe counts only while the pool has room', async (t) => {
  const src = new FakeSource('a', 'busy');
  src.set('busy', { activeConnections: 10, maxConnections: 10, idleConnections: 0, waitingQueueLength: 3 });
  let probes = 0;
  const withProbe: AlertSource = Object.assign(src, {
    async healthCheck() {
      probes++;
      return {
        healthyPools: [],
        unhealthyPools: [
          { poolId: 'a', error: 'health probe timed out after 2000 ms' },
          { poolId: 'busy', error: 'health probe timed out after 2000 ms' },
        ],
      };
    },
  });
  const h = new RecordingHandler();
  const ev = new AlertEvaluator(withProbe, h, manual({ rules: { poolDown: { forMs: 0 }, connectionExhaustion: { enabled: false } } }));
  await ev.evaluateNow();
  t.is(probes, 1);
  t.deepEqual(
    h.calls.map((c) => [c.method, c.poolId, (c.value as Error).message]),
    [['handlePoolDown', 'a', 'health probe timed out after 2000 ms']],
  );

  const noProbe = new AlertEvaluator(withProbe, new RecordingHandler(), manual({ probe: false }));
  await noProbe.evaluateNow();
  t.is(probes, 1, 'probe: false never probes');
});

test('a slow handler under a fast loop: never two calls at once for one episode; waiting calls coalesce to the latest state', async (t) => {
  const src = new FakeSource('main');
  const h = new RecordingHandler();
  const gate = deferred();
  h.gate = gate.promise;
  const ev = new AlertEvaluator(src, h, { intervalMs: 10, logger: quiet, rules: { connectionExhaustion: { forMs: 0 } } });
  t.teardown(() => ev.stop());

  src.set('main', { waitingQueueLength: 5, idleConnections: 0 });
  await h.waitForCalls(1); // the handler is now stuck in its first call
  await src.evaluations(20); // twenty evaluations while it is stuck, the condition still holding
  t.is(h.calls.length, 1, 'no second call for the same episode');

  src.set('main', { waitingQueueLength: 0, idleConnections: 2 }); // the episode ends ...
  await src.evaluations(3);
  t.deepEqual(ev.activeAlerts(), []);
  src.set('main', { waitingQueueLength: 9, idleConnections: 0 }); // ... and a new one starts
  await src.evaluations(3);
  t.is(ev.activeAlerts().length, 1);
  t.is(h.calls.length, 1, 'the resolve and the new trigger wait behind the stuck call');
  t.like(ev.callStats(), { inFlight: 1, pending: 1, superseded: 1 }, 'coalesced: the new trigger replaced the waiting resolve');

  gate.resolve();
  await h.waitForCalls(2);
  await ev.stop();
  // The latest state wins: the episode that ended while the handler was stuck is not replayed.
  t.deepEqual(
    h.calls.map((c) => c.method),
    ['handleConnectionExhaustion', 'handleConnectionExhaustion'],
  );
  t.is(h.calls[1]!.context!.value, 9);
  t.is(h.maxConcurrent, 1);
});

test('handler exceptions are caught and logged; other handlers still run; the resolve still comes', async (t) => {
  class Broken extends AlertHandler {
    resolvedCalls = 0;
    override async handleHighErrorRate(): Promise<void> {
      throw new Error('handler bug');
    }
    override async handleResolved(): Promise<void> {
      this.resolvedCalls++;
    }
  }
  const src = new FakeSource('main');
  const broken = new Broken({ logger: null });
  const good = new RecordingHandler();
  const log = recordingLogger();
  const ev = new AlertEvaluator(src, [broken, good], { autoStart: false, logger: log, rules: { highErrorRate: { forMs: 0 } } });
  src.set('main', { errorRate: 0.9 });
  await t.notThrowsAsync(ev.evaluateNow());
  t.deepEqual(log.lines, ['[db-pool-otel] alert handler Broken.handleHighErrorRate for pool "main" failed: handler bug']);
  t.is(good.calls.length, 1);
  src.set('main', { errorRate: 0 });
  await ev.evaluateNow();
  t.is(broken.resolvedCalls, 1);
  t.is(good.calls[1]!.method, 'handleResolved');
});

test('a pool that disappears while firing is resolved with reason pool-removed', async (t) => {
  const src = new FakeSource('gone', 'stays');
  src.set('gone', { leakedConnections: 1 });
  src.connections.set('gone', [{ id: 7, activeDurationMs: 100 }]);
  const h = new RecordingHandler();
  const ev = new AlertEvaluator(src, h, manual());
  await ev.evaluateNow();
  t.is(h.calls.length, 1);
  src.metrics.delete('gone');
  await ev.evaluateNow();
  t.is(h.calls.length, 2);
  t.like(h.calls[1]!.resolved, { kind: 'LeakSuspected', poolId: 'gone', reason: 'pool-removed' });
});

test('a disabled rule is not evaluated', async (t) => {
  const src = new FakeSource('main');
  src.set('main', { leakedConnections: 3 });
  const h = new RecordingHandler();
  const ev = new AlertEvaluator(src, h, manual({ rules: { leakSuspected: { enabled: false } } }));
  await ev.evaluateNow();
  t.deepEqual(h.calls, []);
});

test('invalid evaluator options: INVALID_CONFIG naming the field', (t) => {
  const err = t.throws(
    () => new AlertEvaluator(new FakeSource(), [], { intervalMs: 0, rules: { highQueryLatency: { forMs: -1, treshold: 5 }, nope: {} }, probe: 'yes' } as never),
  ) as unknown as {
    code: string;
    issues: { path: string; rule: string }[];
  };
  t.is(err.code, 'INVALID_CONFIG');
  t.deepEqual(err.issues.map((i) => i.path).sort(), ['intervalMs', 'probe', 'rules.highQueryLatency.forMs', 'rules.highQueryLatency.treshold', 'rules.nope']);
});

test('the evaluation timer does not keep the process alive', async (t) => {
  const script = `
    import { AlertEvaluator, AlertHandler } from './src/index.ts';
    const src = { listPools: () => [], getDetailedMetrics() { throw new Error('x'); }, getConnectionDetails: () => [] };
    new AlertEvaluator(src, new AlertHandler({ logger: null }), { intervalMs: 50 });
    console.log('started');
  `;
  // Resolves only if the child exits by itself (execFile kills it at the timeout and rejects).
  const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: process.cwd(),
    timeout: 20_000,
    encoding: 'utf8',
  });
  t.is(r.stdout.trim(), 'started');
});

test('PoolDown from a real DatabasePool whose server is unreachable; handlers are attached to it', async (t) => {
  const port = await closedPort();
  const db = new DatabasePool({
    pools: { down: { connection: { host: '127.0.0.1', port, user: 'u', database: 'd' }, min: 1, max: 2, acquireTimeoutMs: 500 } },
    logger: null,
  });
  t.teardown(() => db.close({ drainTimeoutMs: 200 }));
  const h = new RecordingHandler();
  const ev = new AlertEvaluator(db, h, { intervalMs: 50, logger: quiet, rules: { poolDown: { forMs: 200 } } });
  t.teardown(() => ev.stop());
  t.true(h.attached);
  await h.waitForCalls(1);
  t.is(h.calls[0]!.method, 'handlePoolDown');
  t.regex((h.calls[0]!.value as Error).message, /ECONNREFUSED/);
  t.like(h.calls[0]!.context, { kind: 'PoolDown', poolId: 'down', forMs: 200 });
  t.is(h.calls.length, 1);
});
