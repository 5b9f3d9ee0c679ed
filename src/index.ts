/**
 * db-pool-otel: named PostgreSQL pools (generic-pool + pg) that on-call engineers can see into.
 * The OpenTelemetry side lives in `db-pool-otel/instrumentation`.
 *
 * The public surface (0.x): what API.md's contract and the docs name — DatabasePool and its
 * options, results and reports; config types and files; typed errors; the `db-pool:*` channel
 * contract and its message types; describeQuery; the knex and pg.Pool adapters; alerts; the admin
 * endpoint. Anything else is internal and may change without notice (test/package/public-exports
 * lists it).
 */
export { DatabasePool } from './database-pool.js';
export type { DatabasePoolOptions, DatabasePoolEvents, CallOptions, IsolationLevel, QueryOptions, TransactionOptions } from './database-pool.js';
export { PooledConnection } from './pool/pooled-connection.js';
export type { QueryInput, QueryResult } from './pool/pooled-connection.js';
export type { ConnectionInfo, LeakReport, PendingReleaseReport, PoolStatus } from './pool/managed-pool.js';
export { DetailedMetrics, PoolMetrics, QueryMetrics } from './pool/metrics.js';
export type { PoolTotals } from './pool/metrics.js';
export type { SlowQuery } from './stats/slow-query-log.js';
export type { StatementStats } from './stats/statement-stats.js';
export { POOL_DEFAULTS, REDACTED } from './config/config.js';
export type { ConnectionConfig, PoolConfig, ResolvedPoolConfig, TlsConfig } from './config/config.js';
export { loadConfigFile } from './config/config-file-loader.js';
export type { ConfigFileContents } from './config/config-file.js';
export * from './errors.js';
export {
  CHANNELS,
  CHANNELS_VERSION,
  acquireChannel,
  connectChannel,
  leakChannel,
  poolChannel,
  queryChannel,
  releaseChannel,
  slowQueryChannel,
} from './channels.js';
export type {
  AcquireMessage,
  ConnectMessage,
  LeakMessage,
  PoolEventMessage,
  QueryMessage,
  ReleaseMessage,
  ServerInfo,
  SlowQueryMessage,
} from './channels.js';
export type { BudgetVia, InstanceClaims, ServerBudget } from './pool/server-budget.js';
export { DESCRIBE_MAX_CHARS, FINGERPRINT_MAX_TOKENS, describeQuery } from './sql/describe.js';
export type { DescribeQueryOptions, QueryDescription } from './sql/describe.js';
export type { DeepHealthReport, HealthCheckItem, HealthOptions, HealthReport, ServerBudgetWarning } from './ops/health.js';
export type { LeakDiagnosis, PerformanceDiagnosis, PerformanceIssue, Severity } from './ops/diagnosis.js';
export type { AutoTuneOptions, PoolSizeDecision, TimeoutDecision } from './ops/tuning.js';
export type { RecoveryOptions } from './routing/failover.js';
export { knexConfig, type KnexAfterCreate, type KnexConfigOptions } from './adapters/knex-config.js';
export { pgPool, PgCompatiblePool, type PgPoolFaceOptions } from './adapters/pg-pool.js';
export { AlertHandler } from './alerts/alert-handler.js';
export type { AlertContext, AlertHandlerOptions, LeakedConnectionInfo, PoolActions, ResolvedAlert, ScaleResult } from './alerts/alert-handler.js';
export { AlertEvaluator } from './alerts/alert-evaluator.js';
export type {
  ActiveAlert,
  AlertCallStats,
  AlertEvaluatorOptions,
  AlertMetrics,
  AlertRuleName,
  AlertRuleOptions,
  AlertSource,
} from './alerts/alert-evaluator.js';
export type { Alert, AlertKind, AlertLevel, ChannelDelivery, ChannelType, DeliveryReport, SendAlertOptions } from './alerts/types.js';
export type {
  ChannelConfig,
  EmailChannelConfig,
  PagerDutyChannelConfig,
  RetryOptions,
  SlackChannelConfig,
  SmtpConfig,
  WebhookChannelConfig,
} from './alerts/channel-config.js';
export { ADMIN_SERVER_DEFAULTS, startAdminServer } from './admin/start.js';
export type { AdminServer, AdminServerOptions } from './admin/admin-server.js';
