/**
 * `AlertEvaluator`: the bundled Prometheus alert rules, evaluated in process per pool — a
 * condition must hold for its duration before the handler hears of it, once per episode, and
 * `handleResolved` once when it clears.
 *
 * | rule | condition | for |
 * |---|---|---|
 * | HighQueryLatency | latencyP99 > 1000 ms | 2 min |
 * | ConnectionExhaustion | waiting > 0 and idle == 0 | 1 min |
 * | HighErrorRate | errorRate > 0.05 | 3 min |
 * | PoolDown | health probe failing while the pool has room, or no connection and connects failing | 30 s |
 * | LeakSuspected | leakedConnections > 0 | at once |
 *
 * Handler calls for one (handler, pool, condition) run one after another, never at once: a slow
 * handler delays the next call for its own key only, and cannot cause a second call for the same
 * episode (the state changes when the evaluator decides, not when the handler returns). A handler
 * that throws is logged and does not stop the others.
 */
import { z } from 'zod';
import { bool, ms, zodIssues } from '../config-schema.js';
import { InvalidConfigError, type ConfigIssue } from '../errors.js';
import { describeError } from '../object-utils.js';
import { alertDedupKey, type AlertContext, type AlertHandler, type LeakedConnectionInfo, type PoolActions, type ResolvedAlert } from './alert-handler.js';
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

/**
 * What the evaluator reads. `DatabasePool` satisfies it; tests pass a fake. When it also has
 * `getPoolConfig`, `updatePoolConfig`, `optimizePoolSize` and `cleanupPool`, handlers not yet
 * attached are attached to it (for their healing helpers).
 */
export interface AlertSource {
  listPools(): string[];
  getDetailedMetrics(poolId: string): AlertMetrics;
  getConnectionDetails(poolId: string): readonly LeakedConnectionInfo[];
  /** When present (and `probe` is on), one probe of every pool per evaluation feeds PoolDown. */
  healthCheck?(): Promise<{ healthyPools: string[]; unhealthyPools: { poolId: string; error: string }[] }>;
}

/** One rule's settings: fires when the value is above `threshold` for `forMs`. */
export interface AlertRuleOptions {
  /** Default true. */
  enabled?: boolean;
  threshold?: number;
  forMs?: number;
}

/** Options of {@link AlertEvaluator}. */
export interface AlertEvaluatorOptions {
  /** How often every pool is evaluated. Default 5 000 ms. */
  intervalMs?: number;
  /** Per rule: `enabled`, `threshold`, `forMs`. See {@link ALERT_RULE_DEFAULTS}. */
  rules?: Partial<Record<AlertRuleName, AlertRuleOptions>>;
  /** PoolDown also probes every pool (`healthCheck()`) each evaluation when the source can. Default true. */
  probe?: boolean;
  /** Where handler failures are logged. Default `console`; `null` for silence. */
  logger?: Pick<Console, 'warn'> | null;
  /** Start evaluating at construction. Default true. */
  autoStart?: boolean;
}

/** Rule names as options keys. */
export type AlertRuleName = 'highQueryLatency' | 'connectionExhaustion' | 'highErrorRate' | 'poolDown' | 'leakSuspected';

