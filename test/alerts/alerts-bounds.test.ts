/**
 * AlertEvaluator under a hung receiver (issue 14, item 8): handler calls are coalesced per
 * (handler, pool, condition) — at most one running and one pending, the latest state wins — so a
 * flapping condition cannot queue calls without bound; `stop()` ends within `stopTimeoutMs` even
 * when a handler never answers; a call running past `handlerTimeoutMs` is abandoned (its `signal`
 * aborted) so the latest state still goes out; the bundled AlertHandler honours that signal (no
 * retries of an abandoned alert) and still resolves an episode whose trigger was abandoned.
 */
import test from 'ava';
import {
  AlertEvaluator,
  AlertHandler,
  type AlertContext,
  type AlertMetrics,
  type AlertSource,
  type LeakedConnectionInfo,
  type ResolvedAlert,
} from '../../src/index.js';
import { ALERT_EVALUATOR_DEFAULTS } from '../../src/alerts/alert-evaluator.js';
import { deferred, httpReceiver, recordingLogger, healthyMetrics, withTimeout } from '../support/alert-receivers.js';
import { eventually } from '../support/helpers.js';

const quiet = { warn() {} };

const healthy = healthyMetrics;

/**
 * One pool whose ConnectionExhaustion condition the test sets, or lets flap: with `flapping` on,
 * every evaluation flips it.
 */
