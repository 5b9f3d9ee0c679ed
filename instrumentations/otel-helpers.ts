/**
 * The two helpers of `@opentelemetry/core` the instrumentation used, written here: importing
 * `@opentelemetry/core` loads 32 modules and, through it, `@opentelemetry/semantic-conventions`
 * (~0.6 MB of source together) on every import of `db-pool-otel/instrumentation` (issue 19, "cheap
 * to import"). test/instrumentation/semconv-copies.test.ts checks both against core.
 */
import { type Context, createContextKey, type HrTime } from '@opentelemetry/api';

/**
 * core's key: `createContextKey` is `Symbol.for(description)`, so every copy and version of core
 * (and of the api) reads the same key: this is how core's copies already agree with each other.
 */
const SUPPRESS_TRACING_KEY = createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING');

/** `suppressTracing` of `@opentelemetry/core`: a context in which instrumentations make no spans. */
export function suppressTracing(ctx: Context): Context {
  return ctx.setValue(SUPPRESS_TRACING_KEY, true);
}

/** `millisToHrTime` of `@opentelemetry/core`: milliseconds since the epoch as [seconds, nanoseconds]. */
export function millisToHrTime(epochMillis: number): HrTime {
  return [Math.trunc(epochMillis / 1000), Math.round((epochMillis % 1000) * 1e6)];
}
