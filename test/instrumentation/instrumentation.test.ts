import test from 'ava';
import { readFileSync } from 'node:fs';
import { channel } from 'node:diagnostics_channel';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { DataPointType, type Histogram } from '@opentelemetry/sdk-metrics';
import {
  acquireChannel,
  CHANNELS,
  connectChannel,
  leakChannel,
  poolChannel,
  queryChannel,
  releaseChannel,
  slowQueryChannel,
  type LeakMessage,
  type SlowQueryMessage,
} from '../../src/index.js';
import { activeTraceId } from '../../src/trace-context.js';
import { tracingActive } from '../../src/channels.js';
import { OPERATION_DURATION_BUCKETS, PACKAGE_VERSION } from '../../instrumentations/index.js';
import { eventually, newDb } from '../support/helpers.js';
import { byName, parentId, point, serverOf, setupOtel, spanText, valueOf } from '../support/instrumentation-helpers.js';

// Every test installs its own instrumentation on the process-wide channels: run them one at a time.

test.serial('a query inside a request: acquire, connect and query spans with every attribute', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { spans: { max: 2, min: 0 } });
  const server = serverOf();

  const { parent, result } = await otel.inSpan('GET /users', () =>
    db.query('spans', "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'pg_class' AND relnatts > $1", [0]),
  );
  t.is(result.rowCount, 1);
  const spans = otel.spans('spans');
  t.deepEqual(spans.map((s) => s.name).sort(), ['SELECT pg_catalog.pg_class', 'acquire spans', 'connect spans']);

  const acquire = byName(spans, 'acquire spans');
  const connect = byName(spans, 'connect spans');
  const query = byName(spans, 'SELECT pg_catalog.pg_class');
  const traceId = parent.spanContext().traceId;
  for (const s of spans) t.is(s.spanContext().traceId, traceId, s.name);

  // Acquire: INTERNAL, child of the caller's span.
  t.is(acquire.kind, SpanKind.INTERNAL);
  t.is(parentId(acquire), parent.spanContext().spanId);
  t.is(acquire.status.code, SpanStatusCode.UNSET);
  const conId = acquire.attributes['db_pool.connection.id'];
  t.true(typeof conId === 'number');
  t.like(acquire.attributes, {
    'db.system.name': 'postgresql',
    'db.client.connection.pool.name': 'spans',
    'db_pool.acquire.pending_at_start': 0,
    'db_pool.acquire.must_wait': true, // no connection open yet
  });
  t.true((acquire.attributes['db_pool.acquire.wait_ms'] as number) >= 0);
  t.true(typeof acquire.attributes['db_pool.loan.id'] === 'number');

  // Connect: CLIENT, caused by (child of) the acquire that needed it.
  t.is(connect.kind, SpanKind.CLIENT);
  t.is(parentId(connect), acquire.spanContext().spanId);
  t.deepEqual(connect.attributes, {
    'db.system.name': 'postgresql',
    'db.client.connection.pool.name': 'spans',
    'db_pool.connect.attempt': 1,
    'db.namespace': server.database,
    'server.address': server.address,
    'server.port': server.port,
    'db_pool.connection.id': conId,
  });

  // Query: CLIENT, child of the caller's span, named by its summary, sanitized text.
  t.is(query.kind, SpanKind.CLIENT);
  t.is(parentId(query), parent.spanContext().spanId);
  t.is(query.status.code, SpanStatusCode.UNSET);
  t.deepEqual(query.attributes, {
    'db.system.name': 'postgresql',
    'db.client.connection.pool.name': 'spans',
    'db.namespace': server.database,
    'db.operation.name': 'SELECT',
    'db.collection.name': 'pg_catalog.pg_class',
    'server.address': server.address,
    'server.port': server.port,
    'db.query.summary': 'SELECT pg_catalog.pg_class',
    'db.query.text': 'SELECT relname FROM pg_catalog.pg_class WHERE relname = ? AND relnatts > $1',
    'db_pool.connection.id': conId,
    'db_pool.query.values_count': 1,
    'db_pool.query.row_count': 1,
    'db.response.returned_rows': 1,
  });
  // Order in time: acquire ends before the query starts.
  const ns = (hr: [number, number]) => hr[0] * 1e9 + hr[1];
  t.true(ns(acquire.endTime) <= ns(query.startTime));

  // A second query reuses the idle connection: no connect span, and (acquireSpans 'waited', the
  // default) no acquire span: one span per statement, carrying the wait.
  otel.exporter.reset();
  await otel.inSpan('GET /again', () => db.query('spans', 'SELECT 1'));
  const again = otel.spans('spans');
  t.deepEqual(again.map((s) => s.name).sort(), ['SELECT']);
  t.is(typeof byName(again, 'SELECT').attributes['db_pool.acquire.wait_ms'], 'number');
  t.is(byName(again, 'SELECT').attributes['db.collection.name'], undefined);
  // With acquireSpans: 'always' the same acquire has its own span, must_wait false.
  otel.instrumentation.setConfig({ acquireSpans: 'always' });
  otel.exporter.reset();
  await otel.inSpan('GET /always', () => db.query('spans', 'SELECT 1'));
  const always = otel.spans('spans');
  t.deepEqual(always.map((s) => s.name).sort(), ['SELECT', 'acquire spans']);
  t.is(byName(always, 'acquire spans').attributes['db_pool.acquire.must_wait'], false);
  t.is(byName(always, 'SELECT').attributes['db_pool.acquire.wait_ms'], undefined, 'the wait is on the acquire span');
});

