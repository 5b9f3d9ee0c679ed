/**
 * The public surface, listed: what each entry point exports at run time, and the API.md contract
 * names among them. A name added or dropped fails here, so a change to the surface is a decision
 * (and a line in this file), not an accident. The type-only exports are pinned by
 * `ContractTypes` below, which `npm run typecheck` compiles.
 */
import test from 'ava';
import * as root from '../../src/index.js';
import * as instrumentation from '../../instrumentations/index.js';

/** The types API.md and the docs name: a missing one fails `npm run typecheck`. */
type ContractTypes = [
  root.AlertContext,
  root.AutoTuneOptions,
  root.CallOptions,
  root.ChannelConfig,
  root.ConfigIssue,
  root.ConnectionConfig,
  root.ConnectionInfo,
  root.DatabasePoolEvents,
  root.DatabasePoolOptions,
  root.DbPoolErrorCode,
  root.DeepHealthReport,
  root.HealthReport,
  root.LeakDiagnosis,
  root.LeakReport,
  root.PerformanceDiagnosis,
  root.PoolConfig,
  root.PoolSizeDecision,
  root.PoolStatus,
  root.QueryOptions,
  root.QueryResult,
  root.RecoveryOptions,
  root.ResolvedPoolConfig,
  root.ServerBudget,
  root.SlowQuery,
  root.TimeoutDecision,
  root.TransactionOptions,
  instrumentation.AcquireSpansMode,
  instrumentation.DbPoolInstrumentationConfig,
  instrumentation.PrometheusExporterOptions,
  instrumentation.QueryTextMode,
];

const ROOT_EXPORTS = [
  // DatabasePool and what it hands out (API.md: Pools, Measurements)
  'DatabasePool',
  'PooledConnection',
  'PoolMetrics',
  'DetailedMetrics',
  'QueryMetrics',
  // config (defaults, the redaction marker, config files)
  'POOL_DEFAULTS',
  'REDACTED',
  'loadConfigFile',
  // typed errors (API.md: Errors)
  'DbPoolError',
  'PoolNotFoundError',
  'PoolExistsError',
  'InvalidConfigError',
  'AcquireTimeoutError',
  'QueueFullError',
  'PoolClosedError',
  'CircuitOpenError',
  'QueryTimeoutError',
  'QueryAbortedError',
  'ConnectionRevokedError',
  'TransactionRolledBackError',
  'InvalidQueryError',
  'ConnectionFailedError',
  'UnauthorizedError',
  // the diagnostics channel contract (docs/diagnostics-channels.md)
  'CHANNELS',
  'CHANNELS_VERSION',
  'acquireChannel',
  'queryChannel',
  'connectChannel',
  'releaseChannel',
  'poolChannel',
  'leakChannel',
  'slowQueryChannel',
  // statement descriptions
  'describeQuery',
  'DESCRIBE_MAX_CHARS',
  'FINGERPRINT_MAX_TOKENS',
  // knex, Kysely, Drizzle
  'knexConfig',
  'pgPool',
  'PgCompatiblePool',
  // alerts
  'AlertHandler',
  'AlertEvaluator',
  // operations
  'startAdminServer',
  'ADMIN_SERVER_DEFAULTS',
].sort();

test('the package root exports exactly the public surface', (t) => {
  t.deepEqual(Object.keys(root).sort(), ROOT_EXPORTS);
});

test('the instrumentation entry exports the instrumentation, the exporter and the attribute and metric names', (t) => {
  const names = Object.keys(instrumentation);
  const constants = names.filter((n) => /^(ATTR|METRIC|DB)_/.test(n));
  t.deepEqual(
    names.filter((n) => !constants.includes(n)).sort(),
    ['DbPoolInstrumentation', 'OPERATION_DURATION_BUCKETS', 'PACKAGE_NAME', 'PACKAGE_VERSION', 'POOL_TIME_BUCKETS', 'startPrometheusExporter'].sort(),
  );
  // Semantic-convention names: string constants only, each one's value a dotted OpenTelemetry name.
  for (const n of constants) t.regex(String((instrumentation as Record<string, unknown>)[n]), /^[a-z_.]+$/, n);
});

test('the contract types exist (checked when npm run typecheck compiles this file)', (t) => {
  const none: ContractTypes | undefined = undefined;
  t.is(none, undefined);
});

test('internal helpers are not reachable from the package root', (t) => {
  for (const name of ['setTraceIdProvider', 'activeTraceId', 'tracingActive', 'livePoolStatuses', 'liveServerBudgets', 'redactDeep', 'resolvePoolConfig']) {
    t.false(name in root, name);
  }
});
