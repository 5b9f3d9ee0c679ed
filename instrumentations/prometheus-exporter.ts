/**
 * A Prometheus `/metrics` endpoint for applications without an OpenTelemetry SDK: a MeterProvider
 * with `@opentelemetry/exporter-prometheus` as its reader, and a {@link DbPoolInstrumentation}
 * registered with it. Applications that run NodeSDK add a PrometheusExporter to their own
 * `metricReaders` instead.
 *
 * The instrumentation it creates exports through its `metricProducer` (`metricsExport:
 * 'producer'`), so a removed pool's series leave the endpoint after one more scrape.
 *
 * The SDK pieces (`@opentelemetry/sdk-metrics`, `exporter-prometheus`, `resources`) are optional peer
 * dependencies, loaded when this is called: an application that registers the instrumentation in
 * its own SDK never loads them from here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProxyTracerProvider, type MeterProvider } from '@opentelemetry/api';
import { DbPoolError } from '../src/internal.js';
import { DbPoolInstrumentation } from './instrumentation.js';

/** The meter provider it created (an SDK `MeterProvider`). */
export interface ExporterMeterProvider extends MeterProvider {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The `PrometheusExporter` it created (`@opentelemetry/exporter-prometheus`). */
export interface PrometheusSerializer {
  /** Answers one scrape request with the current metrics in the text format. */
  getMetricsRequestHandler(req: IncomingMessage, res: ServerResponse): void;
}

/** Imports an optional peer, or says which package to install. */
async function peer<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw err;
    throw new DbPoolError(
      'INVALID_CONFIG',
      `startPrometheusExporter needs the package ${name}: npm install ${name} (an optional peer dependency of db-pool-otel)`,
      { cause: err },
    );
  }
}

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
   * An instrumentation to serve the metrics of: with `metricsExport: 'producer'` its
   * `metricProducer` is read, otherwise its meter provider is replaced. By default a new one is
   * created (producer mode) that records metrics only (its spans go nowhere) and is disabled on
   * shutdown.
   */
  instrumentation?: DbPoolInstrumentation;
}

export interface RunningPrometheusExporter {
  /** Where to scrape, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly meterProvider: ExporterMeterProvider;
  readonly exporter: PrometheusSerializer;
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

  const [{ PrometheusExporter }, { defaultResource, resourceFromAttributes }, { MeterProvider }] = await Promise.all([
    peer('@opentelemetry/exporter-prometheus', () => import('@opentelemetry/exporter-prometheus')),
    peer('@opentelemetry/resources', () => import('@opentelemetry/resources')),
    peer('@opentelemetry/sdk-metrics', () => import('@opentelemetry/sdk-metrics')),
  ]);
  const owned = options.instrumentation === undefined;
  // Producer mode: removed pools' series go (the SDK's own instruments would keep them forever).
  const instrumentation = options.instrumentation ?? new DbPoolInstrumentation({ metricsExport: 'producer' });
  const viaProducer = instrumentation.getConfig().metricsExport === 'producer';

  // The exporter's own server treats port 0 as "default" and reports no bound port, so it only
  // serializes here and the HTTP server is ours.
  const exporter = new PrometheusExporter({
    preventServerStart: true,
    prefix: options.prefix,
    ...(viaProducer ? { metricProducers: [instrumentation.metricProducer] } : {}),
  });
  const resource = options.serviceName ? defaultResource().merge(resourceFromAttributes({ 'service.name': options.serviceName })) : defaultResource();
  const meterProvider = new MeterProvider({ resource, readers: [exporter] });

  // Metrics only, unless the caller brought an instrumentation that also traces.
  if (owned) instrumentation.setTracerProvider(new ProxyTracerProvider());
  if (!viaProducer) instrumentation.setMeterProvider(meterProvider);
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
