/** Test setup for the OpenTelemetry instrumentation: in-memory spans and metrics per test. */
import type { ExecutionContext } from 'ava';
import { trace, type Attributes, type Span } from '@opentelemetry/api';
import { DataPointType, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { DbPoolInstrumentationConfig } from '../../instrumentations/index.js';
import { inMemoryOtel, PullMetricReader, spanText, useAsyncContext, type InMemoryOtel } from './otel.js';
import { serverOf } from './helpers.js';

// One pull reader, one context setup and one spanText for the tests and the reliability scenarios.
export { PullMetricReader, spanText, useAsyncContext };

export interface Otel extends Pick<InMemoryOtel, 'instrumentation' | 'exporter' | 'tracerProvider' | 'meterProvider' | 'reader'> {
  /** Finished spans of one pool (by db.client.connection.pool.name). */
  spans(poolId?: string): ReadableSpan[];
  /** Runs `fn` inside an active parent span (ended afterwards), returning the parent. */
  inSpan<T>(name: string, fn: (span: Span) => Promise<T>): Promise<{ parent: ReadableSpan; result: T }>;
  /** Current metrics by name. */
  metrics(): Promise<Map<string, MetricData>>;
}

/** An instrumentation with its own tracer and meter providers, disabled and shut down when the test ends. */
export function setupOtel(t: ExecutionContext, config: DbPoolInstrumentationConfig = {}): Otel {
  const { spans: _all, metricsText: _text, shutdown, ...providers } = inMemoryOtel(config);
  t.teardown(shutdown);
  const { exporter, reader } = providers;
  const tracer = providers.tracerProvider.getTracer('test');
  return {
    ...providers,
    spans(poolId) {
      const all = exporter.getFinishedSpans();
      return poolId === undefined ? all : all.filter((s) => s.attributes['db.client.connection.pool.name'] === poolId);
    },
    async inSpan(name, fn) {
      let result!: Awaited<ReturnType<typeof fn>>;
      let parentId = '';
      await tracer.startActiveSpan(name, async (span) => {
        parentId = span.spanContext().spanId;
        try {
          result = await fn(span);
        } finally {
          span.end();
        }
      });
      const parent = exporter.getFinishedSpans().find((s) => s.spanContext().spanId === parentId)!;
      return { parent, result };
    },
    async metrics() {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) throw errors[0];
      const byName = new Map<string, MetricData>();
      for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) byName.set(m.descriptor.name, m);
      return byName;
    },
  };
}

/** The data point of `metric` whose attributes include all of `match`. */
export function point(metric: MetricData | undefined, match: Attributes): DataPoint<unknown> | undefined {
  if (metric === undefined) return undefined;
  return (metric.dataPoints as DataPoint<unknown>[]).find((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}

/** The value of a sum/gauge point, or the count of a histogram point (0 when absent). */
export function valueOf(metric: MetricData | undefined, match: Attributes): number {
  const p = point(metric, match);
  if (p === undefined) return 0;
  if (metric!.dataPointType === DataPointType.HISTOGRAM) return (p.value as Histogram).count;
  return p.value as number;
}

export { serverOf };

/** The span with this name, failing loudly when missing. */
export function byName(spans: readonly ReadableSpan[], name: string): ReadableSpan {
  const s = spans.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no span named "${name}" among: ${spans.map((x) => x.name).join(', ')}`);
  return s;
}

export function parentId(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

export { trace };
