/**
 * Nothing for spans nobody records: by default a span starts without attributes, so the SDK copies
 * and checks none for a span its sampler drops; a recorded span gets every attribute all the same.
 * `attributesForSampler: true` hands them to the sampler, for samplers that decide by attribute.
 */
import test from 'ava';
import { SamplingDecision, type Attributes } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace-base';
import { DbPoolInstrumentation } from '../../instrumentations/index.js';
import { newDb } from '../support/helpers.js';
import { useAsyncContext } from '../support/instrumentation-helpers.js';

/** Records one span in three (so acquire and query spans are each recorded and dropped), and what attributes each decision was given. */
class OneInThreeSampler implements Sampler {
  readonly seen: Attributes[] = [];
  #n = 0;
  shouldSample(_ctx: unknown, _traceId: string, _name: string, _kind: unknown, attributes: Attributes): SamplingResult {
    this.seen.push({ ...attributes });
    return { decision: this.#n++ % 3 === 0 ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD };
  }
  toString(): string {
    return 'OneInThreeSampler';
  }
}

function setup(t: import('ava').ExecutionContext, attributesForSampler?: boolean) {
  useAsyncContext();
  const sampler = new OneInThreeSampler();
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ sampler, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const inst = new DbPoolInstrumentation({ attributesForSampler, connectSpans: false, acquireSpans: 'always' });
  inst.setTracerProvider(provider);
  t.teardown(async () => {
    inst.disable();
    await provider.shutdown();
  });
  return { sampler, exporter };
}

test.serial('by default the sampler is given no attributes, and a recorded span has them all', async (t) => {
  const { sampler, exporter } = setup(t);
  const db = newDb(t, { sampled: { max: 1 } });
  for (let i = 0; i < 4; i++) await db.query('sampled', 'SELECT 1 AS one');
  const queries = sampler.seen.length;
  t.true(queries >= 8, 'an acquire span and a query span each');
  t.true(
    sampler.seen.every((a) => Object.keys(a).length === 0),
    JSON.stringify(sampler.seen),
  );
  const all = exporter.getFinishedSpans();
  t.is(all.length, Math.ceil(queries / 3), 'one span in three recorded');
  const acquires = all.filter((s) => s.name === 'acquire sampled');
  const spans = all.filter((s) => s.name !== 'acquire sampled');
  t.true(acquires.length > 0 && spans.length > 0, all.map((s) => s.name).join(', '));
  for (const s of acquires) {
    t.is(s.attributes['db.client.connection.pool.name'], 'sampled');
    t.is(typeof s.attributes['db_pool.acquire.must_wait'], 'boolean');
  }
  for (const s of spans) {
    t.is(s.attributes['db.system.name'], 'postgresql');
    t.is(s.attributes['db.client.connection.pool.name'], 'sampled');
    t.is(s.attributes['db.operation.name'], 'SELECT');
    t.is(typeof s.attributes['db_pool.connection.id'], 'number');
  }
});

test.serial('attributesForSampler: true gives the sampler the statement attributes', async (t) => {
  const { sampler, exporter } = setup(t, true);
  const db = newDb(t, { decides: { max: 1 } });
  await db.query('decides', 'SELECT 1 AS one');
  const q = sampler.seen.find((a) => a['db.operation.name'] === 'SELECT');
  t.truthy(q, JSON.stringify(sampler.seen));
  t.is(q!['db.client.connection.pool.name'], 'decides');
  t.is(exporter.getFinishedSpans()[0]?.attributes['db.system.name'], 'postgresql');
});
