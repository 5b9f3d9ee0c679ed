/**
 * A Prometheus endpoint for the pools, without an OpenTelemetry SDK.
 *
 *   node scripts/with-postgres.mjs -- tsx examples/otel-prometheus.ts     # or with DATABASE_URL set
 *   curl -s http://127.0.0.1:9464/metrics | grep ^db_
 *
 * Env: METRICS_PORT (default 9464; 0 picks a free port), EXAMPLE_SECONDS (default: until Ctrl-C).
 */
import { startPrometheusExporter } from '../instrumentations/index.js'; // from the package: 'db-pool-otel/instrumentation'
import { DatabasePool } from '../src/index.js'; // from the package: 'db-pool-otel'

const prom = await startPrometheusExporter({ port: Number(process.env.METRICS_PORT ?? 9464), host: '127.0.0.1' });
console.log(`scrape ${prom.url}`);

const connection = { connectionString: process.env.DATABASE_URL };
const db = new DatabasePool({
  pools: {
    web: { connection, max: 5, min: 1 },
    reports: { connection, max: 2, min: 0, slowQueryThresholdMs: 50 },
  },
});

let running = true;
const stop = () => {
  running = false;
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
const seconds = Number(process.env.EXAMPLE_SECONDS ?? 0);
if (seconds > 0) setTimeout(stop, seconds * 1_000).unref();

async function loop(poolId: string, sql: string): Promise<void> {
  while (running) {
    await db.query(poolId, sql).catch(() => {});
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
  }
}

await Promise.all([
  loop('web', 'SELECT 1'),
  loop('web', 'SELECT 1'),
  loop('web', 'SELECT * FROM no_such_table'), // errors show up by SQLSTATE
  loop('reports', 'SELECT pg_sleep(0.06)'), // slow queries
]);
await db.close();
await prom.shutdown();
console.log('stopped');