test.serial('failed statements: ERROR status, SQLSTATE and error.type, nothing from the server message', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { errs: { max: 1, min: 0 } });
  await t.throwsAsync(db.query('errs', 'SELECT * FROM missing_table_for_otel'), { message: /missing_table_for_otel/ });
  // The server quotes the bad value in its message: it must stay out of the span.
  await t.throwsAsync(db.query('errs', "SELECT 'Zebra77'::int"), { message: /Zebra77/ });

  const missing = byName(otel.spans('errs'), 'SELECT missing_table_for_otel');
  t.is(missing.status.code, SpanStatusCode.ERROR);
  t.is(missing.status.message, '42P01');
  t.is(missing.attributes['db.response.status_code'], '42P01');
  t.is(missing.attributes['error.type'], '42P01');
  t.is(missing.attributes['db_pool.query.row_count'], undefined);

  const cast = byName(otel.spans('errs'), 'SELECT');
  t.is(cast.attributes['error.type'], '22P02');
  t.is(cast.attributes['db.query.text'], 'SELECT ?::int');
  for (const s of otel.spans()) t.false(spanText(s).includes('Zebra77'), s.name);

  const m = await otel.metrics();
  const duration = m.get('db.client.operation.duration')!;
  t.is(valueOf(duration, { 'db.client.connection.pool.name': 'errs', 'error.type': '42P01', 'db.response.status_code': '42P01' }), 1);
  t.is(valueOf(duration, { 'db.client.connection.pool.name': 'errs', 'error.type': '22P02' }), 1);
});

test.serial('a literal in the SQL never appears in any span or metric by default', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { lit: { max: 2, min: 0 } });
  const secret = 'TopSecret4242';
  await db.query('lit', `SELECT '${secret}' AS s`);
  await db.query('lit', `SELECT relname FROM pg_class WHERE relname = '${secret}' OR relname = E'${secret}\\n'`);
  await db.query('lit', 'SELECT $1::text AS s', [secret]);
  await db.query('lit', `/* ${secret} */ SELECT 1 -- ${secret}`);
  await db.query('lit', `SELECT $tag$${secret}$tag$ AS s`);
  await db.query('lit', `SELECT 424242 AS n`);
  await db.transaction('lit', async (tx) => {
    await tx.query(`SELECT '${secret}'`);
  });
  await t.throwsAsync(db.query('lit', `SELECT '${secret}'::int`));
  await t.throwsAsync(db.query('lit', `SELECT * FROM "${secret}"`)); // an identifier, not a literal: allowed in text, checked below

  const spans = otel.spans();
  t.true(spans.length >= 10);
  const leaking = spans.filter((s) => spanText(s).includes(secret) || spanText(s).includes('424242'));
  // Only the quoted identifier (a table name, not a value) may show up.
  t.deepEqual(
    leaking.map((s) => s.name),
    [`SELECT ${secret}`],
  );
  const { resourceMetrics } = await otel.reader.collect();
  const metricsText = JSON.stringify(resourceMetrics.scopeMetrics);
  t.false(metricsText.includes('424242'));
  t.false(metricsText.includes(`'${secret}'`));
});

