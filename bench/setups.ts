/**
 * The production-like telemetry setups of the query case (bench/otel.ts starts them), by name.
 * Imports nothing, so that naming a setup loads no OpenTelemetry module into a contender that does
 * not use one.
 */
export type TraceSetup = 'metrics' | 'all' | 'ratio' | 'otlp';
export const TRACE_SETUPS: readonly TraceSetup[] = ['metrics', 'all', 'ratio', 'otlp'];
export const SETUP_LABEL: Record<TraceSetup, string> = {
  metrics: 'metrics only',
  all: 'all spans',
  ratio: '10 % sampled',
  otlp: 'OTLP-encoded',
};
