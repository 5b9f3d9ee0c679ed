/**
 * The core stays ignorant of OpenTelemetry, yet slow-query and leak reports should carry the trace
 * id of the request that caused them. An instrumentation registers a provider here when enabled
 * (and removes it when disabled); the core calls it only on those rare paths, never per query.
 */
import { processGlobal } from './util/process-global.js';

type TraceIdProvider = () => string | undefined;

interface TraceContextSlot {
  provider: TraceIdProvider | undefined;
  /** Enabled instrumentations relying on the provider (see retainTraceIdProvider); absent in slots made by older copies. */
  users?: number;
}

// Shared by the ESM and CommonJS builds loaded in one process, like the pool registry, and so is
// the count of its users: with a count per build, disabling one build's instrumentation would
// clear the provider the other build's still uses.
const slot = processGlobal<TraceContextSlot>('db-pool-otel.trace-id-provider.v1', () => ({ provider: undefined, users: 0 }));

/**
 * Sets (or with `undefined`, clears) the function that returns the active trace id.
 *
 * @example
 * setTraceIdProvider(() => trace.getActiveSpan()?.spanContext().traceId);
 */
export function setTraceIdProvider(fn: TraceIdProvider | undefined): void {
  slot.provider = fn;
}

/** @internal One more user of the provider: the first one sets `fn`. */
export function retainTraceIdProvider(fn: TraceIdProvider): void {
  const users = slot.users ?? 0;
  slot.users = users + 1;
  if (users === 0) slot.provider = fn;
}

/** @internal One user fewer (each after a retain): the last one clears the provider. */
export function releaseTraceIdProvider(): void {
  const users = slot.users ?? 0;
  if (users === 0) return;
  slot.users = users - 1;
  if (users === 1) slot.provider = undefined;
}

/** The active trace id, when a provider is set and a trace is active. */
export function activeTraceId(): string | undefined {
  try {
    return slot.provider?.();
  } catch {
    return undefined;
  }
}

/**
 * How the core makes its calls into the driver (`client.query`, `client.connect`): directly, or
 * through a runner an instrumentation sets. DbPoolInstrumentation sets one that suppresses tracing
 * inside the call, so a pg instrumentation registered beside it (instrumentation-pg, which
 * auto-instrumentations-node enables) makes no second span — with the raw SQL — for a statement
 * our query span already describes. Retained and released like the trace id provider; unset, a
 * call costs one property read.
 */
export type DriverCallRunner = <T>(call: () => T) => T;

interface DriverCallSlot {
  runner: DriverCallRunner | undefined;
  users: number;
}

const driverSlot = processGlobal<DriverCallSlot>('db-pool-otel.driver-call-runner.v1', () => ({ runner: undefined, users: 0 }));

/** @internal One more user of the runner: the first one sets `fn`. */
export function retainDriverCallRunner(fn: DriverCallRunner): void {
  if (driverSlot.users++ === 0) driverSlot.runner = fn;
}

/** @internal One user fewer (each after a retain): the last one clears the runner. */
export function releaseDriverCallRunner(): void {
  if (driverSlot.users === 0) return;
  if (--driverSlot.users === 0) driverSlot.runner = undefined;
}

/** @internal The runner for driver calls, or undefined when calls go straight to the driver. */
export function driverCallRunner(): DriverCallRunner | undefined {
  return driverSlot.runner;
}

/** @internal A driver call through the runner, if one is set (for the pool's own statements off the hot path). */
export function runDriverCall<T>(call: () => T): T {
  const runner = driverSlot.runner;
  return runner === undefined ? call() : runner(call);
}