test.serial('queryText raw and off', async (t) => {
  const raw = setupOtel(t, { queryText: 'raw' });
  const db = newDb(t, { raw: { max: 1, min: 0 } });
  await db.query('raw', "SELECT 'visible' AS v");
  t.is(byName(raw.spans('raw'), 'SELECT').attributes['db.query.text'], "SELECT 'visible' AS v");
  raw.instrumentation.disable();

  const off = setupOtel(t, { queryText: 'off' });
  await db.query('raw', "SELECT 'hidden' AS v");
  const span = byName(off.spans('raw'), 'SELECT');
  t.false('db.query.text' in span.attributes);
  t.is(span.attributes['db.query.summary'], 'SELECT');
});

test.serial('acquireSpans: false drops acquire spans and keeps the wait-time histogram', async (t) => {
  const otel = setupOtel(t, { acquireSpans: false });
  const db = newDb(t, { noacq: { max: 1, min: 0 } });
  await otel.inSpan('req', async () => {
    await db.query('noacq', 'SELECT 1');
    await db.query('noacq', 'SELECT 2');
  });
  const names = otel.spans('noacq').map((s) => s.name);
  t.false(names.some((n) => n.startsWith('acquire')));
  t.true(names.includes('SELECT'));
  // The connect span has no acquire span to hang from: it is the caller's child.
  const parent = byName(otel.spans(), 'req');
  t.is(parentId(byName(otel.spans('noacq'), 'connect noacq')), parent.spanContext().spanId);
  const m = await otel.metrics();
  t.is(valueOf(m.get('db.client.connection.wait_time'), { 'db.client.connection.pool.name': 'noacq' }), 2);
});

test.serial('requireParentSpan: no spans without a caller span, metrics all the same', async (t) => {
  const otel = setupOtel(t, { requireParentSpan: true });
  const db = newDb(t, { orphan: { max: 1, min: 0 } });
  await db.query('orphan', 'SELECT 1');
  t.is(otel.spans('orphan').length, 0);
  await otel.inSpan('req', () => db.query('orphan', 'SELECT 1'));
  t.deepEqual(
    otel
      .spans('orphan')
      .map((s) => s.name)
      .sort(),
    ['SELECT'],
    'warm: one span per statement',
  );
  const m = await otel.metrics();
  t.is(valueOf(m.get('db.client.operation.duration'), { 'db.client.connection.pool.name': 'orphan' }), 2);
});

test.serial('requestHook and responseHook see the query; a throwing hook changes nothing', async (t) => {
  const seen: string[] = [];
  const otel = setupOtel(t, {
    requestHook(span, info) {
      seen.push(`request ${info.poolId} ${info.description.summary} ${info.valuesCount}`);
      span.setAttribute('app.tenant', 'acme');
    },
    responseHook(span, info) {
      seen.push(`response ${info.rowCount} ${info.command} ${info.sqlState ?? '-'}`);
      span.setAttribute('app.rows', info.rowCount ?? -1);
    },
  });
  const db = newDb(t, { hooks: { max: 1, min: 0 } });
  await db.query('hooks', 'SELECT generate_series(1, $1::int)', [3]);
  await t.throwsAsync(db.query('hooks', 'SELECT * FROM missing_table_for_hooks'));
  t.deepEqual(seen, ['request hooks SELECT 1', 'response 3 SELECT -', 'request hooks SELECT missing_table_for_hooks 0', 'response undefined undefined 42P01']);
  t.like(byName(otel.spans('hooks'), 'SELECT').attributes, { 'app.tenant': 'acme', 'app.rows': 3 });

  const broken = setupOtel(t, {
    requestHook() {
      throw new Error('request hook bug');
    },
    responseHook() {
      throw new Error('response hook bug');
    },
  });
  otel.instrumentation.disable();
  const res = await db.query('hooks', 'SELECT 1 AS one');
  t.is(res.rows[0]!.one, 1);
  t.is(broken.spans('hooks').length, 1); // the query (warm: no acquire span), ended
});

