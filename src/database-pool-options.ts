/** The options of a DatabasePool, apart from the facade so its plug-ins' types stay out of it. */
import type { AlertEvaluatorOptions } from './alerts/alert-evaluator.js';
import type { AlertHandler } from './alerts/alert-handler.js';
import type { PoolConfig } from './config/config.js';
import type { HealthOptions } from './ops/health.js';
import type { AutoTuneOptions } from './ops/tuning.js';
import type { RecoveryOptions } from './routing/failover.js';

/** Options of `DatabasePool`. */
export interface DatabasePoolOptions {
  /** Pools created at construction, by id. */
  pools?: Record<string, PoolConfig>;
  /** YAML or JSON file for `createPoolFromConfig`; default: env `DB_POOL_CONFIG`. */
  configFile?: string;
  /** Where leak reports and auto-tuning changes are logged; default `console`. Pass `null` for silence. */
  logger?: Pick<Console, 'warn'> | null;
  /** Thresholds of healthCheck / deepHealthCheck. */
  health?: HealthOptions;
  /** Thresholds of optimizePoolSize / optimizeTimeouts; with `intervalMs`, both run periodically. */
  autoTune?: AutoTuneOptions;
  /** Auto-recovery: recreate with backoff, fail over to `backup`, circuit breaker. On by default. */
  recovery?: RecoveryOptions;
  /** Handlers called when a pool's alert conditions hold (see AlertHandler); also told of failovers. */
  alertHandlers?: AlertHandler[];
  /** The in-process alert conditions: evaluation interval, thresholds, durations. */
  alerts?: AlertEvaluatorOptions;
}
