/**
 * The one internal seam between the core and `instrumentations/` (not in the package's exports):
 * what the instrumentation needs beyond the public entry — the trace-context and driver-call slots
 * it fills in, and the live pools and server budgets its gauges read. Everything else it learns
 * from the `db-pool:*` diagnostics channels.
 *
 * The few values of the public entry the instrumentation uses are re-exported here (the same
 * modules, so the same classes), so that importing `db-pool-otel/instrumentation` does not load the
 * whole pool facade, alerts and adapters behind `src/index.ts` (issue 19, "cheap to import").
 */
export { CHANNELS } from './channels.js';
export { DbPoolError } from './errors.js';
export { describeQuery } from './sql/describe.js';
export {
  type DriverCallRunner,
  releaseDriverCallRunner,
  releaseTraceIdProvider,
  retainDriverCallRunner,
  retainTraceIdProvider,
} from './trace-context.js';
export { livePoolStatuses } from './pool/registry.js';
export { liveServerBudgets } from './pool/server-budget.js';
