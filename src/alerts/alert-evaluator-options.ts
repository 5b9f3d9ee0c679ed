/**
 * The options of AlertEvaluator: what can be set, the defaults, and the validation that turns
 * what a caller passed into settings, or throws INVALID_CONFIG listing every problem at once.
 */
import { bool, ms, zodIssues } from '../config/config-schema.js';
import { lazy, zod } from '../util/load-zod.js';
import { InvalidConfigError, type ConfigIssue } from '../errors.js';
import { ALERT_RULE_DEFAULTS, RULE_KIND, type AlertRuleName, type AlertRuleOptions } from './alert-rules.js';

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

export const ALERT_EVALUATOR_DEFAULTS = { intervalMs: 5_000, probe: true, handlerTimeoutMs: 60_000, stopTimeoutMs: 5_000 } as const;

/** A rule's settings, built on the first validation of a rule (zod is not loaded before: util/load-zod). */
const ruleSchema = lazy(() =>
  zod().strictObject(
    {
      enabled: bool().optional(),
      threshold: zod()
        .number({ error: 'must be a number' })
        .min(0, { error: 'must be 0 or more' })
        .refine(Number.isFinite, { error: 'must be finite' })
        .optional(),
      forMs: ms(0, 86_400_000).optional(),
    },
    { error: 'must be an object { enabled?, threshold?, forMs? }' },
  ),
);

const EVALUATOR_KEYS = ['intervalMs', 'rules', 'probe', 'logger', 'autoStart', 'handlerTimeoutMs', 'stopTimeoutMs'];

/** Validated options with the defaults filled in; throws InvalidConfigError listing every problem. */
export function resolveOptions(options: unknown): {
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
        const r = ruleSchema().safeParse(cfg);
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
