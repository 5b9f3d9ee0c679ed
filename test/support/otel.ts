/**
 * OpenTelemetry pieces shared by the scenarios and the tests (test/ imports them): a metric reader
 * pulled on demand, async context propagation, span text; and an instrumentation with in-memory
 * spans and pulled metrics, for the security scenarios.
 */
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { DbPoolInstrumentation, type DbPoolInstrumentationConfig } from '../../instrumentations/index.js';

/** A metric reader that exports nothing by itself: metrics are read with `collect()`. */
export class PullMetricReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

let contextManagerSet = false;
/** Async context propagation (what NodeSDK sets up), once per process. */
export function useAsyncContext(): void {
  if (contextManagerSet) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  contextManagerSet = true;
}

export interface InMemoryOtel {
  instrumentation: DbPoolInstrumentation;
  exporter: InMemorySpanExporter;
  tracerProvider: BasicTracerProvider;
  meterProvider: MeterProvider;
  reader: PullMetricReader;
  spans(): ReadableSpan[];
  /** Every metric data point collected now, as JSON text. */
  metricsText(): Promise<string>;
  shutdown(): Promise<void>;
}

/** An instrumentation with its own providers (enabled unless `enabled: false`): spans kept in memory, metrics pulled on demand. */
export function inMemoryOtel(config: DbPoolInstrumentationConfig = {}): InMemoryOtel {
  useAsyncContext();
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new PullMetricReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const instrumentation = new DbPoolInstrumentation(config);
  instrumentation.setTracerProvider(tracerProvider);
  instrumentation.setMeterProvider(meterProvider);
  return {
    instrumentation,
    exporter,
    tracerProvider,
    meterProvider,
    reader,
    spans: () => exporter.getFinishedSpans(),
    async metricsText() {
      const { resourceMetrics } = await reader.collect();
      return JSON.stringify(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => ({ name: m.descriptor.name, points: m.dataPoints }))));
    },
    async shutdown() {
      instrumentation.disable();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}

/** Everything a span exports, as text (to look for literals). */
export function spanText(s: ReadableSpan): string {
  return JSON.stringify({ name: s.name, attributes: s.attributes, status: s.status, events: s.events, links: s.links, resource: s.resource.attributes });
}
