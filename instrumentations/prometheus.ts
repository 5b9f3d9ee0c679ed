/**
 * `startPrometheusExporter` as the entry exports it: the exporter's module (its HTTP server, and
 * through it the SDK pieces it loads) is imported on the first start, not when
 * `db-pool-otel/instrumentation` is imported (issue 19, "cheap to import"). Starting is
 * asynchronous anyway, so a dynamic `import()` does it in both builds.
 */
import type { PrometheusExporterOptions, RunningPrometheusExporter } from './prometheus-exporter.js';

/**
 * Serves the pools' metrics for Prometheus to scrape (see `prometheus-exporter.ts`).
 *
 * @example
 * const prom = await startPrometheusExporter({ port: 9464 });
 * console.log('scrape', prom.url);
 * // ... on exit:
 * await prom.shutdown();
 */
export async function startPrometheusExporter(options: PrometheusExporterOptions = {}): Promise<RunningPrometheusExporter> {
  const exporter = await import('./prometheus-exporter.js');
  return exporter.startPrometheusExporter(options);
}