test.serial('an acquire timeout: ERROR span with error.type, timeouts counter', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { tmo: { max: 1, min: 0 } });
  // Opened with the default timeout: under load a first connect can take longer than the short one tested.
  const held = await db.acquire('tmo');
  await db.updatePoolConfig('tmo', { acquireTimeoutMs: 150 });
  await otel.inSpan('req', async () => {
    await t.throwsAsync(db.acquire('tmo'), { code: 'ACQUIRE_TIMEOUT' } as never);
  });
  held.release();
  const failed = otel.spans('tmo').filter((s) => s.name === 'acquire tmo' && s.status.code === SpanStatusCode.ERROR);
  t.is(failed.length, 1);
  t.is(failed[0]!.attributes['error.type'], 'ACQUIRE_TIMEOUT');
  t.is(failed[0]!.attributes['db_pool.acquire.pending_at_start'], 0);
  t.regex(failed[0]!.status.message!, /total 1, active 1, idle 0/);
  const m = await otel.metrics();
  t.is(valueOf(m.get('db.client.connection.timeouts'), { 'db.client.connection.pool.name': 'tmo' }), 1);
  t.is(valueOf(m.get('db_pool.acquire.errors'), { 'db.client.connection.pool.name': 'tmo', 'error.type': 'ACQUIRE_TIMEOUT' }), 1);
});

test.serial('a caller that waited links to the loan whose release served it', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { link: { max: 1, min: 0, acquireTimeoutMs: 5_000 } });
  let releaseHolder!: () => void;
  const holderDone = otel.inSpan('holder request', async () => {
    const conn = await db.acquire('link');
    await new Promise<void>((resolve) => (releaseHolder = resolve));
    conn.release();
  });
  t.true(await eventually(() => releaseHolder !== undefined), 'the holder has its connection');
  const waiterDone = otel.inSpan('waiter request', async () => {
    const p = db.query('link', 'SELECT 1');
    t.true(await eventually(() => db.getPoolStatus('link').waiting === 1), 'the waiter is queued');
    releaseHolder();
    return p;
  });
  const [holder, waiter] = await Promise.all([holderDone, waiterDone]);
  const acquires = otel.spans('link').filter((s) => s.name === 'acquire link');
  const holderAcquire = acquires.find((s) => s.spanContext().traceId === holder.parent.spanContext().traceId)!;
  const waiterAcquire = acquires.find((s) => s.spanContext().traceId === waiter.parent.spanContext().traceId)!;
  t.truthy(holderAcquire && waiterAcquire);
  t.is(waiterAcquire.attributes['db_pool.acquire.must_wait'], true);
  t.is(waiterAcquire.links.length, 1);
  t.is(waiterAcquire.links[0]!.context.spanId, holderAcquire.spanContext().spanId);
  t.is(waiterAcquire.links[0]!.context.traceId, holder.parent.spanContext().traceId);
  t.is(waiterAcquire.links[0]!.attributes?.['db_pool.link.served_by_loan'], holderAcquire.attributes['db_pool.loan.id']);
  t.is(holderAcquire.links.length, 0);
});

