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
 * Handler calls for one (handler, pool, condition) — a key — are coalesced: at most one runs and
 * at most one waits behind it. A new state for a key whose call is still running replaces the
 * waiting one (the latest state wins: a trigger, then a resolve, then a trigger again leave one
 * trigger waiting), so a slow or hung receiver under a flapping condition holds two calls per key,
 * not a queue, and the last state the handler hears is the last state the evaluator decided.
 * Replaced calls are counted (`callStats().superseded`). A slow handler delays its own key only,
 * and cannot cause a second call for the same episode (the state changes when the evaluator
 * decides, not when the handler returns). A call still running after `handlerTimeoutMs` is
 * abandoned: its `signal` (in the context / resolved alert) is aborted, and the waiting call
 * starts. `stop()` waits at most `stopTimeoutMs` for running and waiting calls, then abandons
 * them. A handler that throws is logged and does not stop the others.
 */
import { z } from 'zod';
import { bool, ms, zodIssues } from '../config/config-schema.js';
import { InvalidConfigError, type ConfigIssue } from '../errors.js';
import { describeError } from '../util/object-utils.js';
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
  /**
   * How long one handler call may run before the evaluator stops waiting for it: its `signal` is
   * aborted, the abandonment logged, and the latest state for its key is delivered next. Default
   * 60 000 ms (the bundled handler's own worst case, 3 attempts × 5 s, is well under it).
   */
  handlerTimeoutMs?: number;
  /**
   * How long `stop()` (and `db.close()`) waits for running and waiting handler calls; then running
   * calls are abandoned (signal aborted) and waiting ones dropped. Default 5 000 ms.
   */
  stopTimeoutMs?: number;
}

/** Counts of handler calls since the evaluator was built (`callStats()`). */
export interface AlertCallStats {
  /** Calls running now: at most one per (handler, pool, condition). */
  inFlight: number;
  /** Calls waiting behind a running one: at most one per (handler, pool, condition). */
  pending: number;
  /** Calls started. */
  started: number;
  /** Waiting calls replaced by a later state before they started (intermediate flaps, not delivered). */
  superseded: number;
  /** Calls that threw (logged). */
  failed: number;
  /** Calls abandoned after `handlerTimeoutMs`. */
  timedOut: number;
  /** Calls still running when `stopTimeoutMs` passed in `stop()`: abandoned. */
  abandonedAtStop: number;
  /** Calls still waiting when `stopTimeoutMs` passed in `stop()`, or decided by an evaluation `stop()` cut short: never started. */
  droppedAtStop: number;
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

export const ALERT_EVALUATOR_DEFAULTS = { intervalMs: 5_000, probe: true, handlerTimeoutMs: 60_000, stopTimeoutMs: 5_000 } as const;

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

const EVALUATOR_KEYS = ['intervalMs', 'rules', 'probe', 'logger', 'autoStart', 'handlerTimeoutMs', 'stopTimeoutMs'];

/** One handler call for a key: what to run, and how to tell its waiters it is over (run, replaced or abandoned). */
interface HandlerCall {
  handlerIndex: number;
  poolId: string;
  /** `Class.method`, for log lines. */
  what: string;
  run: (signal: AbortSignal) => Promise<void>;
  /** Evaluation generation it was decided in (see `stop()`). */
  epoch: number;
  done: () => void;
}

/** The calls of one (handler, pool, condition): the one running and the one waiting. */
interface CallSlot {
  running: { call: HandlerCall; abandon: () => void } | undefined;
  pending: HandlerCall | undefined;
}

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
  readonly #handlerTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  /** Running and waiting calls by `${handlerIndex}\u0000${episodeKey}`; a key with neither has no slot. */
  readonly #slots = new Map<string, CallSlot>();
  readonly #stats = { started: 0, superseded: 0, failed: 0, timedOut: 0, abandonedAtStop: 0, droppedAtStop: 0 };
  /** Resolved when the last slot empties. */
  #idleWaiters: (() => void)[] = [];
  /** Bumped by `stop()`: calls decided by an evaluation that started before are dropped. */
  #epoch = 0;
  #timer: NodeJS.Timeout | undefined;
  #evaluating: Promise<Promise<void>[]> | undefined;

