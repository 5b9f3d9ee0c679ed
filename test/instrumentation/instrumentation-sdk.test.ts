/**
 * Registration paths that go through the global OpenTelemetry API: NodeSDK, registerInstrumentations,
 * and providers registered after the instrumentation was constructed. Each test resets the globals.
 */
import test from 'ava';
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor, BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { queryChannel } from '../../src/index.js';
import { tracingActive } from '../../src/channels.js';
import { DbPoolInstrumentation } from '../../instrumentations/index.js';
import { newDb } from '../support/helpers.js';
import { PullMetricReader, useAsyncContext, valueOf } from '../support/instrumentation-helpers.js';

function resetGlobals(): void {
  trace.disable();
  metrics.disable();
  context.disable();
  propagation.disable();
}

async function collect(reader: PullMetricReader) {
  const { resourceMetrics } = await reader.collect();
  return new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => [m.descriptor.name, m] as const)));
}

test.serial('registered through NodeSDK: constructed before the SDK sets its providers, spans and metrics arrive', async (t) => {
  resetGlobals();
  t.teardown(resetGlobals);
  // Constructed first, as in a typical tracing.ts: the SDK's providers do not exist yet.
  const instrumentation = new DbPoolInstrumentation();
  const exporter = new InMemorySpanExporter();
  const reader = new PullMetricReader();
  const sdk = new NodeSDK({
    serviceName: 'sdk-test',
    autoDetectResources: false,
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    metricReaders: [reader],
    instrumentations: [instrumentation],
  });
  sdk.start();
  t.teardown(() => sdk.shutdown());
  t.true(tracingActive(queryChannel));

  const db = newDb(t, { sdk: { max: 2, min: 0 } });
  await trace.getTracer('app').startActiveSpan('handler', async (span) => {
    await db.query('sdk', 'SELECT 1');
    span.end();
  });
  const spans = exporter.getFinishedSpans();
  const handler = spans.find((s) => s.name === 'handler')!;
  const query = spans.find((s) => s.name === 'SELECT')!;
  t.truthy(query, spans.map((s) => s.name).join());
  t.is(query.parentSpanContext?.spanId, handler.spanContext().spanId, 'the SDK context manager makes the handler the parent');
  t.is(query.resource.attributes['service.name'], 'sdk-test');
  t.truthy(spans.find((s) => s.name === 'acquire sdk'));
  t.truthy(spans.find((s) => s.name === 'connect sdk'));

  const m = await collect(reader);
  const pool = { 'db.client.connection.pool.name': 'sdk' };
  t.is(valueOf(m.get('db.client.operation.duration'), pool), 1);
  t.is(valueOf(m.get('db.client.connection.max'), pool), 2);
  t.is(valueOf(m.get('db.client.connection.count'), { ...pool, 'db.client.connection.state': 'idle' }), 1);

  await sdk.shutdown();
  instrumentation.disable();
  t.false(tracingActive(queryChannel));
});

test.serial('registerInstrumentations with explicit providers', async (t) => {
  resetGlobals();
  t.teardown(resetGlobals);
  useAsyncContext();
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new PullMetricReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const instrumentation = new DbPoolInstrumentation({ enabled: false });
  t.false(tracingActive(queryChannel));
  const unregister = registerInstrumentations({ instrumentations: [instrumentation], tracerProvider, meterProvider });
  t.teardown(() => {
    unregister();
    return Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
  });
  t.true(tracingActive(queryChannel), 'registerInstrumentations enables it');
  const db = newDb(t, { reg: { max: 1, min: 0 } });
  await db.query('reg', 'SELECT 1');
  t.truthy(exporter.getFinishedSpans().find((s) => s.name === 'SELECT'));
  t.is(valueOf((await collect(reader)).get('db.client.operation.duration'), { 'db.client.connection.pool.name': 'reg' }), 1);
  unregister();
  t.false(tracingActive(queryChannel), 'unregistering disables it');
});

test.serial('global providers registered after construction are picked up', async (t) => {
  resetGlobals();
  t.teardown(resetGlobals);
  useAsyncContext();
  const instrumentation = new DbPoolInstrumentation();
  t.teardown(() => instrumentation.disable());
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(tracerProvider);
  t.teardown(() => tracerProvider.shutdown());
  const db = newDb(t, { glob: { max: 1, min: 0 } });
  await db.query('glob', 'SELECT 1');
  t.truthy(
    exporter.getFinishedSpans().find((s) => s.name === 'SELECT'),
    'the proxy tracer delegates to the global provider',
  );
});
