/**
 * knex with @opentelemetry/instrumentation-knex registered before knex loads (the way NodeSDK users
 * run it): knex's own spans still appear, with the database and server our client reports, and the
 * pool's acquire and query events fire for the same queries.
 *
 * Nothing may load knex before the instrumentation is registered: knex is imported dynamically
 * below, and `knexConfig` loads it lazily. (Each ava test file runs in a process of its own.)
 * The second test adds our DbPoolInstrumentation beside it: our acquire and query spans and the
 * `db.client.*` metrics for the same knex queries, our query spans children of knex's.
 */
import test from 'ava';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { KnexInstrumentation } from '@opentelemetry/instrumentation-knex';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createRequire } from 'node:module';
import type pg from 'pg';
import { knexConfig } from '../../src/adapters/knex-config.js';
import { recordChannels, tempSchema } from '../support/adapter-helpers.js';
import { newDb, uniqueName } from '../support/helpers.js';
import { parentId, serverOf, setupOtel, valueOf } from '../support/instrumentation-helpers.js';

const require = createRequire(import.meta.url);
const knexLoadedAtStart = Object.keys(require.cache).some((f) => f.includes('/node_modules/knex/'));

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const instrumentation = new KnexInstrumentation();
registerInstrumentations({ tracerProvider: provider, instrumentations: [instrumentation] });

test.serial('instrumentation-knex registered first: its spans and our acquire/query events for the same knex queries', async (t) => {
  t.false(knexLoadedAtStart, 'knex was not loaded before the instrumentation');
  t.true(instrumentation.isEnabled());
  const { default: knex } = await import('knex');
  const schema = await tempSchema(t);
  const poolId = uniqueName('kotel');
  const db = newDb(t, { [poolId]: { max: 2, min: 0 } });
  const rec = recordChannels(t, poolId);
  const k = knex(knexConfig(db, poolId));
  t.teardown(() => k.destroy());

  await k.schema.withSchema(schema).createTable('items', (tb) => {
    tb.increments('id');
    tb.string('name');
  });
  await k
    .withSchema(schema)
    .table('items')
    .insert([{ name: 'a' }, { name: 'b' }]);
  const rows = await k.withSchema(schema).table('items').select('name').orderBy('name');
  t.deepEqual(rows, [{ name: 'a' }, { name: 'b' }]);
  await k.transaction(async (trx) => {
    await trx.withSchema(schema).table('items').where({ name: 'a' }).update({ name: 'c' });
  });
  await t.throwsAsync(k.raw('select 1/0'));

  const spans = exporter.getFinishedSpans();
  const database = (k.client.connectionSettings as { database?: string }).database;
  t.is(database, serverOf().database);
  const select = spans.find((s) => s.attributes['db.operation.name'] === 'select' && s.attributes['db.collection.name'] === 'items');
  t.truthy(select, `knex spans: ${spans.map((s) => s.name).join(', ')}`);
  t.like(select!.attributes, {
    'db.system.name': 'postgresql',
    'db.namespace': database,
  });
  t.is(select!.attributes['server.address'], serverOf().address, 'server.address from our connectionSettings');
  t.is(select!.attributes['server.port'], serverOf().port);
  t.true(
    spans.some((s) => s.status.code === 2),
    'the failing query has an error span',
  );

  // The pool saw every one of those queries: acquired, run and ended (or failed) on its channels.
  const texts = rec.queries.map((q) => q.text);
  t.true(texts.some((x) => x.startsWith('create table')));
  t.true(texts.some((x) => x.startsWith('insert into')));
  t.true(texts.some((x) => x.startsWith('select "name" from')));
  t.true(texts.some((x) => x.startsWith('update')));
  t.true(texts.includes('BEGIN;') && texts.includes('COMMIT;'));
  t.like(rec.queryErrors.at(-1), { sqlState: '22012' });
  t.true(rec.acquires.length >= 5);
  t.true(rec.acquires.every((a) => typeof a.waitMs === 'number' && a.connectionId! > 0));
  const selectEnd = rec.queriesEnded.find((q) => q.text.startsWith('select "name" from'));
  t.like(selectEnd, { rowCount: 2, command: 'SELECT', database });
  // Every knex span that ran SQL has a matching query on our channel.
  const knexQueries = spans.filter((s) => typeof s.attributes['db.query.text'] === 'string').map((s) => s.attributes['db.query.text'] as string);
  const positional = new Set(texts.map((x) => x.replace(/\$\d+/g, '?')));
  t.true(knexQueries.length >= 5);
  for (const q of knexQueries) t.true(positional.has(q), `our channel saw: ${q}`);
  const res = (await k.raw('select 1 as one')) as pg.QueryResult;
  t.is(res.rows[0].one, 1);
});

