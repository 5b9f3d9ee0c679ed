/** Small helpers shared by the config, alert-channel and admin validators, and the reports. */

/** The placeholder that replaces secrets wherever config is shown. */
export const REDACTED = '[REDACTED]';

/**
 * The value at `path` inside `root`, or undefined where the path leaves the object. Own properties
 * only: a key such as `toString` or `constructor` is data, never an `Object.prototype` member.
 */
export function valueAt(root: unknown, path: readonly string[]): unknown {
  let cur = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** Sets `key` as an own data property, even `__proto__` (plain assignment would set the prototype). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** What a value is, in words, for a place that may not show the value itself. */
export function describeShape(value: unknown): unknown {
  if (value === null || value === undefined) return value;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  return value;
}

/**
 * A key as an issue path may show it. Keys come from user input too: one that holds `@`, `/`, `:`
 * or other URL characters may be a connection string written where a key belongs.
 */
export function safeKey(key: string): string {
  return /^[A-Za-z0-9_. -]{1,64}$/.test(key) ? key : REDACTED;
}

/**
 * The value of an unknown key, as an issue may show it: often a misspelled secret field
 * (`passwd`, `Password`), so strings and numbers are not shown, and objects only by their shape.
 */
export function redactUnknown(value: unknown): unknown {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return REDACTED;
  return describeShape(value);
}

/** Which fields of a config an invalid-config issue may show, for {@link issueValue}. */
export interface ShownFields {
  /** Fields known to be harmless (sizes, timeouts, host names): their values are shown as they are. */
  plain: ReadonlySet<string>;
  /** Fields holding a URL: shown through `redactUrl` (password and secret parameters replaced). */
  urls?: ReadonlySet<string>;
  redactUrl?: (url: string) => string;
}

const SHOWN_DEPTH = 6;

/**
 * A value as an invalid-config issue may show it — an allow-list: a string or number is shown only
 * under a field of `fields.plain` (or through `redactUrl` under `fields.urls`); under any other key
 * it may be a password (a misspelled key, a URL where an object belongs), so it is `[REDACTED]`.
 * Objects and arrays keep their shape with the same rule inside; array items count as their array's
 * field. `path` is where the value sits; its last non-index segment is the field.
 */
export function issueValue(path: readonly string[], value: unknown, fields: ShownFields): unknown {
  let field = '';
  for (let i = path.length - 1; i >= 0; i--) {
    if (!/^\d+$/.test(path[i]!)) {
      field = path[i]!;
      break;
    }
  }
  return shown(field, value, fields, 0);
}

function shown(field: string, value: unknown, fields: ShownFields, depth: number): unknown {
  if (value === undefined || value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') {
    if (typeof value === 'string' && fields.urls?.has(field) && fields.redactUrl) return fields.redactUrl(value);
    if (!fields.plain.has(field)) return REDACTED;
    // Even a harmless field is not shown when it holds what looks like a URL with credentials.
    return typeof value === 'string' && /@|:\/\//.test(value) ? REDACTED : value;
  }
  if (typeof value !== 'object' || depth >= SHOWN_DEPTH) return describeShape(value);
  if (Array.isArray(value)) return value.map((v) => shown(field, v, fields, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) setOwn(out, safeKey(k), shown(k, v, fields, depth + 1));
  return out;
}

/** A copy without the keys whose value is undefined (so spreading it keeps defaults). */
export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The candidate closest to `word` by edit distance, when close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** `decodeURIComponent`, or the text as it is when it holds a malformed `%` sequence. */
export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A number rounded to 3 decimals (for reports). */
export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** The message of a thrown value, for a log line. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}
