/**
 * The OpenTelemetry SDK the instrumented contenders run under, the same for ours and for
 * `@opentelemetry/instrumentation-pg`: a BasicTracerProvider sampling every span
 * (AlwaysOnSampler) into a BatchSpanProcessor (default queue and batch sizes) whose exporter drops
 * the batches, and a MeterProvider whose periodic reader (every 10 s) exports to a dropping
 * exporter. No context manager is registered, as with BasicTracerProvider on its own: spans are
 * roots (see bench/results.md).
 *
 * The exporters count what reaches them, so each result shows the spans per operation it paid for.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';

class DropSpanExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.spans += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

class DropMetricExporter implements PushMetricExporter {
  exports = 0;
  points = 0;
  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    this.exports++;
    for (const scope of metrics.scopeMetrics) for (const m of scope.metrics) this.points += m.dataPoints.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

export interface BenchSdk {
  tracerProvider: BasicTracerProvider | undefined;
  meterProvider: MeterProvider;
  /** Spans that reached the exporter, and spans the batch processor dropped (queue full). */
  spanCounts(): { exported: number; dropped: number };
  /** Exports everything pending (spans and a metric collection). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function startSdk(options: { traces: boolean }): BenchSdk {
  const spanExporter = new DropSpanExporter();
  const bsp = new BatchSpanProcessor(spanExporter);
  const tracerProvider = options.traces ? new BasicTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [bsp] }) : undefined;
  const metricExporter = new DropMetricExporter();
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 10_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  let dropped = 0;
  // The processor logs and resets its drop counter; count drops at the source instead.
  const processor = bsp as unknown as { _addToBuffer(span: ReadableSpan): void; _finishedSpans: unknown[]; _maxQueueSize: number };
  const add = processor._addToBuffer.bind(processor);
  processor._addToBuffer = (span) => {
    if (processor._finishedSpans.length >= processor._maxQueueSize) dropped++;
    add(span);
  };
  return {
    tracerProvider,
    meterProvider,
    spanCounts: () => ({ exported: spanExporter.spans, dropped }),
    async flush() {
      await tracerProvider?.forceFlush();
      await meterProvider.forceFlush();
    },
    async shutdown() {
      await tracerProvider?.shutdown();
      await meterProvider.shutdown();
    },
  };
}
