/**
 * The OpenTelemetry SDKs the instrumented contenders run under, the same for ours, for
 * `@opentelemetry/instrumentation-pg` and for knex's.
 *
 * `startServiceSdk(setup)` is the production-like one the query case uses: the process is set up
 * the way a service sets up OpenTelemetry (what `NodeSDK` does), and every operation runs inside a
 * request span, as if an HTTP server instrumentation had started it:
 *
 * - an AsyncLocalStorage context manager is registered globally in every setup
 *   (`NodeTracerProvider.register()`, or on its own when no tracer provider is registered);
 * - a MeterProvider with a periodic reader (every 10 s) into a dropping exporter, in every setup;
 * - `metrics`: no tracer provider at all. The request span and the instrumentation's spans come
 *   from the API's no-op tracer (non-recording spans), as in a service that exports metrics only;
 * - `all`: a registered NodeTracerProvider, `ParentBased(AlwaysOn)`: every span sampled, into a
 *   BatchSpanProcessor (default queue and batch sizes) whose exporter counts and drops the batches;
 * - `ratio`: the same with `ParentBased(TraceIdRatioBased(0.1))`; the request span is the root,
 *   so the ratio decides for the whole request and its database spans follow it;
 * - `otlp`: as `all`, but the exporter encodes every batch to OTLP protobuf
 *   (`ProtobufTraceSerializer`, what the OTLP/HTTP-protobuf exporter sends) and drops the bytes.
 *
 * `startSdk({ traces })` is the older, bare one the stub cases (and the SDK floor) still use: a
 * BasicTracerProvider (AlwaysOnSampler, BatchSpanProcessor, dropping exporter) and the same
 * MeterProvider, no context manager, no request span: every span is a root span.
 *
 * The exporters count what reaches them (the request spans apart), so each result shows the spans
 * per operation it paid for.
 */
import { context, type Span, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, type MetricProducer, PeriodicExportingMetricReader, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-node';
import type { TraceSetup } from './setups.js';

/** The instrumentation scope of the request spans the harness makes (not counted as the contender's spans). */
const REQUEST_SCOPE = 'bench-service';

class DropSpanExporter implements SpanExporter {
  spans = 0;
  bytes = 0;
  constructor(readonly encode: boolean) {}
  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    for (const s of spans) if (s.instrumentationScope.name !== REQUEST_SCOPE) this.spans++;
    if (this.encode) {
      // What an OTLP/HTTP-protobuf exporter does with each batch before it sends it.
      const bytes = ProtobufTraceSerializer.serializeRequest(spans);
      this.bytes += bytes?.length ?? 0;
    }
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

export interface SpanCounts {
  /** Spans of the contender (request spans apart) that reached the exporter. */
  exported: number;
  /** Spans the batch processor dropped (queue full), request spans included. */
  dropped: number;
  /** OTLP protobuf bytes encoded, request spans included (the `otlp` setup only). */
  bytes?: number;
}

export interface BenchSdk {
  tracerProvider: BasicTracerProvider | undefined;
  meterProvider: MeterProvider;
  spanCounts(): SpanCounts;
  /** Exports everything pending (spans and a metric collection). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface ServiceSdk extends BenchSdk {
  setup: TraceSetup;
  /** The operation, each call run inside a new request span (the active span while it runs). */
  inRequest<A extends unknown[], T>(op: (...args: A) => Promise<T>): (...args: A) => Promise<T>;
}

function meterProvider(metricProducers?: MetricProducer[]): MeterProvider {
  const reader = new PeriodicExportingMetricReader({ exporter: new DropMetricExporter(), exportIntervalMillis: 10_000, metricProducers });
  return new MeterProvider({ readers: [reader] });
}

/** A BatchSpanProcessor at its defaults, with its drops counted at the source (it logs and resets its own counter). */
function batchProcessor(exporter: SpanExporter): { bsp: BatchSpanProcessor; dropped: () => number } {
  const bsp = new BatchSpanProcessor(exporter);
  let dropped = 0;
  const processor = bsp as unknown as { _addToBuffer(span: ReadableSpan): void; _finishedSpans: unknown[]; _maxQueueSize: number };
  const add = processor._addToBuffer.bind(processor);
  processor._addToBuffer = (span) => {
    if (processor._finishedSpans.length >= processor._maxQueueSize) dropped++;
    add(span);
  };
  return { bsp, dropped: () => dropped };
}

/** The bare SDK of the stub cases: no context manager, no request span (see above). */
export function startSdk(options: { traces: boolean }): BenchSdk {
  const spanExporter = new DropSpanExporter(false);
  const { bsp, dropped } = batchProcessor(spanExporter);
  const tracerProvider = options.traces ? new BasicTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [bsp] }) : undefined;
  const meters = meterProvider();
  return {
    tracerProvider,
    meterProvider: meters,
    spanCounts: () => ({ exported: spanExporter.spans, dropped: dropped() }),
    async flush() {
      await tracerProvider?.forceFlush();
      await meters.forceFlush();
    },
    async shutdown() {
      await tracerProvider?.shutdown();
      await meters.shutdown();
    },
  };
}

/** The production-like SDK of the query case, registered globally in this (the contender's) process. */
/** `metricProducers`: the reader's extra producers (an instrumentation in producer mode). */
export function startServiceSdk(setup: TraceSetup, metricProducers?: MetricProducer[]): ServiceSdk {
  const spanExporter = new DropSpanExporter(setup === 'otlp');
  const { bsp, dropped } = batchProcessor(spanExporter);
  let tracerProvider: NodeTracerProvider | undefined;
  if (setup === 'metrics') {
    // No tracer provider: spans come from the API's no-op tracer. The context manager is still
    // there, as NodeSDK registers it whatever is exported.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  } else {
    const root = setup === 'ratio' ? new TraceIdRatioBasedSampler(0.1) : new AlwaysOnSampler();
    tracerProvider = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'db-pool-otel-bench', 'service.version': '0.0.0' }),
      sampler: new ParentBasedSampler({ root }),
      spanProcessors: [bsp],
    });
    // AsyncLocalStorageContextManager, W3C propagators, global tracer provider.
    tracerProvider.register();
  }
  const meters = meterProvider(metricProducers);
  const tracer: Tracer = trace.getTracer(REQUEST_SCOPE);
  const requestAttributes = Object.freeze({ 'http.request.method': 'GET', 'http.route': '/items/:id', 'url.path': '/items/42', 'url.scheme': 'http' });
  const end = (span: Span) => span.end();
  return {
    setup,
    tracerProvider,
    meterProvider: meters,
    inRequest:
      <A extends unknown[], T>(op: (...args: A) => Promise<T>) =>
      (...args: A): Promise<T> => {
        const span = tracer.startSpan('GET /items/:id', { kind: SpanKind.SERVER, attributes: requestAttributes });
        return context.with(trace.setSpan(context.active(), span), op, undefined, ...args).then(
          (v) => {
            end(span);
            return v;
          },
          (err: unknown) => {
            end(span);
            throw err;
          },
        );
      },
    spanCounts: () => ({ exported: spanExporter.spans, dropped: dropped(), ...(setup === 'otlp' ? { bytes: spanExporter.bytes } : {}) }),
    async flush() {
      await tracerProvider?.forceFlush();
      await meters.forceFlush();
    },
    async shutdown() {
      await tracerProvider?.shutdown();
      await meters.shutdown();
    },
  };
}
