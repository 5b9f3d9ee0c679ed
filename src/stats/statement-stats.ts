/**
 * A client-side pg_stat_statements: per statement fingerprint, calls, total and P99 time, errors.
 * Bounded in count: when full, the statement with the least total time makes room for a new one
 * (the newcomer is kept; heavy statements are never pushed out by a stream of one-off ones).
 * Each statement's latency is a sparse log-bucket histogram, a few dozen entries in practice.
 * Bounded in size too: a statement's text is kept to at most 16 KiB (`capSqlText`; sanitized texts
 * from `describeQuery` already are), so the table holds a few MB at most, whatever the statements.
 */
import { capSqlText } from '../sql/describe.js';
import { bucketOf, percentileOf } from './log-histogram.js';

/** Aggregates of one statement, as reported. Times in milliseconds. */
export interface StatementStats {
  fingerprint: string;
  /** Sanitized text of the statement (literals replaced). */
  text: string;
  calls: number;
  errors: number;
  totalMs: number;
  meanMs: number;
  p99Ms: number;
  maxMs: number;
}

class Entry {
  calls = 0;
  errors = 0;
  totalMs = 0;
  minMs = Infinity;
  maxMs = 0;
  readonly buckets = new Map<number, number>();
  constructor(readonly text: string) {}
}

export class StatementStatsTable {
  readonly #entries = new Map<string, Entry>();
  /** Statements dropped to stay within the bound, since the pool was created. */
  evicted = 0;

  constructor(readonly maxStatements = 200) {}

  record(fingerprint: string, sanitizedText: string, ms: number, error: boolean): void {
    let e = this.#entries.get(fingerprint);
    if (e === undefined) {
      if (this.#entries.size >= this.maxStatements) this.#evictLightest();
      e = new Entry(capSqlText(sanitizedText));
      this.#entries.set(fingerprint, e);
    }
    e.calls++;
    if (error) e.errors++;
    e.totalMs += ms;
    if (ms < e.minMs) e.minMs = ms;
    if (ms > e.maxMs) e.maxMs = ms;
    const b = bucketOf(ms);
    e.buckets.set(b, (e.buckets.get(b) ?? 0) + 1);
  }

  #evictLightest(): void {
    let lightest: string | undefined;
    let least = Infinity;
    for (const [fp, e] of this.#entries) {
      if (e.totalMs < least) {
        least = e.totalMs;
        lightest = fp;
      }
    }
    if (lightest !== undefined) {
      this.#entries.delete(lightest);
      this.evicted++;
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The `limit` statements with the most total time, heaviest first. */
  top(limit = 20): StatementStats[] {
    return [...this.#entries]
      .sort((a, b) => b[1].totalMs - a[1].totalMs)
      .slice(0, limit)
      .map(([fingerprint, e]) => ({
        fingerprint,
        text: e.text,
        calls: e.calls,
        errors: e.errors,
        totalMs: e.totalMs,
        meanMs: e.totalMs / e.calls,
        p99Ms: percentileOf(
          0.99,
          e.calls,
          e.minMs,
          e.maxMs,
          [...e.buckets].sort((x, y) => x[0] - y[0]),
        ),
        maxMs: e.maxMs,
      }));
  }
}
