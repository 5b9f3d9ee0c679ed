/**
 * `db-pool-otel/instrumentation`: OpenTelemetry spans and metrics for db-pool-otel's pools.
 *
 * @example
 * import { NodeSDK } from '@opentelemetry/sdk-node';
 * import { DbPoolInstrumentation } from 'db-pool-otel/instrumentation';
 * new NodeSDK({ instrumentations: [new DbPoolInstrumentation()] }).start();
 */
export { DbPoolInstrumentation, OPERATION_DURATION_BUCKETS, POOL_TIME_BUCKETS } from './instrumentation.js';
export type {
  AcquireSpansMode,
  DbPoolInstrumentationConfig,
  DbPoolRequestHook,
  DbPoolRequestHookInfo,
  DbPoolResponseHook,
  DbPoolResponseHookInfo,
  MetricsExportMode,
  QueryTextMode,
} from './types.js';
export { startPrometheusExporter } from './prometheus.js';
export type { PrometheusExporterOptions, RunningPrometheusExporter } from './prometheus-exporter.js';
export * from './semconv.js';
export { PACKAGE_NAME, PACKAGE_VERSION } from './version.js';