test.serial('two pools at once: per-pool connection counts, limits, pending requests and durations', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, {
    alpha: { max: 4, min: 1, acquireTimeoutMs: 5_000 },
    beta: { max: 2, min: 0, acquireTimeoutMs: 5_000 },
  });
  for (let i = 0; i < 3; i++) await db.query('alpha', 'SELECT 1');
  for (let i = 0; i < 5; i++) await db.query('beta', 'SELECT 1');
  const a = await Promise.all([db.acquire('alpha'), db.acquire('alpha'), db.acquire('alpha')]);
  const b1 = await db.acquire('beta');
  const b2 = await db.acquire('beta');
  b2.release();
  const b3 = await db.acquire('beta');
  const waiting = [db.acquire('beta'), db.acquire('beta')];
  t.true(await eventually(() => db.getPoolStatus('beta').waiting === 2), 'two callers queue on beta');

  const m = await otel.metrics();
  const count = m.get('db.client.connection.count')!;
  t.is(count.dataPointType, DataPointType.SUM);
  t.is(count.descriptor.unit, '{connection}');
  const pool = (p: string) => ({ 'db.client.connection.pool.name': p });
  const stA = db.getPoolStatus('alpha');
  t.is(valueOf(count, { ...pool('alpha'), 'db.client.connection.state': 'used' }), 3);
  t.is(valueOf(count, { ...pool('alpha'), 'db.client.connection.state': 'idle' }), stA.idle);
  t.is(valueOf(count, { ...pool('beta'), 'db.client.connection.state': 'used' }), 2);
  t.is(valueOf(count, { ...pool('beta'), 'db.client.connection.state': 'idle' }), 0);
  t.is(valueOf(m.get('db.client.connection.max'), pool('alpha')), 4);
  t.is(valueOf(m.get('db.client.connection.max'), pool('beta')), 2);
  t.is(valueOf(m.get('db.client.connection.idle.max'), pool('alpha')), 4);
  t.is(valueOf(m.get('db.client.connection.idle.min'), pool('alpha')), 1);
  t.is(valueOf(m.get('db.client.connection.idle.min'), pool('beta')), 0);
  t.is(valueOf(m.get('db.client.connection.pending_requests'), pool('alpha')), 0);
  t.is(valueOf(m.get('db.client.connection.pending_requests'), pool('beta')), 2);
  t.is(m.get('db.client.connection.pending_requests')!.descriptor.unit, '{request}');

  const duration = m.get('db.client.operation.duration')!;
  t.is(duration.descriptor.unit, 's');
  t.is(valueOf(duration, pool('alpha')), 3);
  t.is(valueOf(duration, pool('beta')), 5);
  const hp = point(duration, pool('beta'))!.value as Histogram;
  t.deepEqual(hp.buckets.boundaries, [...OPERATION_DURATION_BUCKETS]);
  t.deepEqual(OPERATION_DURATION_BUCKETS, [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]);
  t.like(point(duration, pool('beta'))!.attributes, { 'db.operation.name': 'SELECT', 'db.system.name': 'postgresql' });
  t.is(valueOf(m.get('db.client.connection.wait_time'), pool('beta')), 5 + 3);
  t.is(m.get('db.client.connection.wait_time')!.descriptor.unit, 's');
  // use_time: beta released 5 (queries) + 1 (b2) loans so far.
  t.is(valueOf(m.get('db.client.connection.use_time'), pool('beta')), 6);
  t.true(valueOf(m.get('db.client.connection.create_time'), pool('alpha')) >= 3);
  t.is(valueOf(m.get('db.client.connection.create_time'), pool('beta')), 2);

  for (const c of [...a, b1, b3]) c.release();
  for (const c of await Promise.all(waiting)) c.release();
  const after = await otel.metrics();
  t.is(valueOf(after.get('db.client.connection.count'), { ...pool('beta'), 'db.client.connection.state': 'used' }), 0);
  t.is(valueOf(after.get('db.client.connection.pending_requests'), pool('beta')), 0);

  await db.removePool('beta');
  const removed = await otel.metrics();
  // The SDK would keep exporting a removed pool's last values: they drop to 0 instead.
  t.is(point(removed.get('db.client.connection.max'), pool('beta'))?.value, 0, 'a removed pool reads 0');
  t.is(valueOf(removed.get('db.client.connection.count'), { ...pool('beta'), 'db.client.connection.state': 'idle' }), 0);
  t.is(valueOf(removed.get('db.client.connection.max'), pool('alpha')), 4);
  t.is(valueOf(removed.get('db_pool.events'), { ...pool('beta'), 'db_pool.event': 'removed' }), 1);
});