  constructor(source: AlertSource, handlers: AlertHandler | readonly AlertHandler[], options: AlertEvaluatorOptions = {}) {
    const resolved = resolveOptions(options);
    this.#source = source;
    this.#handlers = Array.isArray(handlers) ? [...handlers] : [handlers as AlertHandler];
    this.#rules = resolved.rules;
    this.#intervalMs = resolved.intervalMs;
    this.#probe = resolved.probe;
    this.#handlerTimeoutMs = resolved.handlerTimeoutMs;
    this.#stopTimeoutMs = resolved.stopTimeoutMs;
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

  /**
   * Stops evaluating. Resolves when the running and waiting handler calls have finished, or after
   * `stopTimeoutMs`, whichever is first: then running calls are abandoned (their `signal` aborted,
   * logged) and waiting ones dropped, so a receiver that never answers cannot hold it up.
   */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#stopTimeoutMs)));
    try {
      await Promise.race([this.#evaluating?.catch(() => []), bound]);
      await Promise.race([this.#idle(), bound]);
    } finally {
      clearTimeout(timer);
    }
    // Whatever an evaluation still running decides now is for a stopped evaluator: dropped.
    this.#epoch++;
    for (const slot of [...this.#slots.values()]) {
      if (slot.pending) {
        this.#stats.droppedAtStop++;
        slot.pending.done();
        slot.pending = undefined;
      }
      slot.running?.abandon();
    }
  }

  /** Counts of handler calls: running, waiting, started, replaced, failed and abandoned. */
  callStats(): AlertCallStats {
    let inFlight = 0;
    let pending = 0;
    for (const slot of this.#slots.values()) {
      if (slot.running) inFlight++;
      if (slot.pending) pending++;
    }
    return { inFlight, pending, ...this.#stats };
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Evaluates every pool now; resolves after the handler calls it caused ran (or were replaced by
   * a later state, or abandoned), and earlier ones for the same keys.
   */
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
      out.push({
        kind: e.kind,
        poolId: e.poolId,
        dedupKey: alertDedupKey(e.poolId, e.kind),
        since: e.since,
        firedAt: e.firedAt,
        value: e.value,
        peakValue: e.peakValue,
      });
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
    const epoch = this.#epoch;
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
        calls.push(...this.#step(poolId, kind, obs, cfg, now, metricsJson, epoch));
      }
    }
    // Episodes of pools that are gone (or rules switched off) end here.
    for (const [key, e] of this.#episodes) {
      if (seen.has(key)) continue;
      this.#episodes.delete(key);
      if (e.firing) calls.push(...this.#resolve(e, now, pools.includes(e.poolId) ? 'cleared' : 'pool-removed', epoch));
    }
    return calls;
  }

  /** One rule, one pool, one sample: start, fire, continue or end an episode. */
  #step(
    poolId: string,
    kind: AlertKind,
    obs: Observation,
    cfg: Required<AlertRuleOptions>,
    now: number,
    metrics: Record<string, unknown>,
    epoch: number,
  ): Promise<void>[] {
    const key = episodeKey(poolId, kind);
    const e = this.#episodes.get(key);
    if (!obs.holds) {
      if (!e) return [];
      this.#episodes.delete(key);
      return e.firing ? this.#resolve(e, now, 'cleared', epoch) : [];
    }
    const episode: Episode = e ?? {
      poolId,
      kind,
      sinceMono: now,
      since: new Date().toISOString(),
      firing: false,
      firedAt: '',
      value: obs.value,
      peakValue: obs.value,
    };
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
    return this.#handlers.map((h, i) =>
      this.#enqueue(i, poolId, kind, `${h.constructor.name}.${method}`, epoch, (signal) => call(h, withSignal(fired, signal))),
    );
  }

  #resolve(e: Episode, now: number, reason: ResolvedAlert['reason'], epoch: number): Promise<void>[] {
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
    return this.#handlers.map((h, i) =>
      this.#enqueue(i, poolId, kind, `${h.constructor.name}.handleResolved`, epoch, (signal) => h.handleResolved(signalled({ ...resolved }, signal))),
    );
  }

  /**
   * Runs a call for a (handler, pool, condition) now when none is running for it; otherwise it
   * waits, replacing the call already waiting (the latest state wins). Resolves when the call has
   * run, was replaced, or was abandoned.
   */
  #enqueue(handlerIndex: number, poolId: string, kind: AlertKind, what: string, epoch: number, run: (signal: AbortSignal) => Promise<void>): Promise<void> {
    let done!: () => void;
    const settled = new Promise<void>((resolve) => (done = resolve));
    const call: HandlerCall = { handlerIndex, poolId, what, run, epoch, done };
    if (epoch !== this.#epoch) {
      // Decided by an evaluation that stop() cut short.
      this.#stats.droppedAtStop++;
      done();
      return settled;
    }
    const key = `${handlerIndex}\u0000${episodeKey(poolId, kind)}`;
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { running: undefined, pending: undefined };
      this.#slots.set(key, slot);
    }
    if (!slot.running) {
      this.#start(key, slot, call);
    } else {
      if (slot.pending) {
        this.#stats.superseded++;
        slot.pending.done();
      }
      slot.pending = call;
    }
    return settled;
  }

