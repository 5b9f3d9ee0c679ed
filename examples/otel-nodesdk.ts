/**
 * db-pool-otel in an OpenTelemetry NodeSDK: spans to the console, metrics on a Prometheus endpoint.
 *
 *   node scripts/with-postgres.mjs -- tsx examples/otel-nodesdk.ts     # or with DATABASE_URL set
 *
 * Env: METRICS_PORT (default 9464). Runs a few requests, prints every span (ConsoleSpanExporter) and
 * then the pool's series from its own /metrics, and shuts down.
 */
import { trace } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { DbPoolInstrumentation } from '../instrumentations/index.js'; // from the package: 'db-pool-otel/instrumentation'
import { DatabasePool } from '../src/index.js'; // from the package: 'db-pool-otel'

const port = Number(process.env.METRICS_PORT ?? 9464);
const sdk = new NodeSDK({
  serviceName: 'otel-nodesdk-example',
  spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())],
  metricReaders: [new PrometheusExporter({ port, host: '127.0.0.1' })],
  instrumentations: [new DbPoolInstrumentation({ queryText: 'sanitized' })],
});
sdk.start();

const db = new DatabasePool({
  pools: { main: { connection: { connectionString: process.env.DATABASE_URL }, max: 4 } },
});
const tracer = trace.getTracer('example');

try {
  for (let i = 1; i <= 3; i++) {
    await tracer.startActiveSpan(`GET /orders/${i}`, async (span) => {
      // The literal 'paid' and the bound id never reach a span: db.query.text is sanitized.
      await db.query('main', "SELECT $1::int AS id, 'paid' AS status", [i]);
      await db.transaction('main', async (tx) => {
        await tx.query('SELECT now()');
      });
      span.end();
    });
  }
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  console.log('--- pool series on /metrics ---');
  for (const line of text.split('\n')) {
    if (/^db_client_connection_(count|max)|^db_client_operation_duration_count/.test(line)) console.log(line);
  }
} finally {
  await db.close();
  await sdk.shutdown();
}
