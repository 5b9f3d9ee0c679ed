/**
 * What the admin endpoint needs of a DatabasePool: part of its public API, named here so admin/ never
 * imports the facade (which starts the endpoint). A `DatabasePool` is one.
 */
import type { PoolConfig, ResolvedPoolConfig } from '../config/config.js';
import type { LeakDiagnosis, PerformanceDiagnosis } from '../ops/diagnosis.js';
import type { HealthReport } from '../ops/health.js';
import type { ConnectionInfo, PoolStatus } from '../pool/managed-pool.js';
import type { DetailedMetrics, QueryMetrics } from '../pool/metrics.js';
import type { SlowQuery } from '../stats/slow-query-log.js';

export interface AdminPools {
  listPools(): string[];
  getPoolConfig(poolId: string): ResolvedPoolConfig;
  getPoolStatus(poolId: string): PoolStatus;
  getDetailedMetrics(poolId: string): DetailedMetrics;
  getQueryMetrics(poolId: string, options?: { limit?: number }): QueryMetrics;
  getSlowQueries(poolId: string, options?: { limit?: number }): SlowQuery[];
  getConnectionDetails(poolId: string): ConnectionInfo[];
  updatePoolConfig(poolId: string, patch: Partial<PoolConfig>): Promise<void>;
  restartPool(poolId: string, options?: { drainTimeoutMs?: number }): Promise<void>;
  cleanupPool(poolId: string): Promise<{ idleClosed: number; leaksReclaimed: number; errorsCleared: boolean }>;
  healthCheck(): Promise<HealthReport>;
  diagnosePerformanceIssues(poolId: string): Promise<PerformanceDiagnosis>;
  diagnoseConnectionLeak(poolId: string): Promise<LeakDiagnosis>;
}
