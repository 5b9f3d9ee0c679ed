/**
 * A Prometheus `/metrics` endpoint for applications without an OpenTelemetry SDK: a MeterProvider
 * with `@opentelemetry/exporter-prometheus` as its reader, and a {@link DbPoolInstrumentation}
 * registered with it. Applications that run NodeSDK add a PrometheusExporter to their own
 * `metricReaders` instead.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProxyTracerProvider } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { DbPoolInstrumentation } from './instrumentation.js';

export interface PrometheusExporterOptions {
  /** Port to listen on; 0 picks a free one (see `port` on the result). Default 9464. */
  port?: number;
  /** Interface to listen on. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Prefix for every metric name (`myapp` gives `myapp_db_client_operation_duration_bucket`). */
  prefix?: string;
  /** Path of the endpoint. Default `/metrics`. */
  endpoint?: string;
  /** `service.name` of the resource (shown on `target_info`). */
  serviceName?: string;
  /**
   * An instrumentation to serve the metrics of (its meter provider is replaced). By default a new
   * one is created that records metrics only (its spans go nowhere) and is disabled on shutdown.
   */
  instrumentation?: DbPoolInstrumentation;
}

export interface RunningPrometheusExporter {
  /** Where to scrape, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly meterProvider: MeterProvider;
  readonly exporter: PrometheusExporter;
  readonly instrumentation: DbPoolInstrumentation;
  /** Stops the endpoint and the meter provider (and the instrumentation, when it created it). */
  shutdown(): Promise<void>;
}

/**
 * Serves the pools' metrics for Prometheus to scrape.
 *
 * @example
 * const prom = await startPrometheusExporter({ port: 9464 });
 * console.log('scrape', prom.url);
 * // ... on exit:
 * await prom.shutdown();
 */
export async function startPrometheusExporter(options: PrometheusExporterOptions = {}): Promise<RunningPrometheusExporter> {
  const host = options.host ?? '127.0.0.1';
  const requestedPort = options.port ?? 9464;
  const endpoint = (options.endpoint ?? '/metrics').replace(/^([^/])/, '/$1');

  // The exporter's own server treats port 0 as "default" and reports no bound port, so it only
  // serializes here and the HTTP server is ours.
  const exporter = new PrometheusExporter({ preventServerStart: true, prefix: options.prefix });
  const resource = options.serviceName
    ? defaultResource().merge(resourceFromAttributes({ 'service.name': options.serviceName }))
    : defaultResource();
  const meterProvider = new MeterProvider({ resource, readers: [exporter] });

  const owned = options.instrumentation === undefined;
  const instrumentation = options.instrumentation ?? new DbPoolInstrumentation();
  // Metrics only, unless the caller brought an instrumentation that also traces.
  if (owned) instrumentation.setTracerProvider(new ProxyTracerProvider());
  instrumentation.setMeterProvider(meterProvider);
  instrumentation.enable();

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === endpoint && (req.method === 'GET' || req.method === 'HEAD')) {
      exporter.getMetricsRequestHandler(req, res);
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  // Like the exporter's own server: it does not keep the process alive.
  server.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: requestedPort, host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if (owned) instrumentation.disable();
    await meterProvider.shutdown().catch(() => {});
    throw err;
  }

  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let stopped: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}${endpoint}`,
    host,
    port,
    meterProvider,
    exporter,
    instrumentation,
    shutdown() {
      stopped ??= (async () => {
        if (owned) instrumentation.disable();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections?.();
        });
        await meterProvider.shutdown();
      })();
      return stopped;
    },
  };
}
