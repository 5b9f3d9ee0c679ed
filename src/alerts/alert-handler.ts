/**
 * `AlertHandler`: what happens when a pool is sick. The evaluator calls one `handle*` method per
 * episode and `handleResolved` when it ends; the defaults send an alert through every configured
 * channel (generic webhook, Slack, PagerDuty, email). Subclass it to do more — page differently,
 * or heal: `emergencyScaleUp`, `increaseMaxConnections`, `autoScalePool` and
 * `cleanupIdleConnections` act on the `DatabasePool` the handler is attached to.
 *
 * Delivery never throws into the pool or the caller: a failing channel is retried with backoff,
 * every failure is logged (secrets removed), and `sendAlert` resolves with a per-channel report.
 * Channel secrets live in private fields and are redacted in `toJSON()`, `util.inspect`, logs and
 * reports.
 */
import { hostname } from 'node:os';
import { inspect } from 'node:util';
import { InvalidConfigError } from '../errors.js';
import { describeError, round3 } from '../util/object-utils.js';
import { AUTO_TUNE_DEFAULTS } from '../ops/tuning.js';
import { Scrubber, validateHandlerOptions, type ChannelConfig, type RetryOptions } from './channel-config.js';
import { EmailChannel } from './channels/email.js';
import { PagerDutyChannel } from './channels/pagerduty.js';
import { SlackChannel } from './channels/slack.js';
import { WebhookChannel } from './channels/webhook.js';
import { withRetry } from './retry.js';
import {
  ALERT_LEVELS,
  DeliveryError,
  type Alert,
  type AlertChannel,
  type AlertKind,
  type AlertLevel,
  type ChannelDelivery,
  type DeliveryReport,
  type SendAlertOptions,
} from './types.js';

/** Options of {@link AlertHandler}. */
export interface AlertHandlerOptions {
  /** Named channels; `sendAlert({ channels: ['pager'] })` picks some, the default is all. */
  channels?: Record<string, ChannelConfig>;
  /** Retries of a failing channel. Default 3 attempts, 200 ms then 400 ms between (factor 2, cap 5 s). */
  retry?: RetryOptions;
  /** Per-attempt timeout of a delivery. Default 5 000 ms. */
  timeoutMs?: number;
  /** Where delivery failures (and, without channels, the alerts themselves) go. Default `console`; `null` for silence. */
  logger?: Pick<Console, 'warn'> | null;
  /** `source` of the alerts (PagerDuty's `payload.source`). Default the host name. */
  source?: string;
}

/** What the evaluator knows about a condition when it calls a `handle*` method. */
export interface AlertContext {
  kind: AlertKind;
  poolId: string;
  /** Stable per pool and condition: `db-pool-otel/<poolId>/<kind>`. */
  dedupKey: string;
  /** The observed value that crossed the threshold (ms, ratio, count; 1 for PoolDown). */
  value: number;
  threshold: number;
  /** How long the condition had to hold (ms). */
  forMs: number;
  /** When the condition was first seen (ISO 8601). */
  since: string;
  /** The metrics snapshot behind the decision (`toJSON()` of `getDetailedMetrics`). */
  metrics: Record<string, unknown>;
  /**
   * Aborted when the evaluator abandons this call (it ran past `handlerTimeoutMs`, or `stop()`
   * timed out): stop working on it. Pass it on as `sendAlert({ signal })`. Not enumerable.
   */
  readonly signal?: AbortSignal;
}

/** The end of an episode, as `handleResolved` receives it. */
export interface ResolvedAlert {
  kind: AlertKind;
  poolId: string;
  dedupKey: string;
  /** When the condition was first seen, when the handler was called, when it cleared (ISO 8601). */
  since: string;
  firedAt: string;
  resolvedAt: string;
  /** From first seen to cleared. */
  durationMs: number;
  /** The value when it fired, and the worst value seen during the episode. */
  value: number;
  peakValue: number;
  /** 'cleared': the condition no longer holds; 'pool-removed': the pool is gone. */
  reason: 'cleared' | 'pool-removed';
  /** Aborted when the evaluator abandons this call (see {@link AlertContext.signal}). Not enumerable. */
  readonly signal?: AbortSignal;
}

