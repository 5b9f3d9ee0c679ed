/**
 * Zod pieces shared by the pool config (`config.ts`), alert channel (`alerts/channel-config.ts`)
 * and alert evaluator validators: the common schemas with their messages, and the mapping of zod
 * issues to one {@link ConfigIssue} per problem. The helpers run when a validator builds its
 * schemas (on its first use); zod is loaded then, not when this module is (see util/load-zod).
 */
import type { z } from 'zod';
import type { ConfigIssue } from '../errors.js';
import { closest, safeKey, valueAt } from '../util/object-utils.js';
import { zod } from '../util/load-zod.js';

/** A whole number from `min` to `max`; `unit` ends every message. */
export const int = (min: number, max: number, unit = '') =>
  zod()
    .number({ error: `must be a number${unit}` })
    .int({ error: `must be a whole number${unit}` })
    .min(min, { error: `must be from ${min} to ${max}${unit}` })
    .max(max, { error: `must be from ${min} to ${max}${unit}` });
/** A whole number of milliseconds from `min` to `max`. */
export const ms = (min: number, max: number) => int(min, max, ' (milliseconds)');
export const str = () => zod().string({ error: 'must be a string' });
export const nonEmptyStr = () => str().min(1, { error: 'must not be empty' });
export const bool = () => zod().boolean({ error: 'must be true or false' });

/** How {@link zodIssues} names and shows the problems. */
export interface ZodIssueOptions {
  /** Dotted path of the validated value; '' for the root (then shown as "(config)"). */
  prefix: string;
  /** Keys the validated object takes, for "did you mean" on an unknown top-level key. */
  known?: readonly string[];
  /** The value shown for an invalid setting at `path` (relative to the validated value). Default: as is. */
  redact?: (path: readonly string[], value: unknown) => unknown;
  /** The value shown for an unknown key. Default: `redact`. */
  redactUnknown?: (value: unknown) => unknown;
  /** The rule of an unknown key. Default: "is not a known setting", with a guess from `known`. */
  unknownRule?: string;
  /** Whether a missing required value reads "is required" rather than the schema's message. Default true. */
  required?: boolean;
}

/** One issue per zod issue, and one per unknown key. */
export function zodIssues(zIssues: readonly z.core.$ZodIssue[], input: unknown, o: ZodIssueOptions): ConfigIssue[] {
  const redact = o.redact ?? ((_path, value) => value);
  const out: ConfigIssue[] = [];
  for (const issue of zIssues) {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const at = [...path, key];
        const value = valueAt(input, at);
        const guess = path.length === 0 && o.known ? closest(key, o.known) : undefined;
        out.push({
          path: joinPath(o.prefix, at),
          value: o.redactUnknown ? o.redactUnknown(value) : redact(at, value),
          rule: o.unknownRule ?? `is not a known setting${guess ? ` (did you mean "${guess}"?)` : ''}`,
        });
      }
      continue;
    }
    const value = valueAt(input, path);
    out.push({
      path: joinPath(o.prefix, path),
      value: redact(path, value),
      rule: value === undefined && issue.code === 'invalid_type' && o.required !== false ? 'is required' : issue.message,
    });
  }
  return out;
}

function joinPath(prefix: string, path: readonly string[]): string {
  // Keys are user input: one that looks like a URL is not shown (see safeKey).
  const p = path.map(safeKey).join('.');
  if (!prefix) return p || '(config)';
  return p ? `${prefix}.${p}` : prefix;
}
