/**
 * db-pool-otel: named PostgreSQL pools (generic-pool + pg) that on-call engineers can see into.
 * The OpenTelemetry side lives in `db-pool-otel/instrumentation`.
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
export { POOL_DEFAULTS, REDACTED, redactDeep, redactUrl, resolvePoolConfig } from './config/config.js';
export type { ConnectionConfig, PoolConfig, ResolvedPoolConfig, TlsConfig } from './config/config.js';
export { loadConfigFile } from './config/config-file.js';
export type { ConfigFileContents } from './config/config-file.js';
export * from './errors.js';
export * from './channels.js';
export { livePoolStatuses } from './pool/registry.js';
export { BACKENDS_REFRESH_MS, liveServerBudgets } from './pool/server-budget.js';
export type { BudgetVia, InstanceClaims, LiveServerBudget, ServerBudget } from './pool/server-budget.js';
export { DESCRIBE_MAX_CHARS, FINGERPRINT_MAX_TOKENS, describeQuery, fingerprintSql, sanitizeSql } from './sql/describe.js';
export type { DescribeQueryOptions, QueryDescription } from './sql/describe.js';
export { activeTraceId, setTraceIdProvider } from './trace-context.js';
export type { DeepHealthReport, HealthCheckItem, HealthOptions, HealthReport, ServerBudgetWarning } from './ops/health.js';
export type { LeakDiagnosis, PerformanceDiagnosis, PerformanceIssue, Severity } from './ops/diagnosis.js';
export { AUTO_TUNE_DEFAULTS } from './ops/tuning.js';
export type { AutoTuneOptions, PoolSizeDecision, TimeoutDecision } from './ops/tuning.js';
export { RECOVERY_DEFAULTS } from './routing/failover.js';
export type { RecoveryOptions } from './routing/failover.js';
export { knexConfig, type KnexAfterCreate, type KnexConfigOptions } from './adapters/knex-config.js';
export { pgPool, PgCompatiblePool, type PgPoolFaceOptions } from './adapters/pg-pool.js';
export { AlertHandler, alertDedupKey, EMERGENCY_MAX_CONNECTIONS } from './alerts/alert-handler.js';
export type { AlertContext, AlertHandlerOptions, LeakedConnectionInfo, PoolActions, ResolvedAlert, ScaleResult } from './alerts/alert-handler.js';
export { AlertEvaluator, ALERT_EVALUATOR_DEFAULTS, ALERT_RULE_DEFAULTS } from './alerts/alert-evaluator.js';
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
export { DEFAULT_PAGERDUTY_EVENTS_URL, RETRY_DEFAULTS } from './alerts/channel-config.js';
export type {
  ChannelConfig,
  EmailChannelConfig,
  PagerDutyChannelConfig,
  RetryOptions,
  SlackChannelConfig,
  SmtpConfig,
  WebhookChannelConfig,
} from './alerts/channel-config.js';
export { ADMIN_SERVER_DEFAULTS, startAdminServer } from './admin/admin-server.js';
export { ADMIN_ROUTES } from './admin/routes.js';
export { DEFAULT_ADMIN_PORT } from './admin/protocol.js';
export type { AdminServer, AdminServerOptions } from './admin/admin-server.js';