/** What the healing helpers need of a `DatabasePool` (which satisfies it). */
export interface PoolActions {
  getPoolConfig(poolId: string): { max: number };
  updatePoolConfig(poolId: string, patch: { max?: number }): Promise<void>;
  optimizePoolSize(poolId: string): Promise<unknown>;
  cleanupPool(poolId: string): Promise<unknown>;
}

/** A change of a pool's `max` made by a healing helper. */
export interface ScaleResult {
  poolId: string;
  before: number;
  after: number;
}

/** The dedup key of a condition on a pool (also PagerDuty's `dedup_key`). */
export function alertDedupKey(poolId: string | undefined, kind: string | undefined): string {
  return `db-pool-otel/${poolId ?? '-'}/${kind ?? 'alert'}`;
}

/** Ceiling of `emergencyScaleUp` (the ops guide's: auto-tuning's default ceiling, 200). */
export const EMERGENCY_MAX_CONNECTIONS = AUTO_TUNE_DEFAULTS.maxConnections;
const SCHEMA_MAX_CONNECTIONS = 10_000;
const OPEN_EPISODES_LIMIT = 10_000;

/**
 * Alerts for one or more pools.
 *
 * @example
 * class Ops extends AlertHandler {
 *   override async handleConnectionExhaustion(poolId: string, ctx?: AlertContext) {
 *     await super.handleConnectionExhaustion(poolId, ctx);   // page
 *     await this.emergencyScaleUp(poolId);                    // and heal
 *   }
 * }
 * const handler = new Ops({ channels: { chat: { type: 'slack', webhookUrl: process.env.SLACK_WEBHOOK_URL! } } });
 */
export class AlertHandler {
  readonly #channels = new Map<string, AlertChannel>();
  readonly #retry: Required<RetryOptions>;
  readonly #timeoutMs: number;
  readonly #logger: Pick<Console, 'warn'> | null;
  readonly #source: string;
  readonly #scrubber = new Scrubber();
  /** Episodes announced and not yet resolved: their level and the channels told, by dedup key. */
  readonly #open = new Map<string, { level: AlertLevel; channels: string[] }>();
  #db: PoolActions | undefined;

  constructor(options: AlertHandlerOptions = {}) {
    const valid = validateHandlerOptions(options);
    this.#retry = valid.retry;
    this.#timeoutMs = valid.timeoutMs;
    this.#logger = options.logger === undefined ? console : options.logger;
    this.#source = options.source ?? hostname();
    for (const [name, cfg] of valid.channels) {
      const channel = makeChannel(name, cfg);
      this.#channels.set(name, channel);
      this.#scrubber.add(channel.secrets());
    }
  }

