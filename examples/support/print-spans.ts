/**
 * OpenTelemetry for the examples: our instrumentation (plus any given), each span printed on one
 * line when it ends (children before their parents). In an application: NodeSDK and an OTLP
 * exporter, see the README's OpenTelemetry section.
 */
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, hrTimeToMilliseconds } from '@opentelemetry/core';
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation';
import { BasicTracerProvider, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { DbPoolInstrumentation } from '../../instrumentations/index.js'; // from the package: 'db-pool-otel/instrumentation'

export function startTracing(others: Instrumentation[] = []): void {
  const oneLine: SpanExporter = {
    export(spans: ReadableSpan[], done) {
      for (const s of spans) {
        const a = s.attributes;
        const rows = a['db.response.returned_rows'] ?? a['db_pool.query.row_count'];
        const by = s.instrumentationScope.name.replace('@opentelemetry/instrumentation-', '');
        console.log(
          `  [${by}] ${s.name} ${hrTimeToMilliseconds(s.duration).toFixed(1)} ms` +
            (a['db.client.connection.pool.name'] ? ` pool=${a['db.client.connection.pool.name']}` : '') +
            (rows !== undefined ? ` rows=${rows}` : '') +
            (s.status.code === 2 ? ` ERROR ${s.status.message ?? ''}` : ''),
        );
      }
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: async () => {},
  };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(oneLine)] });
  registerInstrumentations({ tracerProvider, instrumentations: [new DbPoolInstrumentation(), ...others] });
}