  /** Runs a call; when it settles, times out or is abandoned, the waiting call for its key (if any) starts. */
  #start(key: string, slot: CallSlot, call: HandlerCall): void {
    const controller = new AbortController();
    this.#stats.started++;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (outcome: 'settled' | 'timeout' | 'stop') => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (outcome !== 'settled') {
        const why = outcome === 'timeout' ? `${this.#handlerTimeoutMs} ms (handlerTimeoutMs)` : `${this.#stopTimeoutMs} ms of stop()`;
        if (outcome === 'timeout') this.#stats.timedOut++;
        else this.#stats.abandonedAtStop++;
        controller.abort(new Error(`the alert evaluator stopped waiting for it after ${why}`));
        this.#log(`alert handler ${call.what} for pool "${call.poolId}" did not finish within ${why}; abandoned`);
      }
      slot.running = undefined;
      call.done();
      const next = slot.pending;
      slot.pending = undefined;
      if (next && outcome !== 'stop') {
        this.#start(key, slot, next);
        return;
      }
      if (next) {
        this.#stats.droppedAtStop++;
        next.done();
      }
      if (this.#slots.get(key) === slot) this.#slots.delete(key);
      if (this.#slots.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    };
    slot.running = { call, abandon: () => finish('stop') };
    timer = setTimeout(() => finish('timeout'), this.#handlerTimeoutMs);
    // A call still running must not keep the process alive by this timer alone.
    timer.unref();
    void (async () => {
      try {
        await call.run(controller.signal);
      } catch (err) {
        if (!finished) {
          this.#stats.failed++;
          this.#log(`alert handler ${call.what} for pool "${call.poolId}" failed: ${this.#redact(call.handlerIndex, describeError(err))}`);
        }
      }
      finish('settled');
    })();
  }

  /** Resolves when no handler call is running or waiting. */
  #idle(): Promise<void> {
    if (this.#slots.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
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
  PoolDown: {
    method: 'handlePoolDown',
    call: (h, { context, error }) => h.handlePoolDown(context.poolId, new Error(error ?? 'the pool cannot reach its server'), context),
  },
  LeakSuspected: {
    method: 'handleLeakSuspected',
    call: (h, { context, leaked }) => h.handleLeakSuspected(context.poolId, leaked ?? { id: -1, activeDurationMs: 0 }, context),
  },
};

/** `value` with a `signal` property that JSON, `util.inspect` and deep comparisons do not see. */
function signalled<T extends object>(value: T, signal: AbortSignal): T & { signal: AbortSignal } {
  return Object.defineProperty(value, 'signal', { value: signal, enumerable: false, configurable: true, writable: false }) as T & { signal: AbortSignal };
}

/** A copy of a firing for one handler call, its context carrying that call's signal. */
function withSignal(fired: Fired, signal: AbortSignal): Fired {
  return { ...fired, context: signalled({ ...fired.context }, signal) };
}

function snapshot(m: AlertMetrics): Record<string, unknown> {
  try {
    return typeof m.toJSON === 'function' ? m.toJSON() : { ...m };
  } catch {
    return {};
  }
}

function isPoolActions(source: unknown): source is PoolActions {
  const s = source as Partial<Record<keyof PoolActions, unknown>>;
  return (
    typeof s.getPoolConfig === 'function' &&
    typeof s.updatePoolConfig === 'function' &&
    typeof s.optimizePoolSize === 'function' &&
    typeof s.cleanupPool === 'function'
  );
}

function resolveOptions(options: unknown): {
  intervalMs: number;
  probe: boolean;
  handlerTimeoutMs: number;
  stopTimeoutMs: number;
  rules: Record<AlertRuleName, Required<AlertRuleOptions>>;
} {
  const issues: ConfigIssue[] = [];
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidConfigError([{ path: '(options)', value: options, rule: 'must be an object' }], 'AlertEvaluator');
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o))
    if (!EVALUATOR_KEYS.includes(key)) issues.push({ path: key, value: undefined, rule: `is not a known option (known: ${EVALUATOR_KEYS.join(', ')})` });
  let intervalMs: number = ALERT_EVALUATOR_DEFAULTS.intervalMs;
  if (o.intervalMs !== undefined) {
    if (typeof o.intervalMs !== 'number' || !Number.isInteger(o.intervalMs) || o.intervalMs < 10 || o.intervalMs > 3_600_000) {
      issues.push({ path: 'intervalMs', value: o.intervalMs, rule: 'must be a whole number from 10 to 3600000 (milliseconds)' });
    } else intervalMs = o.intervalMs;
  }
  const wholeMs = (key: 'handlerTimeoutMs' | 'stopTimeoutMs', min: number, max: number, fallback: number): number => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    issues.push({ path: key, value: v, rule: `must be a whole number from ${min} to ${max} (milliseconds)` });
    return fallback;
  };
  const handlerTimeoutMs = wholeMs('handlerTimeoutMs', 100, 3_600_000, ALERT_EVALUATOR_DEFAULTS.handlerTimeoutMs);
  const stopTimeoutMs = wholeMs('stopTimeoutMs', 0, 600_000, ALERT_EVALUATOR_DEFAULTS.stopTimeoutMs);
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
          issues.push(
            ...zodIssues(r.error.issues, cfg, { prefix: `rules.${name}`, unknownRule: 'is not a known setting (enabled, threshold, forMs)', required: false }),
          );
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
  return { intervalMs, probe: o.probe === undefined ? ALERT_EVALUATOR_DEFAULTS.probe : (o.probe as boolean), handlerTimeoutMs, stopTimeoutMs, rules };
}