  /** Names of the configured channels. */
  get channelNames(): string[] {
    return [...this.#channels.keys()];
  }

  /** Binds the healing helpers to a pool manager (the evaluator does this with its `DatabasePool`). */
  attach(db: PoolActions): this {
    this.#db = db;
    return this;
  }

  /** Whether {@link attach} was called. */
  get attached(): boolean {
    return this.#db !== undefined;
  }

  // ---------------------------------------------------------------- conditions (override these)

  /** Query latency P99 above its threshold for the rule's duration. Default: a warning. */
  async handleHighLatency(poolId: string, latencyMs: number, context?: AlertContext): Promise<void> {
    const held = context ? `, above ${fmtNumber(context.threshold)} ms for ${fmtDuration(context.forMs)}` : '';
    await this.sendAlert({
      level: 'warning',
      kind: 'HighQueryLatency',
      poolId,
      dedupKey: context?.dedupKey ?? alertDedupKey(poolId, 'HighQueryLatency'),
      message: `Pool "${poolId}": query latency P99 is ${fmtNumber(latencyMs)} ms${held}`,
      details: detailsOf(context, { latencyP99Ms: round3(latencyMs) }),
      signal: context?.signal,
    });
  }

  /** Callers waiting with no idle connection for the rule's duration. Default: critical. */
  async handleConnectionExhaustion(poolId: string, context?: AlertContext): Promise<void> {
    const m = context?.metrics;
    const numbers =
      m && typeof m.activeConnections === 'number'
        ? `${m.activeConnections} of ${m.maxConnections} connections in use, ${m.idleConnections} idle, ${m.waitingQueueLength} callers waiting`
        : 'callers are waiting and no connection is idle';
    await this.sendAlert({
      level: 'critical',
      kind: 'ConnectionExhaustion',
      poolId,
      dedupKey: context?.dedupKey ?? alertDedupKey(poolId, 'ConnectionExhaustion'),
      message: `Pool "${poolId}" is out of connections: ${numbers}${context ? ` (for ${fmtDuration(context.forMs)})` : ''}`,
      details: detailsOf(context, {}),
      signal: context?.signal,
    });
  }

  /** Failed / all queries above its threshold for the rule's duration. Default: a warning. */
  async handleHighErrorRate(poolId: string, errorRate: number, context?: AlertContext): Promise<void> {
    const held = context ? ` (threshold ${fmtPercent(context.threshold)}, for ${fmtDuration(context.forMs)})` : '';
    await this.sendAlert({
      level: 'warning',
      kind: 'HighErrorRate',
      poolId,
      dedupKey: context?.dedupKey ?? alertDedupKey(poolId, 'HighErrorRate'),
      message: `Pool "${poolId}": ${fmtPercent(errorRate)} of queries are failing${held}`,
      details: detailsOf(context, { errorRate: round3(errorRate) }),
      signal: context?.signal,
    });
  }

  /** The pool cannot reach its server (failing probe, or no connection and connects failing). Default: critical. */
  async handlePoolDown(poolId: string, error: Error, context?: AlertContext): Promise<void> {
    const why = error instanceof Error ? error.message : String(error);
    await this.sendAlert({
      level: 'critical',
      kind: 'PoolDown',
      poolId,
      dedupKey: context?.dedupKey ?? alertDedupKey(poolId, 'PoolDown'),
      message: `Pool "${poolId}" is down: ${why}${context ? ` (for ${fmtDuration(context.forMs)})` : ''}`,
      details: detailsOf(context, { error: why }),
      signal: context?.signal,
    });
  }

  /** A loan held past the pool's `leakDetectionThresholdMs`; `connection` is the longest-held one. Default: a warning. */
  async handleLeakSuspected(poolId: string, connection: LeakedConnectionInfo, context?: AlertContext): Promise<void> {
    const count = context && context.value > 1 ? ` (${context.value} connections suspected)` : '';
    const query = connection.lastQuery ? `; last query: ${truncate(connection.lastQuery, 200)}` : '';
    await this.sendAlert({
      level: 'warning',
      kind: 'LeakSuspected',
      poolId,
      dedupKey: context?.dedupKey ?? alertDedupKey(poolId, 'LeakSuspected'),
      message: `Pool "${poolId}": connection ${connection.id} held for ${fmtDuration(connection.activeDurationMs)}, possibly leaked${count}${query}`,
      details: detailsOf(context, {
        connectionId: connection.id,
        heldMs: Math.round(connection.activeDurationMs),
        ...(connection.lastQuery ? { lastQuery: truncate(connection.lastQuery, 1_000) } : {}),
        ...(connection.stackTrace ? { stackTrace: truncate(connection.stackTrace, 4_000) } : {}),
        ...(connection.traceId ? { traceId: connection.traceId } : {}),
      }),
      signal: context?.signal,
    });
  }

  /**
   * The end of an episode. Default: a resolve to the channels that heard its trigger (PagerDuty
   * closes the incident) — only for episodes this handler announced, so an override that handled
   * a condition without alerting does not produce a lone "resolved".
   */
  async handleResolved(alert: ResolvedAlert): Promise<void> {
    const open = this.#open.get(alert.dedupKey);
    if (!open) return;
    const why = alert.reason === 'pool-removed' ? 'no longer watched: the pool was removed' : `resolved after ${fmtDuration(alert.durationMs)}`;
    await this.sendAlert({
      level: open.level,
      kind: alert.kind,
      poolId: alert.poolId,
      dedupKey: alert.dedupKey,
      resolve: true,
      message: `Pool "${alert.poolId}": ${alert.kind} ${why}`,
      details: {
        since: alert.since,
        firedAt: alert.firedAt,
        resolvedAt: alert.resolvedAt,
        durationMs: Math.round(alert.durationMs),
        reason: alert.reason,
        value: round3(alert.value),
        peakValue: round3(alert.peakValue),
      },
      signal: alert.signal,
    });
  }

  // ---------------------------------------------------------------- delivery

  /**
   * Delivers an alert through the named channels (default all), each retried with backoff on
   * failure. Never rejects; resolves with what each channel did. A resolve goes to the channels
   * that were sent its trigger (same dedup key), unless `channels` says otherwise.
   *
   * @example
   * const report = await handler.sendAlert({ level: 'critical', message: 'primary is down', channels: ['pager'], poolId: 'main', kind: 'PoolDown' });
   * if (!report.ok) console.error(report.deliveries.filter((d) => !d.ok));
   */
  async sendAlert(options: SendAlertOptions): Promise<DeliveryReport> {
    const level: AlertLevel = ALERT_LEVELS.includes(options?.level) ? options.level : 'error';
    if (level !== options?.level) this.#log(`alert with unknown level ${JSON.stringify(String(options?.level))} sent as "error"`);
    const resolve = options?.resolve === true;
    const poolId = options?.poolId;
    const kind = options?.kind;
    const dedupKey = options?.dedupKey ?? (poolId !== undefined || kind !== undefined ? alertDedupKey(poolId, kind) : undefined);
    const alert: Alert = {
      level,
      message: this.#scrubber.scrub(String(options?.message ?? '')),
      poolId,
      kind,
      status: resolve ? 'resolved' : 'firing',
      dedupKey,
      timestamp: new Date().toISOString(),
      source: this.#source,
      details: this.#scrubDetails(options?.details),
    };
    const report: DeliveryReport = { ok: true, status: alert.status, level, poolId, kind, dedupKey, deliveries: [] };

    if (this.#channels.size === 0 && options?.channels === undefined) {
      this.#log(`alert (no channels configured) ${alert.status === 'resolved' ? 'RESOLVED' : level.toUpperCase()}${kind ? ` ${kind}` : ''}: ${alert.message}`);
      return report;
    }

    const open = dedupKey === undefined ? undefined : this.#open.get(dedupKey);
    const names = options?.channels ?? (resolve && open ? open.channels : [...this.#channels.keys()]);
    const gate = !(resolve && open && options?.channels === undefined);
    const planned = [...new Set(names)].map((name): { name: string; channel?: AlertChannel; outcome?: ChannelDelivery } => {
      const channel = this.#channels.get(name);
      if (!channel) {
        const error = `no channel named "${name}" (configured: ${this.channelNames.join(', ') || 'none'})`;
        this.#log(`alert not sent to channel "${name}": ${error}`);
        return { name, outcome: { channel: name, type: 'unknown', ok: false, attempts: 0, durationMs: 0, error } };
      }
      if (gate && ALERT_LEVELS.indexOf(level) < ALERT_LEVELS.indexOf(channel.minLevel)) {
        return {
          name,
          outcome: {
            channel: name,
            type: channel.type,
            ok: false,
            skipped: `level ${level} is below the channel's minLevel ${channel.minLevel}`,
            attempts: 0,
            durationMs: 0,
          },
        };
      }
      return { name, channel };
    });
    const tried = planned.filter((p) => p.channel !== undefined).map((p) => p.name);
    // The episode is opened (or closed) when its delivery starts, not when it ends: a resolve that
    // follows a trigger still being delivered (or abandoned by the evaluator) goes to its channels.
    if (dedupKey !== undefined) {
      if (resolve) this.#open.delete(dedupKey);
      else if (tried.length > 0) this.#remember(dedupKey, level, tried);
    }
    report.deliveries = await Promise.all(planned.map((p) => (p.channel ? this.#deliver(p.channel, alert, options?.signal) : Promise.resolve(p.outcome!))));
    report.ok = report.deliveries.every((d) => d.ok || d.skipped !== undefined);
    return report;
  }

  async #deliver(channel: AlertChannel, alert: Alert, signal: AbortSignal | undefined): Promise<ChannelDelivery> {
    const started = performance.now();
    const what = `${alert.status === 'resolved' ? 'RESOLVED' : alert.level.toUpperCase()}${alert.kind ? ` ${alert.kind}` : ''}${alert.poolId !== undefined ? ` on pool "${alert.poolId}"` : ''}`;
    const outcome = await withRetry(
      // Abandoned (the evaluator's signal): no further attempt, and the one running is not waited for.
      () => (signal ? untilAborted(() => channel.send(alert, this.#timeoutMs), signal) : channel.send(alert, this.#timeoutMs)),
      this.#retry,
      (attempt, error, nextDelayMs) => {
        const then = nextDelayMs === undefined ? `; giving up on alert ${what}` : `; retrying in ${Math.round(nextDelayMs)} ms`;
        this.#log(`alert channel "${channel.name}" (${channel.label}): attempt ${attempt} of ${this.#retry.attempts} failed: ${describeError(error)}${then}`);
      },
    );
    const durationMs = Math.round(performance.now() - started);
    if (outcome.ok) return { channel: channel.name, type: channel.type, ok: true, attempts: outcome.attempts, durationMs };
    return {
      channel: channel.name,
      type: channel.type,
      ok: false,
      attempts: outcome.attempts,
      durationMs,
      error: this.#scrubber.scrub(describeError(outcome.error)),
    };
  }

  #remember(dedupKey: string, level: AlertLevel, channels: string[]): void {
    this.#open.delete(dedupKey);
    this.#open.set(dedupKey, { level, channels });
    if (this.#open.size > OPEN_EPISODES_LIMIT) this.#open.delete(this.#open.keys().next().value!);
  }

  #scrubDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
    if (details === undefined || details === null || typeof details !== 'object') return {};
    try {
      const json = JSON.stringify(details);
      return json === undefined ? {} : (JSON.parse(this.#scrubber.scrub(json)) as Record<string, unknown>);
    } catch {
      return { note: 'details were not serializable' };
    }
  }

  /** Removes every channel secret (URLs, keys, passwords) from a text; for log lines of your own. */
  redact(text: string): string {
    return this.#scrubber.scrub(text);
  }

  #log(line: string): void {
    try {
      this.#logger?.warn(`[db-pool-otel] ${this.#scrubber.scrub(line)}`);
    } catch {
      // a broken logger must not break alerting
    }
  }

  // ---------------------------------------------------------------- healing helpers

  /** Applies the pool-size rule now (`db.optimizePoolSize`). */
  async autoScalePool(poolId: string): Promise<unknown> {
    return this.#target().optimizePoolSize(poolId);
  }

  /** Raises `max` by half (auto-tuning's scale-up factor, rounded up), to at most 200; never lowers it. */
  async emergencyScaleUp(poolId: string): Promise<ScaleResult> {
    return this.#resize(
      poolId,
      (max) => Math.max(max, Math.min(EMERGENCY_MAX_CONNECTIONS, Math.ceil(max * AUTO_TUNE_DEFAULTS.scaleUpFactor))),
      'emergencyScaleUp',
    );
  }

  /** Raises `max` by a quarter (at least one connection). */
  async increaseMaxConnections(poolId: string): Promise<ScaleResult> {
    return this.#resize(poolId, (max) => Math.min(SCHEMA_MAX_CONNECTIONS, max + Math.max(1, Math.ceil(max * 0.25))), 'increaseMaxConnections');
  }

  /** Closes idle connections, takes back leaked loans, clears transient errors (`db.cleanupPool`). */
  async cleanupIdleConnections(poolId: string): Promise<unknown> {
    return this.#target().cleanupPool(poolId);
  }

  async #resize(poolId: string, next: (max: number) => number, action: string): Promise<ScaleResult> {
    const db = this.#target();
    const before = db.getPoolConfig(poolId).max;
    const after = next(before);
    if (after !== before) {
      await db.updatePoolConfig(poolId, { max: after });
      this.#log(`${action}: pool "${poolId}" max ${before} → ${after}`);
    }
    return { poolId, before, after };
  }

  #target(): PoolActions {
    if (this.#db) return this.#db;
    throw new InvalidConfigError(
      [
        {
          path: 'alertHandler',
          value: undefined,
          rule: 'is not attached to a DatabasePool: pass it in new DatabasePool({ alertHandlers }) or call handler.attach(db)',
        },
      ],
      this.constructor.name,
    );
  }

  /** Closes SMTP transports. Alerts sent later still work (they reconnect). */
  close(): void {
    for (const channel of this.#channels.values()) channel.close?.();
  }

  // ---------------------------------------------------------------- display

  /** Settings with every secret redacted. */
  toJSON(): { channels: Record<string, Record<string, unknown>>; retry: Required<RetryOptions>; timeoutMs: number; source: string } {
    const channels: Record<string, Record<string, unknown>> = {};
    for (const [name, channel] of this.#channels) channels[name] = channel.describe();
    return { channels, retry: { ...this.#retry }, timeoutMs: this.#timeoutMs, source: this.#source };
  }

  [inspect.custom](depth: number, options: object, inspectFn: typeof inspect = inspect): string {
    return `${this.constructor.name} ${inspectFn(this.toJSON(), { ...options, depth: Math.max(depth, 4) })}`;
  }
}

/** A connection as `handleLeakSuspected` receives it (a `ConnectionInfo` of the pool). */
export interface LeakedConnectionInfo {
  id: number;
  activeDurationMs: number;
  lastQuery?: string | undefined;
  stackTrace?: string | undefined;
  traceId?: string | undefined;
}

function makeChannel(name: string, cfg: ChannelConfig): AlertChannel {
  switch (cfg.type) {
    case 'webhook':
      return new WebhookChannel(name, cfg);
    case 'slack':
      return new SlackChannel(name, cfg);
    case 'pagerduty':
      return new PagerDutyChannel(name, cfg);
    case 'email':
      return new EmailChannel(name, cfg);
  }
}

function detailsOf(context: AlertContext | undefined, extra: Record<string, unknown>): Record<string, unknown> {
  if (!context) return extra;
  return { ...extra, value: round3(context.value), threshold: context.threshold, forMs: context.forMs, since: context.since, metrics: context.metrics };
}

function fmtNumber(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v)) : String(v);
}

function fmtPercent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10} %`;
}

/** 450 ms, 30 s, 1 min, 2 min 30 s, 1 h 5 min. */
function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 1_000) return `${Math.max(0, Math.round(Number.isFinite(ms) ? ms : 0))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 7_200) return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
  const min = Math.round(s / 60);
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** `work()`, or a permanent DeliveryError as soon as `signal` is aborted (at once, without starting it, when it already is). */
function untilAborted<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
  const abandoned = () => new DeliveryError(`abandoned: ${describeError(signal.reason)}`, { permanent: true });
  if (signal.aborted) return Promise.reject(abandoned());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abandoned());
    signal.addEventListener('abort', onAbort, { once: true });
    work()
      .then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}