const RULE_KIND: Record<AlertRuleName, AlertKind> = {
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

export const ALERT_EVALUATOR_DEFAULTS = { intervalMs: 5_000, probe: true } as const;

/** A condition that is firing now. */
export interface ActiveAlert {
  kind: AlertKind;
  poolId: string;
  dedupKey: string;
  since: string;
  firedAt: string;
  value: number;
  peakValue: number;
}

interface Episode {
  poolId: string;
  kind: AlertKind;
  /** performance.now() and wall clock when the condition was first seen in this streak. */
  sinceMono: number;
  since: string;
  firing: boolean;
  firedAt: string;
  value: number;
  peakValue: number;
}

interface Observation {
  holds: boolean;
  value: number;
  /** PoolDown: why. */
  error?: string;
}

const ruleSchema = z.strictObject(
  {
    enabled: bool().optional(),
    threshold: z.number({ error: 'must be a number' }).min(0, { error: 'must be 0 or more' }).refine(Number.isFinite, { error: 'must be finite' }).optional(),
    forMs: ms(0, 86_400_000).optional(),
  },
  { error: 'must be an object { enabled?, threshold?, forMs? }' },
);

const EVALUATOR_KEYS = ['intervalMs', 'rules', 'probe', 'logger', 'autoStart'];

/**
 * Evaluates the alert rules for every pool of a source and calls the handlers.
 *
 * @example
 * const evaluator = new AlertEvaluator(db, [handler], { rules: { highQueryLatency: { threshold: 500 } } });
 * // ... later
 * await evaluator.stop();
 */
export class AlertEvaluator {
  readonly #source: AlertSource;
  readonly #handlers: AlertHandler[];
  readonly #rules: Record<AlertRuleName, Required<AlertRuleOptions>>;
  readonly #intervalMs: number;
  readonly #probe: boolean;
  readonly #logger: Pick<Console, 'warn'> | null;
  /** Episode state by {@link episodeKey}. */
  readonly #episodes = new Map<string, Episode>();
  /** Tail of the call queue by `${handlerIndex}\u0000${episodeKey}`. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #evaluating: Promise<Promise<void>[]> | undefined;

  constructor(source: AlertSource, handlers: AlertHandler | readonly AlertHandler[], options: AlertEvaluatorOptions = {}) {
    const resolved = resolveOptions(options);
    this.#source = source;
    this.#handlers = Array.isArray(handlers) ? [...handlers] : [handlers as AlertHandler];
    this.#rules = resolved.rules;
    this.#intervalMs = resolved.intervalMs;
    this.#probe = resolved.probe;
    this.#logger = options.logger === undefined ? console : options.logger;
    if (isPoolActions(source)) for (const h of this.#handlers) if (!h.attached) h.attach(source);
    if (options.autoStart !== false) this.start();
  }

  /** Starts the periodic evaluation (the timer does not keep the process alive). Idempotent. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (!this.#evaluating) void this.#runEvaluation();
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops evaluating; resolves when handler calls already started have finished. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#evaluating?.catch(() => []);
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Evaluates every pool now; resolves after the handler calls it caused (and earlier ones for the same keys) ran. */
  async evaluateNow(): Promise<void> {
    while (this.#evaluating) await this.#evaluating.catch(() => []);
    const calls = await this.#runEvaluation();
    await Promise.allSettled(calls);
  }

  /** Conditions firing now, oldest first. */
  activeAlerts(): ActiveAlert[] {
    const out: ActiveAlert[] = [];
    for (const e of this.#episodes.values()) {
      if (!e.firing) continue;
      out.push({ kind: e.kind, poolId: e.poolId, dedupKey: alertDedupKey(e.poolId, e.kind), since: e.since, firedAt: e.firedAt, value: e.value, peakValue: e.peakValue });
    }
    return out.sort((a, b) => a.firedAt.localeCompare(b.firedAt));
  }

  #runEvaluation(): Promise<Promise<void>[]> {
    const run = this.#evaluate().finally(() => {
      if (this.#evaluating === run) this.#evaluating = undefined;
    });
    this.#evaluating = run;
    return run;
  }

  async #evaluate(): Promise<Promise<void>[]> {
    const calls: Promise<void>[] = [];
    let pools: string[];
    try {
      pools = [...this.#source.listPools()];
    } catch (err) {
      this.#log(`alert evaluation could not list pools: ${describeError(err)}`);
      return calls;
    }
    const probes = await this.#probeAll(pools);
    const now = performance.now();
    const seen = new Set<string>();
    for (const poolId of pools) {
      let m: AlertMetrics;
      try {
        m = this.#source.getDetailedMetrics(poolId);
      } catch {
        // Removed since listPools (its episodes close on the next evaluation), or not readable
        // now: keep its episodes as they are rather than resolve them on a missing sample.
        for (const kind of Object.values(RULE_KIND)) seen.add(episodeKey(poolId, kind));
        continue;
      }
      const metricsJson = snapshot(m);
      for (const rule of Object.keys(RULE_KIND) as AlertRuleName[]) {
        const cfg = this.#rules[rule];
        if (!cfg.enabled) continue;
        const kind = RULE_KIND[rule];
        seen.add(episodeKey(poolId, kind));
        const obs = observe(rule, m, cfg.threshold, probes.get(poolId));
        calls.push(...this.#step(poolId, kind, obs, cfg, now, metricsJson));
      }
    }
    // Episodes of pools that are gone (or rules switched off) end here.
    for (const [key, e] of this.#episodes) {
      if (seen.has(key)) continue;
      this.#episodes.delete(key);
      if (e.firing) calls.push(...this.#resolve(e, now, pools.includes(e.poolId) ? 'cleared' : 'pool-removed'));
    }
    return calls;
  }

  /** One rule, one pool, one sample: start, fire, continue or end an episode. */
  #step(poolId: string, kind: AlertKind, obs: Observation, cfg: Required<AlertRuleOptions>, now: number, metrics: Record<string, unknown>): Promise<void>[] {
    const key = episodeKey(poolId, kind);
    const e = this.#episodes.get(key);
    if (!obs.holds) {
      if (!e) return [];
      this.#episodes.delete(key);
      return e.firing ? this.#resolve(e, now, 'cleared') : [];
    }
    const episode: Episode = e ?? { poolId, kind, sinceMono: now, since: new Date().toISOString(), firing: false, firedAt: '', value: obs.value, peakValue: obs.value };
    if (!e) this.#episodes.set(key, episode);
    episode.peakValue = Math.max(episode.peakValue, obs.value);
    if (episode.firing || now - episode.sinceMono < cfg.forMs) return [];
    episode.firing = true;
    episode.firedAt = new Date().toISOString();
    episode.value = obs.value;
    const context: AlertContext = {
      kind,
      poolId,
      dedupKey: alertDedupKey(poolId, kind),
      value: obs.value,
      threshold: cfg.threshold,
      forMs: cfg.forMs,
      since: episode.since,
      metrics,
    };
    const fired: Fired = { context, error: obs.error, leaked: kind === 'LeakSuspected' ? this.#leakedConnection(poolId) : undefined };
    const { method, call } = HANDLER_CALLS[kind];
    return this.#handlers.map((h, i) => this.#enqueue(i, poolId, kind, `${h.constructor.name}.${method}`, () => call(h, fired)));
  }

  #resolve(e: Episode, now: number, reason: ResolvedAlert['reason']): Promise<void>[] {
    const { poolId, kind } = e;
    const resolved: ResolvedAlert = {
      kind,
      poolId,
      dedupKey: alertDedupKey(poolId, kind),
      since: e.since,
      firedAt: e.firedAt,
      resolvedAt: new Date().toISOString(),
      durationMs: now - e.sinceMono,
      value: e.value,
      peakValue: e.peakValue,
      reason,
    };
    return this.#handlers.map((h, i) => this.#enqueue(i, poolId, kind, `${h.constructor.name}.handleResolved`, () => h.handleResolved(resolved)));
  }

  /** Chains a call behind earlier calls for the same handler, pool and condition. */
  #enqueue(handlerIndex: number, poolId: string, kind: AlertKind, what: string, call: () => Promise<void>): Promise<void> {
    const key = `${handlerIndex}\u0000${episodeKey(poolId, kind)}`;
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        await call();
      } catch (err) {
        this.#log(`alert handler ${what} for pool "${poolId}" failed: ${this.#redact(handlerIndex, describeError(err))}`);
      }
    });
    this.#queues.set(key, next);
    this.#inFlight.add(next);
    void next.finally(() => {
      this.#inFlight.delete(next);
      if (this.#queues.get(key) === next) this.#queues.delete(key);
    });
    return next;
  }

  /** The longest-held loan: the one most surely leaked. */
  #leakedConnection(poolId: string): LeakedConnectionInfo | undefined {
    try {
      const active = this.#source.getConnectionDetails(poolId).filter((c) => c.activeDurationMs > 0);
      active.sort((a, b) => b.activeDurationMs - a.activeDurationMs);
      return active[0];
    } catch {
      return undefined;
    }
  }

  async #probeAll(pools: string[]): Promise<Map<string, { ok: boolean; error?: string }>> {
    const out = new Map<string, { ok: boolean; error?: string }>();
    if (!this.#probe || !this.#rules.poolDown.enabled || pools.length === 0 || typeof this.#source.healthCheck !== 'function') return out;
    try {
      const report = await this.#source.healthCheck();
      for (const id of report.healthyPools) out.set(id, { ok: true });
      for (const u of report.unhealthyPools) out.set(u.poolId, { ok: false, error: u.error });
    } catch (err) {
      this.#log(`alert evaluation: health probe failed: ${describeError(err)}`);
    }
    return out;
  }

  #redact(handlerIndex: number, text: string): string {
    const h = this.#handlers[handlerIndex] as { redact?: (s: string) => string } | undefined;
    try {
      return typeof h?.redact === 'function' ? h.redact(text) : text;
    } catch {
      return text;
    }
  }

  #log(line: string): void {
    try {
      this.#logger?.warn(`[db-pool-otel] ${line}`);
    } catch {
      // never let logging break evaluation
    }
  }
}