class FlappingSource implements AlertSource {
  holds = false;
  flapping = false;
  evaluations = 0;
  #waiters: { n: number; resolve: () => void }[] = [];
  listPools(): string[] {
    this.evaluations++;
    if (this.flapping) this.holds = !this.holds;
    this.#waiters = this.#waiters.filter((w) => (this.evaluations >= w.n ? (w.resolve(), false) : true));
    return ['main'];
  }
  /** Resolves once `count` more evaluations have started. */
  more(count: number): Promise<void> {
    const n = this.evaluations + count;
    return withTimeout(new Promise((resolve) => this.#waiters.push({ n, resolve })), 15_000, `${count} evaluations`);
  }
  getDetailedMetrics(): AlertMetrics {
    return this.holds ? { ...healthy(), waitingQueueLength: 5, idleConnections: 0 } : healthy();
  }
  getConnectionDetails(): LeakedConnectionInfo[] {
    return [];
  }
}

type Call = { method: 'fired' | 'resolved'; value?: number; signal: AbortSignal | undefined };

/** Records its calls; while `hung`, every call waits for `release()` (never, if the test does not call it). */
class HungReceiver extends AlertHandler {
  calls: Call[] = [];
  #gate = deferred();
  #waiters: { n: number; resolve: () => void }[] = [];
  constructor() {
    super({ logger: null });
  }
  release(): void {
    this.#gate.resolve();
  }
  waitForCalls(n: number, timeoutMs = 15_000): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return withTimeout(new Promise((resolve) => this.#waiters.push({ n, resolve })), timeoutMs, `${n} handler calls (got ${this.calls.length})`);
  }
  async #record(call: Call): Promise<void> {
    this.calls.push(call);
    this.#waiters = this.#waiters.filter((w) => (this.calls.length >= w.n ? (w.resolve(), false) : true));
    await this.#gate.promise;
  }
  override handleConnectionExhaustion(_poolId: string, context?: AlertContext): Promise<void> {
    return this.#record({ method: 'fired', value: context?.value, signal: context?.signal });
  }
  override handleResolved(alert: ResolvedAlert): Promise<void> {
    return this.#record({ method: 'resolved', signal: alert.signal });
  }
}

const onlyExhaustion = { connectionExhaustion: { forMs: 0 }, poolDown: { enabled: false } };

for (const final of ['resolved', 'fired'] as const) {
  test(`a flapping condition behind a hung receiver: at most 2 calls per key, and the final state (${final}) is the last delivered`, async (t) => {
    const src = new FlappingSource();
    const h = new HungReceiver();
    const ev = new AlertEvaluator(src, h, { intervalMs: 10, logger: quiet, rules: onlyExhaustion });
    t.teardown(() => {
      h.release();
      return ev.stop();
    });

    src.holds = true;
    await h.waitForCalls(1); // the receiver is now hung in the first call
    src.flapping = true;
    await src.more(60); // 60 flips: 30 episodes start and end while the receiver hangs
    src.flapping = false;
    src.holds = final === 'fired';
    await src.more(5);
    t.is(h.calls.length, 1, 'nothing else started while the first call hangs');
    const held = (ev as Partial<AlertEvaluator>).callStats?.();

    h.release(); // the receiver answers again
    await h.waitForCalls(2);
    await eventually(() => h.calls.at(-1)!.method === final && (ev as Partial<AlertEvaluator>).callStats?.().inFlight === 0);
    await src.more(5);
    t.is(h.calls.length, 2, `two calls in all for this key (got ${h.calls.length})`);
    t.is(h.calls[1]!.method, final, 'the last call delivered the final state');
    t.like(held, { inFlight: 1, pending: 1 }, 'while hung: one call running, one pending, whatever the number of flips');
    t.true(held!.superseded >= 50, `intermediate states were replaced, not queued (superseded ${held!.superseded})`);
    t.like(ev.callStats(), { inFlight: 0, pending: 0, started: 2 });
    t.is(ev.activeAlerts().length, final === 'fired' ? 1 : 0);
  });
}

test('stop() ends within its bound when a handler never answers, and nothing starts after it', async (t) => {
  const src = new FlappingSource();
  const h = new HungReceiver(); // never released
  const log = recordingLogger();
  const ev = new AlertEvaluator(src, h, { intervalMs: 10, logger: log, rules: onlyExhaustion });
  src.holds = true;
  await h.waitForCalls(1);
  src.holds = false;
  await src.more(3); // a resolve now waits behind the hung trigger

  const t0 = performance.now();
  await withTimeout(ev.stop(), 15_000, 'stop()'); // default stopTimeoutMs: 5 000
  const took = performance.now() - t0;
  t.log(`stop() with a hung handler took ${Math.round(took)} ms`);
  t.true(took < 8_000, `stop() took ${Math.round(took)} ms`);
  t.true(h.calls[0]!.signal?.aborted, 'the abandoned call was told through its signal');
  t.like(ev.callStats(), { inFlight: 0, pending: 0, abandonedAtStop: 1, droppedAtStop: 1 });
  t.true(
    log.lines.some((l) => /handleConnectionExhaustion for pool "main" did not finish within 5000 ms of stop\(\); abandoned/.test(l)),
    log.lines.join('\n'),
  );

  h.release(); // the handler answers late: the dropped resolve must not start now
  await new Promise((r) => setImmediate(r));
  t.is(h.calls.length, 1);
});

test('a call that runs past handlerTimeoutMs is abandoned and the latest state goes out', async (t) => {
  const src = new FlappingSource();
  const h = new HungReceiver(); // never released: every call hangs
  const log = recordingLogger();
  const ev = new AlertEvaluator(src, h, { intervalMs: 10, logger: log, handlerTimeoutMs: 300, stopTimeoutMs: 200, rules: onlyExhaustion });
  t.teardown(() => ev.stop());
  src.holds = true;
  await h.waitForCalls(1);
  src.holds = false;
  await h.waitForCalls(2); // after 300 ms the trigger is abandoned; the resolve starts
  t.true(h.calls[0]!.signal?.aborted);
  t.is(h.calls[1]!.method, 'resolved');
  t.false(h.calls[1]!.signal?.aborted);
  await eventually(() => ev.callStats().timedOut === 2);
  t.true(h.calls[1]!.signal?.aborted);
  t.like(ev.callStats(), { inFlight: 0, pending: 0, started: 2, timedOut: 2 });
  t.true(
    log.lines.some((l) => /ConnectionExhaustion.*did not finish within 300 ms \(handlerTimeoutMs\); abandoned/.test(l)),
    log.lines.join('\n'),
  );
  t.is(h.calls.length, 2, 'no state change, no further call');
});

test('the bundled AlertHandler stops retrying an abandoned alert and still resolves its episode', async (t) => {
  const receiver = await httpReceiver(t, (req) => ((req.json as { status?: string })?.status === 'resolved' ? { status: 200 } : 'hang'));
  const log = recordingLogger();
  const handler = new AlertHandler({
    logger: log,
    timeoutMs: 5_000,
    retry: { attempts: 3, baseDelayMs: 100 },
    channels: { hook: { type: 'webhook', url: receiver.url('/hook') } },
  });
  const src = new FlappingSource();
  const ev = new AlertEvaluator(src, handler, { intervalMs: 10, logger: quiet, handlerTimeoutMs: 300, rules: onlyExhaustion });
  t.teardown(() => ev.stop());
  src.holds = true;
  await receiver.waitFor(1); // the trigger reached a receiver that does not answer
  src.holds = false;
  const [trigger, resolve] = await receiver.waitFor(2); // abandoned after 300 ms; the resolve follows
  t.is((trigger!.json as { status: string }).status, 'firing');
  t.is((resolve!.json as { status: string }).status, 'resolved');
  await eventually(() => log.lines.some((l) => /giving up on alert CRITICAL ConnectionExhaustion/.test(l)));
  t.true(
    log.lines.some((l) => /abandoned/.test(l)),
    log.lines.join('\n'),
  );
  await eventually(() => ev.callStats().inFlight === 0);
  t.is(receiver.requests.length, 2, 'the abandoned trigger was not retried');
});

test('handlerTimeoutMs and stopTimeoutMs are validated; the defaults are 60 s and 5 s', (t) => {
  const err = t.throws(() => new AlertEvaluator(new FlappingSource(), [], { autoStart: false, handlerTimeoutMs: 10, stopTimeoutMs: -1 })) as unknown as {
    code: string;
    issues: { path: string; rule: string }[];
  };
  t.is(err.code, 'INVALID_CONFIG');
  t.deepEqual(
    err.issues.map((i) => [i.path, i.rule]),
    [
      ['handlerTimeoutMs', 'must be a whole number from 100 to 3600000 (milliseconds)'],
      ['stopTimeoutMs', 'must be a whole number from 0 to 600000 (milliseconds)'],
    ],
  );
  t.like(ALERT_EVALUATOR_DEFAULTS, { handlerTimeoutMs: 60_000, stopTimeoutMs: 5_000 });
});