test.serial('project metrics: slow queries, leaks, discarded connections, create errors, pool events', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { proj: { max: 2, min: 0 } });
  const pool = { 'db.client.connection.pool.name': 'proj' };
  // A connection released inside a transaction is closed, not reused.
  const conn = await db.acquire('proj');
  await conn.query('BEGIN');
  conn.release();
  // The report channels, as the core publishes them.
  slowQueryChannel.publish({
    poolId: 'proj',
    connectionId: 1,
    text: 'SELECT * FROM t WHERE id = ?',
    fingerprint: '0123456789abcdef',
    durationMs: 1500,
    at: Date.now(),
    error: undefined,
    sqlState: undefined,
    traceId: undefined,
  } satisfies SlowQueryMessage);
  leakChannel.publish({
    poolId: 'proj',
    connectionId: 1,
    loanId: 1,
    heldMs: 60_000,
    acquiredAt: Date.now() - 60_000,
    stack: undefined,
    traceId: undefined,
    kind: 'suspected',
  } satisfies LeakMessage);
  // A pool whose server is not there: the connect fails.
  const dead = newDb(t, { deadpool: { connection: { host: '127.0.0.1', port: 1, user: 'x', database: 'x' }, max: 1, min: 0, acquireTimeoutMs: 500 } });
  await t.throwsAsync(dead.query('deadpool', 'SELECT 1'));

  const m = await otel.metrics();
  t.is(valueOf(m.get('db_pool.connection.discarded'), { ...pool, 'db_pool.discard.reason': 'in-transaction' }), 1);
  t.is(valueOf(m.get('db_pool.slow_queries'), { ...pool, 'db.operation.name': 'SELECT' }), 1);
  t.is(valueOf(m.get('db_pool.leaks'), { ...pool, 'db_pool.leak.kind': 'suspected' }), 1);
  t.true(valueOf(m.get('db_pool.connection.create_errors'), { 'db.client.connection.pool.name': 'deadpool', 'error.type': 'ECONNREFUSED' }) >= 1);
  t.is(valueOf(m.get('db_pool.events'), { ...pool, 'db_pool.event': 'created' }), 1);
  const connects = otel.spans('deadpool').filter((s) => s.name === 'connect deadpool');
  t.true(connects.length >= 1);
  t.is(connects[0]!.status.code, SpanStatusCode.ERROR);
  t.is(connects[0]!.attributes['error.type'], 'ECONNREFUSED');
  const acquire = otel.spans('deadpool').find((s) => s.name === 'acquire deadpool')!;
  t.is(acquire.status.code, SpanStatusCode.ERROR);
  t.is(acquire.attributes['error.type'], 'CONNECTION_FAILED');
});

test.serial('disable() stops all telemetry and unsubscribes; enable() resumes', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { toggle: { max: 1, min: 1 } });
  await otel.inSpan('req', () => db.query('toggle', 'SELECT 1'));
  t.true(tracingActive(queryChannel));
  t.truthy(activeTraceId() === undefined); // outside any span
  let inside: string | undefined;
  await otel.inSpan('req', async (span) => {
    inside = activeTraceId();
    t.is(inside, span.spanContext().traceId);
  });

  otel.instrumentation.disable();
  t.false(tracingActive(acquireChannel));
  t.false(tracingActive(queryChannel));
  t.false(tracingActive(connectChannel));
  t.false(releaseChannel.hasSubscribers);
  t.false(poolChannel.hasSubscribers);
  t.false(leakChannel.hasSubscribers);
  t.false(slowQueryChannel.hasSubscribers);
  await otel.inSpan('req', async () => {
    t.is(activeTraceId(), undefined, 'the trace-id provider is removed');
  });

  const before = await otel.metrics();
  const spansBefore = otel.spans('toggle').length;
  await otel.inSpan('req', async () => {
    await db.query('toggle', 'SELECT 1');
    await t.throwsAsync(db.query('toggle', 'SELECT * FROM missing_table_for_toggle'));
  });
  channel(CHANNELS.pool).publish({ poolId: 'toggle', event: 'resized' });
  t.is(otel.spans('toggle').length, spansBefore, 'no spans while disabled');
  const after = await otel.metrics();
  const pool = { 'db.client.connection.pool.name': 'toggle' };
  t.is(valueOf(after.get('db.client.operation.duration'), pool), valueOf(before.get('db.client.operation.duration'), pool));
  t.is(valueOf(after.get('db.client.connection.wait_time'), pool), valueOf(before.get('db.client.connection.wait_time'), pool));
  t.is(point(after.get('db.client.connection.count'), pool), undefined, 'observable instruments report nothing');
  t.is(point(after.get('db.client.connection.max'), pool), undefined);

  otel.instrumentation.enable();
  await otel.inSpan('req', () => db.query('toggle', 'SELECT 1'));
  t.is(otel.spans('toggle').length, spansBefore + 1, 'the statement (warm: no acquire span)');
  t.is(valueOf((await otel.metrics()).get('db.client.connection.max'), pool), 1);
});

