/**
 * The one internal seam between the core and `instrumentations/` (not in the package's exports):
 * what the instrumentation needs beyond the public entry — the trace-context and driver-call slots
 * it fills in, and the live pools and server budgets its gauges read. Everything else it learns
 * from the `db-pool:*` diagnostics channels.
 */
export {
  type DriverCallRunner,
  releaseDriverCallRunner,
  releaseTraceIdProvider,
  retainDriverCallRunner,
  retainTraceIdProvider,
} from './trace-context.js';
export { livePoolStatuses } from './pool/registry.js';
export { liveServerBudgets } from './pool/server-budget.js';