test.serial('our acquire and query spans and metrics appear for knex queries, with instrumentation-knex registered beside ours', async (t) => {
  const otel = setupOtel(t);
  const { default: knex } = await import('knex');
  const schema = await tempSchema(t);
  const poolId = uniqueName('kotel2');
  const db = newDb(t, { [poolId]: { max: 2, min: 0 } });
  const k = knex(knexConfig(db, poolId));
  t.teardown(() => k.destroy());
  await k.raw(`create table "${schema}".items (id serial primary key, name text)`);
  exporter.reset();
  otel.exporter.reset();

  const { parent } = await otel.inSpan('request', async () => {
    await k
      .withSchema(schema)
      .table('items')
      .insert([{ name: 'a' }, { name: 'b' }]);
    await k.withSchema(schema).table('items').select('name').where('name', 'like', 'a%');
    await k.transaction(async (trx) => {
      await trx.withSchema(schema).table('items').where({ name: 'b' }).update({ name: 'c' });
    });
  });

  const ours = otel.spans(poolId);
  // Warm acquires have no span of their own (acquireSpans 'waited'): the statements carry the wait.
  const acquires = ours.filter((s) => s.name === `acquire ${poolId}`);
  t.true(ours.filter((s) => typeof s.attributes['db_pool.acquire.wait_ms'] === 'number').length + acquires.length >= 3, `acquires seen: ${acquires.length}`);
  t.true(
    acquires.every((s) => parentId(s) === parent.spanContext().spanId),
    'acquires are children of the request',
  );
  const select = ours.find((s) => s.attributes['db.operation.name'] === 'SELECT' && s.attributes['db.collection.name'] === `${schema}.items`);
  t.truthy(select, `our spans: ${ours.map((s) => s.name).join(', ')}`);
  const server = serverOf();
  t.like(select!.attributes, {
    'db.system.name': 'postgresql',
    'db.namespace': server.database,
    'db.client.connection.pool.name': poolId,
    'db.query.text': `select "name" from "${schema}"."items" where "name" like $1`,
    'db.response.returned_rows': 1,
  });
  t.true(ours.some((s) => s.name === 'BEGIN') && ours.some((s) => s.name === 'COMMIT'), 'transaction statements are spans too');

  // Our query span sits under instrumentation-knex's span for the same statement.
  const knexSelect = exporter.getFinishedSpans().find((s) => s.attributes['db.operation.name'] === 'select');
  t.truthy(knexSelect);
  t.is(parentId(select!), knexSelect!.spanContext().spanId);
  t.is(parentId(knexSelect!), parent.spanContext().spanId);

  const metrics = await otel.metrics();
  const pool = { 'db.client.connection.pool.name': poolId };
  t.true(valueOf(metrics.get('db.client.operation.duration'), { ...pool, 'db.operation.name': 'SELECT' }) >= 1);
  t.true(valueOf(metrics.get('db.client.operation.duration'), { ...pool, 'db.operation.name': 'INSERT' }) >= 1);
  t.true(valueOf(metrics.get('db.client.connection.wait_time'), pool) >= 3);
  t.true(valueOf(metrics.get('db.client.connection.use_time'), pool) >= 3);
  t.is(valueOf(metrics.get('db.client.connection.max'), pool), 2);
});
