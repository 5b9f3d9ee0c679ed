/**
 * Shapes shared by the alert handler, its channels and the evaluator: levels, the normalized alert
 * every channel formats, and the delivery report `sendAlert` resolves with.
 */

/** How bad it is, least to most severe (PagerDuty's severities, in the same order). */
export type AlertLevel = 'info' | 'warning' | 'error' | 'critical';

export const ALERT_LEVELS: readonly AlertLevel[] = ['info', 'warning', 'error', 'critical'];

/** The conditions the evaluator watches (the names of the bundled Prometheus rules). */
export type AlertKind = 'HighQueryLatency' | 'ConnectionExhaustion' | 'HighErrorRate' | 'PoolDown' | 'LeakSuspected';

/** Channel kinds `sendAlert` can deliver through. */
export type ChannelType = 'webhook' | 'slack' | 'pagerduty' | 'email';

/** What `sendAlert` takes. */
export interface SendAlertOptions {
  level: AlertLevel;
  /** One line for people; name the pool and the numbers. */
  message: string;
  /** Names of configured channels; default every channel. */
  channels?: readonly string[];
  poolId?: string;
  /** The condition (one of {@link AlertKind}, or your own word). */
  kind?: string;
  /**
   * Identifies the episode, so a resolve closes its trigger (PagerDuty `dedup_key`). Default
   * `db-pool-otel/<poolId>/<kind>` when poolId or kind is given.
   */
  dedupKey?: string;
  /** True: this announces the end of the episode (`status: 'resolved'`, PagerDuty `resolve`). */
  resolve?: boolean;
  /** Extra facts for the payload (`details` in JSON, `custom_details` for PagerDuty). Plain JSON values. */
  details?: Record<string, unknown>;
  /**
   * Abandons the delivery when aborted: no further attempt, and the attempt running is not waited
   * for (the channel's own `timeoutMs` still ends it). The `handle*` methods pass the evaluator's.
   */
  signal?: AbortSignal;
}

/** The normalized alert every channel formats. */
export interface Alert {
  level: AlertLevel;
  message: string;
  poolId: string | undefined;
  kind: string | undefined;
  status: 'firing' | 'resolved';
  dedupKey: string | undefined;
  /** ISO 8601. */
  timestamp: string;
  /** Host (and process) that raised it; PagerDuty's `source`. */
  source: string;
  details: Record<string, unknown>;
}

/** The outcome of one channel in a {@link DeliveryReport}. Contains no secret. */
export interface ChannelDelivery {
  channel: string;
  type: ChannelType | 'unknown';
  /** Delivered (the receiver accepted it). */
  ok: boolean;
  /** Set when the channel was not tried: below its `minLevel`, or not configured. */
  skipped?: string;
  attempts: number;
  durationMs: number;
  /** Last failure, secrets removed. */
  error?: string;
}

/** What `sendAlert` resolves with; it never rejects. */
export interface DeliveryReport {
  /** Every channel tried delivered (vacuously true when none was tried). */
  ok: boolean;
  status: 'firing' | 'resolved';
  level: AlertLevel;
  poolId: string | undefined;
  kind: string | undefined;
  dedupKey: string | undefined;
  deliveries: ChannelDelivery[];
}

/** One delivery attempt failed. `permanent` failures (a 4xx, a refused login) are not retried. */
export class DeliveryError extends Error {
  readonly permanent: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { permanent?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeliveryError';
    this.permanent = options.permanent ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** A configured channel: formats an alert and delivers it once (retries are the caller's). */
export interface AlertChannel {
  readonly name: string;
  readonly type: ChannelType;
  readonly minLevel: AlertLevel;
  /** One attempt; throws on failure (a {@link DeliveryError} when it knows whether to retry). */
  send(alert: Alert, timeoutMs: number): Promise<void>;
  /** Config with secrets replaced, for toJSON / inspect / logs. */
  describe(): Record<string, unknown>;
  /** A short label for log lines, e.g. `slack https://hooks.slack.com/[REDACTED]`. */
  readonly label: string;
  /** Secret strings this channel holds (for scrubbing text). */
  secrets(): string[];
  close?(): void;
}
