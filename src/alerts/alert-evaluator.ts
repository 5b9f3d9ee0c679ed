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
import { describeError } from '../util/object-utils.js';
import { alertDedupKey, type AlertContext, type AlertHandler, type LeakedConnectionInfo, type PoolActions, type ResolvedAlert } from './alert-handler.js';
import { resolveOptions, type AlertEvaluatorOptions } from './alert-evaluator-options.js';
import { observe, RULE_KIND, type AlertMetrics, type AlertRuleName, type AlertRuleOptions, type Observation } from './alert-rules.js';
import type { AlertKind } from './types.js';

// The rules and the options live in their own modules; the package entry takes them from here.
export { ALERT_RULE_DEFAULTS } from './alert-rules.js';
export type { AlertMetrics, AlertRuleName, AlertRuleOptions } from './alert-rules.js';
export { ALERT_EVALUATOR_DEFAULTS } from './alert-evaluator-options.js';
export type { AlertEvaluatorOptions } from './alert-evaluator-options.js';

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
