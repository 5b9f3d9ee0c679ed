/**
 * The statement path's histogram values (operation duration, wait time, use time) are held off the
 * hot path and reach the SDK in one loop at the start of each collection (instrumentations/held-values.ts):
 * none is recorded into the SDK while the statements run, none is lost (collection, disable(), a
 * change of meter provider, a removed pool, a full buffer), none is counted twice, and a histogram
 * that throws loses only its own value.
 */
import test from 'ava';
import type { Attributes, Histogram, Meter, MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { HELD_MAX, HeldValues } from '../../instrumentations/held-values.js';
import { DbPoolInstrumentation } from '../../instrumentations/index.js';
import { newDb } from '../support/helpers.js';
import { PullMetricReader, valueOf } from '../support/instrumentation-helpers.js';

const DURATION = 'db.client.operation.duration';
const USE_TIME = 'db.client.connection.use_time';
const POOL = 'db.client.connection.pool.name';

/** The histograms every loan or statement records into (connection create time is per connection, recorded at once). */
const HELD = new Set([DURATION, USE_TIME, 'db.client.connection.wait_time']);

/** A meter provider over the SDK's that counts the records of HELD histograms reaching the SDK. */
function countingProvider(): { provider: ApiMeterProvider; reader: PullMetricReader; sdk: MeterProvider; records: () => number } {
  const reader = new PullMetricReader();
  const sdk = new MeterProvider({ readers: [reader] });
  let records = 0;
  const provider: ApiMeterProvider = {
    getMeter(name, version, options) {
      const meter = sdk.getMeter(name, version, options);
      return new Proxy(meter, {
        get(target, key, receiver) {
          if (key !== 'createHistogram') return Reflect.get(target, key, receiver) as unknown;
          return (...args: Parameters<Meter['createHistogram']>) => {
            const h = target.createHistogram(...args);
            const held = HELD.has(args[0]);
            return {
              record(value: number, attributes?: Attributes) {
                if (held) records++;
                h.record(value, attributes);
              },
            } satisfies Histogram;
          };
        },
      });
    },
  };
  return { provider, reader, sdk, records: () => records };
}

async function metrics(reader: PullMetricReader) {
  const { resourceMetrics } = await reader.collect();
  return new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => [m.descriptor.name, m] as const)));
}

test.serial('statements record nothing into the SDK until a collection, which gets every value once', async (t) => {
  const { provider, reader, sdk, records } = countingProvider();
  const inst = new DbPoolInstrumentation();
  inst.setMeterProvider(provider);
  t.teardown(async () => {
    inst.disable();
    await sdk.shutdown();
  });
  const db = newDb(t, { held: { max: 2 } });
  for (let i = 0; i < 10; i++) await db.query('held', 'SELECT 1');
  t.is(records(), 0, 'no histogram record on the statement path');

  const first = await metrics(reader);
  t.is(valueOf(first.get(DURATION), { [POOL]: 'held' }), 10);
  t.is(valueOf(first.get(USE_TIME), { [POOL]: 'held' }), 10);
  const afterFirst = records();
  t.true(afterFirst >= 20, `${afterFirst} records handed over at the collection`);

  // Cumulative: a second collection with nothing new shows the same counts, nothing recorded twice.
  const second = await metrics(reader);
  t.is(valueOf(second.get(DURATION), { [POOL]: 'held' }), 10);
  t.is(records(), afterFirst);
});

test.serial('values held when the instrumentation is disabled, or its meter provider changes, are exported', async (t) => {
  const a = countingProvider();
  const b = countingProvider();
  const inst = new DbPoolInstrumentation();
  inst.setMeterProvider(a.provider);
  t.teardown(async () => {
    inst.disable();
    await Promise.all([a.sdk.shutdown(), b.sdk.shutdown()]);
  });
  const db = newDb(t, { switch: { max: 2 } });
  await db.query('switch', 'SELECT 1');
  await db.query('switch', 'SELECT 1');
  inst.setMeterProvider(b.provider);
  await db.query('switch', 'SELECT 1');
  t.is(valueOf((await metrics(a.reader)).get(DURATION), { [POOL]: 'switch' }), 2, 'recorded before the change: the old provider');
  inst.disable();
  t.is(valueOf((await metrics(b.reader)).get(DURATION), { [POOL]: 'switch' }), 1, 'recorded before disable(): the new provider');
});

test.serial("a removed pool's held values are counted in producer mode, and its series still go", async (t) => {
  const inst = new DbPoolInstrumentation({ metricsExport: 'producer' });
  t.teardown(() => inst.disable());
  const db = newDb(t, { 'short-lived': { max: 2 } });
  await db.query('short-lived', 'SELECT 1');
  await db.removePool('short-lived');
  const first = await inst.metricProducer.collect();
  const duration = first.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === DURATION);
  t.is(valueOf(duration, { [POOL]: 'short-lived' }), 1);
  const next = await inst.metricProducer.collect();
  const still = next.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === DURATION);
  t.is(valueOf(still, { [POOL]: 'short-lived' }), 0, 'gone after the collection that reported its removal');
});

test('a full buffer hands its values over without waiting for a collection', (t) => {
  const got: number[] = [];
  const h: Histogram = { record: (v) => void got.push(v) };
  const held = new HeldValues();
  for (let i = 0; i < HELD_MAX - 1; i++) held.record(h, i, {});
  t.is(got.length, 0);
  held.record(h, HELD_MAX - 1, {});
  t.is(got.length, HELD_MAX, 'flushed when full');
  t.deepEqual(got.slice(0, 3), [0, 1, 2], 'in the order they came');
  t.is(held.count, 0);
  held.flush();
  t.is(got.length, HELD_MAX, 'nothing twice');
});

test('a histogram that throws loses its own value only', (t) => {
  const got: number[] = [];
  const good: Histogram = { record: (v) => void got.push(v) };
  const bad: Histogram = {
    record: () => {
      throw new Error('meter failure');
    },
  };
  const held = new HeldValues();
  held.record(good, 1, {});
  held.record(bad, 2, {});
  held.record(good, 3, {});
  t.notThrows(() => held.flush());
  t.deepEqual(got, [1, 3]);
  held.flush();
  t.deepEqual(got, [1, 3], 'not repeated by the next flush');
});
