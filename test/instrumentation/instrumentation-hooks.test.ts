/**
 * requestHook / responseHook that fail: a hook that throws, an `async` hook that rejects (before or
 * after its first await) and a thenable whose `then` fails are all caught and logged through the
 * OpenTelemetry diagnostic logger. None becomes an unhandled rejection (which, under Node's default
 * `--unhandled-rejections=throw`, kills the process), and the query and its span come out exactly
 * as without the hook.
 *
 * The tests wait for events, never for time: the hook's failure reaching the diag logger, or (the
 * bug) reaching process 'unhandledRejection'; then one turn of the event loop, after which Node has
 * processed every rejection left unhandled by the microtasks that ran.
 */
import test, { type ExecutionContext } from 'ava';
import { diag, DiagLogLevel, SpanStatusCode, type DiagLogger, type Span } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { PACKAGE_NAME, type DbPoolInstrumentationConfig } from '../../instrumentations/index.js';
import { newDb } from '../support/helpers.js';
import { setupOtel, type Otel } from '../support/instrumentation-helpers.js';

// The channels, the diag logger and the unhandledRejection listener are process-wide: one at a time.

interface Watch {
  /** Diag errors logged so far (message and first argument). */
  readonly errors: { message: string; err: unknown }[];
  /** Rejections nobody handled, as process 'unhandledRejection' saw them. */
  readonly unhandled: unknown[];
  /** Resolves when `n` diag errors were logged or an unhandled rejection happened (the bug), whichever is first. */
  settled(n: number): Promise<void>;
}

/** Captures diag errors and unhandled rejections for the test; removed when it ends. */
function watch(t: ExecutionContext): Watch {
  const errors: { message: string; err: unknown }[] = [];
  const unhandled: unknown[] = [];
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  const logger: DiagLogger = {
    // The instrumentation's component logger puts its name first: (namespace, message, ...args).
    error: (...args: unknown[]) => {
      if (args[0] === PACKAGE_NAME) args.shift();
      errors.push({ message: String(args[0]), err: args[1] });
      wake();
    },
    warn: () => {},
    info: () => {},
    debug: () => {},
    verbose: () => {},
  };
  diag.setLogger(logger, { logLevel: DiagLogLevel.ERROR, suppressOverrideMessage: true });
  const onUnhandled = (reason: unknown) => {
    unhandled.push(reason);
    wake();
  };
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled);
    diag.disable();
  });
  return {
    errors,
    unhandled,
    async settled(n) {
      // Bounded only so that a hook failure nobody reports fails the test instead of hanging it.
      let timer: NodeJS.Timeout | undefined;
      const giveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 5_000)));
      let gaveUp = false;
      void giveUp.then(() => {
        gaveUp = true;
        wake();
      });
      while (errors.length < n && unhandled.length === 0 && !gaveUp) await new Promise<void>((resolve) => waiters.push(resolve));
      clearTimeout(timer);
      // One more turn of the event loop: Node reports a rejection still unhandled once the
      // microtask queue has drained, before any setImmediate callback runs.
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/** The query span of a pool (the one CLIENT span named after the statement). */
function querySpan(otel: Otel, poolId: string, name: string): ReadableSpan {
  const spans = otel.spans(poolId).filter((s) => s.name === name);
  if (spans.length !== 1) throw new Error(`expected one span "${name}" on ${poolId}, got ${spans.length}`);
  return spans[0]!;
}

/** What a span shows apart from ids, times and the hook's own `app.*` attributes. */
function shape(s: ReadableSpan): unknown {
  const attributes = Object.fromEntries(
    Object.entries(s.attributes).filter(([k]) => !k.startsWith('app.') && k !== 'db_pool.connection.id' && k !== 'db_pool.loan.id'),
  );
  return { name: s.name, kind: s.kind, status: s.status, attributes, events: s.events.length, ended: s.ended };
}

/** Runs `SELECT generate_series(1, 3)` on a fresh pool under an instrumentation with `config`: rows, span. */
async function runQuery(t: ExecutionContext, poolId: string, config: DbPoolInstrumentationConfig) {
  const otel = setupOtel(t, config);
  const db = newDb(t, { [poolId]: { max: 1, min: 0 } });
  const result = await db.query(poolId, 'SELECT generate_series(1, $1::int) AS n', [3]);
  return { otel, result, span: querySpan(otel, poolId, 'SELECT') };
}

/** The same query with no hooks, for comparison: the span's shape, with the pool id replaced. */
async function baseline(t: ExecutionContext, poolId: string): Promise<unknown> {
  const { otel, span } = await runQuery(t, poolId, {});
  otel.instrumentation.disable();
  return shape(span);
}

function samePoolName(shapeOf: unknown, poolId: string): unknown {
  const s = structuredClone(shapeOf) as { attributes: Record<string, unknown> };
  s.attributes['db.client.connection.pool.name'] = poolId;
  return s;
}

test.serial('async hooks that reject after an await: no unhandled rejection, rows and span as without hooks', async (t) => {
  const w = watch(t);
  const expected = await baseline(t, 'hooks_base_a');
  const hookRan: string[] = [];
  const { otel, result, span } = await runQuery(t, 'hooks_async', {
    async requestHook(s: Span) {
      s.setAttribute('app.before_await', true);
      hookRan.push('request');
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('async request hook failed');
    },
    async responseHook() {
      hookRan.push('response');
      await Promise.resolve();
      throw new Error('async response hook failed');
    },
  });
  t.deepEqual(hookRan, ['request', 'response']);
  t.deepEqual(
    result.rows.map((r) => r.n),
    [1, 2, 3],
  );
  t.is(result.rowCount, 3);

  await w.settled(2);
  t.deepEqual(w.unhandled, [], 'no unhandled rejection');
  t.deepEqual(w.errors.map((e) => e.message).sort(), ['requestHook rejected', 'responseHook rejected']);
  t.deepEqual(w.errors.map((e) => (e.err as Error).message).sort(), ['async request hook failed', 'async response hook failed']);

  t.is(span.status.code, SpanStatusCode.UNSET);
  t.true(span.ended);
  t.is(span.attributes['app.before_await'], true, 'what the hook set before its await is on the span');
  t.deepEqual(shape(span), samePoolName(expected, 'hooks_async'));
  otel.instrumentation.disable();
});

