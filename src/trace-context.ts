/**
 * The core stays ignorant of OpenTelemetry, yet slow-query and leak reports should carry the trace
 * id of the request that caused them. An instrumentation registers a provider here when enabled
 * (and removes it when disabled); the core calls it only on those rare paths, never per query.
 */
import { processGlobal } from './registry.js';

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
