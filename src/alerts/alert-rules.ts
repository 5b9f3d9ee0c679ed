/**
 * The conditions of the alert rules (see the table in alert-evaluator.ts): the numbers they read,
 * their names and settings, the defaults (the bundled Prometheus rules' thresholds and durations),
 * and whether a rule's condition holds in one metrics sample. The evaluator decides the rest: how
 * long a condition has held, and whom to tell.
 */
import type { AlertKind } from './types.js';

/** The numbers the rules read (a `DetailedMetrics` has them all). */
export interface AlertMetrics {
  latencyP99: number;
  errorRate: number;
  waitingQueueLength: number;
  idleConnections: number;
  activeConnections: number;
  totalConnections: number;
  maxConnections: number;
  leakedConnections: number;
  /** Message of the last connect failure, null (or undefined) after a success. */
  lastConnectError?: string | null | undefined;
  toJSON?(): Record<string, unknown>;
}

/** One rule's settings: fires when the value is above `threshold` for `forMs`. */
export interface AlertRuleOptions {
  /** Default true. */
  enabled?: boolean;
  threshold?: number;
  forMs?: number;
}

/** Rule names as options keys. */
export type AlertRuleName = 'highQueryLatency' | 'connectionExhaustion' | 'highErrorRate' | 'poolDown' | 'leakSuspected';

/** Each rule's alert kind (the name of the bundled Prometheus rule). */
export const RULE_KIND: Record<AlertRuleName, AlertKind> = {
  highQueryLatency: 'HighQueryLatency',
  connectionExhaustion: 'ConnectionExhaustion',
  highErrorRate: 'HighErrorRate',
  poolDown: 'PoolDown',
  leakSuspected: 'LeakSuspected',
};

/**
 * Defaults: the same thresholds and durations as the bundled Prometheus rules. For
 * ConnectionExhaustion the threshold is the number of waiting callers that must be exceeded (while
 * no connection is idle); PoolDown has none.
 */
export const ALERT_RULE_DEFAULTS: Record<AlertRuleName, Required<AlertRuleOptions>> = {
  highQueryLatency: { enabled: true, threshold: 1_000, forMs: 120_000 },
  connectionExhaustion: { enabled: true, threshold: 0, forMs: 60_000 },
  highErrorRate: { enabled: true, threshold: 0.05, forMs: 180_000 },
  poolDown: { enabled: true, threshold: 0, forMs: 30_000 },
  leakSuspected: { enabled: true, threshold: 0, forMs: 0 },
};

/** One rule, one pool, one sample: whether its condition holds, the value it compared, and (PoolDown) why. */
export interface Observation {
  holds: boolean;
  value: number;
  /** PoolDown: why. */
  error?: string;
}

/** Whether the condition of a rule holds in one metrics sample. */
export function observe(rule: AlertRuleName, m: AlertMetrics, threshold: number, probe: { ok: boolean; error?: string } | undefined): Observation {
  switch (rule) {
    case 'highQueryLatency':
      return { holds: m.latencyP99 > threshold, value: m.latencyP99 };
    case 'highErrorRate':
      return { holds: m.errorRate > threshold, value: m.errorRate };
    case 'connectionExhaustion':
      return { holds: m.waitingQueueLength > threshold && m.idleConnections === 0, value: m.waitingQueueLength };
    case 'leakSuspected':
      return { holds: m.leakedConnections > threshold, value: m.leakedConnections };
    case 'poolDown': {
      // No connection and the last connect failed: the pool's CONNECTION_FAILED state.
      if (m.totalConnections === 0 && m.lastConnectError) return { holds: true, value: 1, error: m.lastConnectError };
      // A failing probe means down only while the pool has room; when it is saturated the probe
      // merely waited in line, and ConnectionExhaustion covers that.
      const saturated = m.waitingQueueLength > 0 || m.activeConnections >= m.maxConnections;
      if (probe && !probe.ok && !saturated) return { holds: true, value: 1, error: probe.error ?? 'health probe failed' };
      return { holds: false, value: 0 };
    }
  }
}