test.serial('async hooks that throw before any await (an already rejected promise): caught and logged', async (t) => {
  const w = watch(t);
  const expected = await baseline(t, 'hooks_base_b');
  const { otel, result, span } = await runQuery(t, 'hooks_immediate', {
    async requestHook() {
      throw new Error('immediate request rejection');
    },
    async responseHook() {
      throw new TypeError('immediate response rejection');
    },
  });
  t.deepEqual(
    result.rows.map((r) => r.n),
    [1, 2, 3],
  );
  await w.settled(2);
  t.deepEqual(w.unhandled, []);
  t.deepEqual(w.errors.map((e) => e.message).sort(), ['requestHook rejected', 'responseHook rejected']);
  t.is(span.status.code, SpanStatusCode.UNSET);
  t.deepEqual(shape(span), samePoolName(expected, 'hooks_immediate'));
  otel.instrumentation.disable();
});

test.serial('hooks that throw synchronously: caught and logged, the query and span unaffected', async (t) => {
  const w = watch(t);
  const expected = await baseline(t, 'hooks_base_c');
  const { otel, result, span } = await runQuery(t, 'hooks_sync', {
    requestHook() {
      throw new Error('sync request hook failed');
    },
    responseHook() {
      throw new Error('sync response hook failed');
    },
  });
  t.deepEqual(
    result.rows.map((r) => r.n),
    [1, 2, 3],
  );
  await w.settled(2);
  t.deepEqual(w.unhandled, []);
  t.deepEqual(w.errors.map((e) => e.message).sort(), ['requestHook threw', 'responseHook threw']);
  t.is(span.status.code, SpanStatusCode.UNSET);
  t.deepEqual(shape(span), samePoolName(expected, 'hooks_sync'));
  otel.instrumentation.disable();
});

test.serial('a failing query with a rejecting responseHook: the error reaches the caller, the span is the usual ERROR span', async (t) => {
  const w = watch(t);
  const { otel } = await runQuery(t, 'hooks_fail', {
    async responseHook() {
      await Promise.resolve();
      throw new Error('hook failed too');
    },
  });
  const db = newDb(t, { hooks_fail2: { max: 1, min: 0 } });
  await t.throwsAsync(db.query('hooks_fail2', 'SELECT * FROM missing_table_for_async_hooks'), { message: /missing_table_for_async_hooks/ });
  await w.settled(2); // one per query
  t.deepEqual(w.unhandled, []);
  t.is(w.errors.length, 2);
  const failed = querySpan(otel, 'hooks_fail2', 'SELECT missing_table_for_async_hooks');
  t.is(failed.status.code, SpanStatusCode.ERROR);
  t.is(failed.attributes['error.type'], '42P01');
  otel.instrumentation.disable();
});

test.serial('thenables: a then() that rejects, a then() that throws, a then getter that throws', async (t) => {
  const w = watch(t);
  const rejecting = { then: (_ok: unknown, fail: (e: unknown) => void) => fail(new Error('thenable rejected')) };
  const throwing = {
    then() {
      throw new Error('then threw');
    },
  };
  const badGetter = Object.defineProperty({}, 'then', {
    get() {
      throw new Error('then getter threw');
    },
  });
  const returns = [rejecting, throwing, badGetter];
  let i = 0;
  const { otel, result, span } = await runQuery(t, 'hooks_thenable', {
    // Typed void, as users' hooks are; what they return at run time is what is tested.
    requestHook: (() => returns[i++ % returns.length]) as unknown as DbPoolInstrumentationConfig['requestHook'],
    responseHook: (() => returns[i++ % returns.length]) as unknown as DbPoolInstrumentationConfig['responseHook'],
  });
  t.deepEqual(
    result.rows.map((r) => r.n),
    [1, 2, 3],
  );
  const db = newDb(t, { hooks_thenable2: { max: 1, min: 0 } });
  await db.query('hooks_thenable2', 'SELECT 1');
  await w.settled(4);
  t.deepEqual(w.unhandled, []);
  t.deepEqual(
    w.errors.map((e) => `${e.message}: ${(e.err as Error).message}`),
    [
      'requestHook rejected: thenable rejected',
      'responseHook returned a thenable that threw: then threw',
      'requestHook returned a thenable that threw: then getter threw',
      'responseHook rejected: thenable rejected',
    ],
  );
  t.is(span.status.code, SpanStatusCode.UNSET);
  otel.instrumentation.disable();
});

test.serial('a hook that resolves: nothing logged', async (t) => {
  const w = watch(t);
  let resolved!: () => void;
  const done = new Promise<void>((r) => (resolved = r));
  const { otel, result, span } = await runQuery(t, 'hooks_ok', {
    async requestHook(s: Span) {
      s.setAttribute('app.tenant', 'acme');
      await Promise.resolve();
      resolved();
    },
  });
  t.is(result.rowCount, 3);
  await done;
  await new Promise((r) => setImmediate(r));
  t.deepEqual(w.errors, []);
  t.deepEqual(w.unhandled, []);
  t.is(span.attributes['app.tenant'], 'acme');
  otel.instrumentation.disable();
});