test.serial('enabled: false waits for enable(); setMeterProvider later keeps observing live state', async (t) => {
  const otel = setupOtel(t, { enabled: false });
  const db = newDb(t, { late: { max: 3, min: 0 } });
  t.false(tracingActive(queryChannel));
  await db.query('late', 'SELECT 1');
  t.is(otel.spans().length, 0);
  const held = await db.acquire('late');
  otel.instrumentation.enable();
  // A new meter provider (NodeSDK does this after enabling): instruments are re-created on it.
  const { MeterProvider } = await import('@opentelemetry/sdk-metrics');
  const { PullMetricReader } = await import('../support/instrumentation-helpers.js');
  const reader = new PullMetricReader();
  const provider = new MeterProvider({ readers: [reader] });
  t.teardown(() => provider.shutdown());
  otel.instrumentation.setMeterProvider(provider);
  await db.query('late', 'SELECT 1');
  held.release();
  const { resourceMetrics } = await reader.collect();
  const metrics = new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => [m.descriptor.name, m] as const)));
  const pool = { 'db.client.connection.pool.name': 'late' };
  t.is(valueOf(metrics.get('db.client.connection.max'), pool), 3);
  t.is(valueOf(metrics.get('db.client.operation.duration'), pool), 1);
  t.is(valueOf(metrics.get('db.client.connection.use_time'), pool), 2);
  // The old provider's observable callback was removed: it no longer sees the pool.
  const old = await otel.metrics();
  t.is(point(old.get('db.client.connection.max'), pool), undefined);
});

test.serial('the instrumentation scope carries the package version', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(PACKAGE_VERSION, pkg.version);
  const otel = setupOtel(t);
  const db = newDb(t, { scope: { max: 1, min: 0 } });
  await db.query('scope', 'SELECT 1');
  const span = otel.spans('scope')[0]!;
  t.is(span.instrumentationScope.name, 'db-pool-otel');
  t.is(span.instrumentationScope.version, pkg.version);
});

test.serial('real slow-query and leak reports: counted, and stamped with the trace id of the request', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { real: { max: 2, min: 0, slowQueryThresholdMs: 10, leakDetectionThresholdMs: 40 } });
  const pool = { 'db.client.connection.pool.name': 'real' };
  const { parent } = await otel.inSpan('slow request', async () => {
    const conn = await db.acquire('real');
    await conn.query('SELECT pg_sleep(0.03)');
    t.true(
      await eventually(async () => valueOf((await otel.metrics()).get('db_pool.leaks'), { ...pool, 'db_pool.leak.kind': 'suspected' }) === 1),
      'the held connection is reported as a suspected leak',
    );
    conn.release();
  });
  const m = await otel.metrics();
  t.is(valueOf(m.get('db_pool.slow_queries'), { ...pool, 'db.operation.name': 'SELECT' }), 1);
  t.is(valueOf(m.get('db_pool.leaks'), { ...pool, 'db_pool.leak.kind': 'suspected' }), 1);
  const [slow] = db.getSlowQueries('real');
  t.is(slow?.traceId, parent.spanContext().traceId, 'the core got the trace id through setTraceIdProvider');
});

test.serial('spans per operation: 3 for a cold query, 2 warm, 1 + n + 2 for a transaction of n statements', async (t) => {
  const otel = setupOtel(t);
  const db = newDb(t, { count: { max: 1, min: 0 } });
  await db.query('count', 'SELECT 1');
  t.is(otel.spans('count').length, 3);
  otel.exporter.reset();
  await db.query('count', 'SELECT 1');
  t.is(otel.spans('count').length, 1, 'warm: one span per statement');
  otel.exporter.reset();
  await db.transaction(
    'count',
    async (tx) => {
      await tx.query('SELECT 1');
      await tx.query('SELECT 2');
    },
    { isolationLevel: 'SERIALIZABLE' },
  );
  t.deepEqual(
    otel
      .spans('count')
      .map((s) => s.name)
      .sort(),
    ['BEGIN', 'COMMIT', 'SELECT', 'SELECT'],
  );
});