/** Whether the condition of a rule holds in one metrics sample. */
function observe(rule: AlertRuleName, m: AlertMetrics, threshold: number, probe: { ok: boolean; error?: string } | undefined): Observation {
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

function episodeKey(poolId: string, kind: AlertKind): string {
  return `${poolId}\u0000${kind}`;
}

/** What a firing condition hands its handler method. */
interface Fired {
  context: AlertContext;
  /** PoolDown: why. */
  error: string | undefined;
  /** LeakSuspected: the longest-held loan. */
  leaked: LeakedConnectionInfo | undefined;
}

/** Per condition: the handler method called when it fires (its name for log lines, and the call). */
const HANDLER_CALLS: Record<AlertKind, { method: string; call: (h: AlertHandler, f: Fired) => Promise<void> }> = {
  HighQueryLatency: { method: 'handleHighLatency', call: (h, { context }) => h.handleHighLatency(context.poolId, context.value, context) },
  ConnectionExhaustion: { method: 'handleConnectionExhaustion', call: (h, { context }) => h.handleConnectionExhaustion(context.poolId, context) },
  HighErrorRate: { method: 'handleHighErrorRate', call: (h, { context }) => h.handleHighErrorRate(context.poolId, context.value, context) },
  PoolDown: { method: 'handlePoolDown', call: (h, { context, error }) => h.handlePoolDown(context.poolId, new Error(error ?? 'the pool cannot reach its server'), context) },
  LeakSuspected: { method: 'handleLeakSuspected', call: (h, { context, leaked }) => h.handleLeakSuspected(context.poolId, leaked ?? { id: -1, activeDurationMs: 0 }, context) },
};

function snapshot(m: AlertMetrics): Record<string, unknown> {
  try {
    return typeof m.toJSON === 'function' ? m.toJSON() : { ...m };
  } catch {
    return {};
  }
}

function isPoolActions(source: unknown): source is PoolActions {
  const s = source as Partial<Record<keyof PoolActions, unknown>>;
  return typeof s.getPoolConfig === 'function' && typeof s.updatePoolConfig === 'function' && typeof s.optimizePoolSize === 'function' && typeof s.cleanupPool === 'function';
}

function resolveOptions(options: unknown): { intervalMs: number; probe: boolean; rules: Record<AlertRuleName, Required<AlertRuleOptions>> } {
  const issues: ConfigIssue[] = [];
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidConfigError([{ path: '(options)', value: options, rule: 'must be an object' }], 'AlertEvaluator');
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!EVALUATOR_KEYS.includes(key)) issues.push({ path: key, value: undefined, rule: `is not a known option (known: ${EVALUATOR_KEYS.join(', ')})` });
  let intervalMs: number = ALERT_EVALUATOR_DEFAULTS.intervalMs;
  if (o.intervalMs !== undefined) {
    if (typeof o.intervalMs !== 'number' || !Number.isInteger(o.intervalMs) || o.intervalMs < 10 || o.intervalMs > 3_600_000) {
      issues.push({ path: 'intervalMs', value: o.intervalMs, rule: 'must be a whole number from 10 to 3600000 (milliseconds)' });
    } else intervalMs = o.intervalMs;
  }
  if (o.probe !== undefined && typeof o.probe !== 'boolean') issues.push({ path: 'probe', value: o.probe, rule: 'must be true or false' });
  if (o.autoStart !== undefined && typeof o.autoStart !== 'boolean') issues.push({ path: 'autoStart', value: o.autoStart, rule: 'must be true or false' });
  if (o.logger !== undefined && o.logger !== null && typeof (o.logger as { warn?: unknown }).warn !== 'function') {
    issues.push({ path: 'logger', value: undefined, rule: 'must have a warn(message) method, or be null for silence' });
  }
  const rules = Object.fromEntries(Object.entries(ALERT_RULE_DEFAULTS).map(([k, v]) => [k, { ...v }])) as Record<AlertRuleName, Required<AlertRuleOptions>>;
  if (o.rules !== undefined) {
    if (o.rules === null || typeof o.rules !== 'object' || Array.isArray(o.rules)) {
      issues.push({ path: 'rules', value: undefined, rule: `must be an object keyed by rule: ${Object.keys(RULE_KIND).join(', ')}` });
    } else {
      for (const [name, cfg] of Object.entries(o.rules as Record<string, unknown>)) {
        if (!(name in RULE_KIND)) {
          issues.push({ path: `rules.${name}`, value: undefined, rule: `is not a rule (rules: ${Object.keys(RULE_KIND).join(', ')})` });
          continue;
        }
        const r = ruleSchema.safeParse(cfg);
        if (!r.success) {
          issues.push(...zodIssues(r.error.issues, cfg, { prefix: `rules.${name}`, unknownRule: 'is not a known setting (enabled, threshold, forMs)', required: false }));
          continue;
        }
        const rule = rules[name as AlertRuleName];
        if (r.data.enabled !== undefined) rule.enabled = r.data.enabled;
        if (r.data.threshold !== undefined) rule.threshold = r.data.threshold;
        if (r.data.forMs !== undefined) rule.forMs = r.data.forMs;
      }
    }
  }
  if (issues.length > 0) throw new InvalidConfigError(issues, 'AlertEvaluator');
  return { intervalMs, probe: o.probe === undefined ? ALERT_EVALUATOR_DEFAULTS.probe : (o.probe as boolean), rules };
}
