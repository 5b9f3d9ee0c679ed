/**
 * The most recent slow queries of a pool, in a fixed-size ring (oldest overwritten first). Each
 * entry's text is kept to at most 16 KiB (`capSqlText`), so the ring's size is bounded too.
 */
import type { SlowQueryMessage } from '../channels.js';
import { capSqlText } from '../sql/describe.js';

/** One slow query, as `getSlowQueries` returns it. */
export interface SlowQuery {
  /** Sanitized text: every literal replaced by `?`. */
  text: string;
  /** Groups the same statement with different literals. */
  fingerprint: string;
  durationMs: number;
  /** When it finished, ISO 8601. */
  at: string;
  connectionId: number;
  /** The error message and SQLSTATE when it failed. */
  error?: string;
  sqlState?: string;
  /** Trace id active when it ran, when a tracer is registered. */
  traceId?: string;
}

/**
 * What a slow-query entry says of its failure: the SQLSTATE and the error's class, never the
 * server's message, which can quote the offending literal or bound value
 * (`invalid input syntax for type integer: "…"`). The library's own errors carry no values.
 */
export function failureSummary(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; severity?: unknown; message?: unknown } | undefined;
  if (e && typeof e.code === 'string' && typeof e.severity === 'string') return `${e.severity} ${e.code}`;
  if (e && typeof e.code === 'string' && typeof e.message === 'string' && /^[A-Z_]+$/.test(e.code) && String(e.name).endsWith('Error')) {
    // DbPoolError (QUERY_TIMEOUT, CONNECTION_REVOKED, ...): its message names the pool and limits only.
    return e.message;
  }
  return typeof e?.code === 'string' ? `${String(e.name ?? 'Error')} ${e.code}` : String(e?.name ?? 'Error');
}

export class SlowQueryLog {
  readonly #ring: (SlowQueryMessage | undefined)[];
  #next = 0;
  /** Slow queries seen since the pool started (not bounded by the ring). */
  total = 0;

  constructor(readonly capacity = 100) {
    this.#ring = new Array<SlowQueryMessage | undefined>(capacity);
  }

  add(entry: SlowQueryMessage): void {
    const text = capSqlText(entry.text);
    this.#ring[this.#next] = text === entry.text ? entry : { ...entry, text };
    this.#next = (this.#next + 1) % this.capacity;
    this.total++;
  }

  /** The `limit` slowest of the kept entries, slowest first. */
  slowest(limit = 10): SlowQuery[] {
    return this.#ring
      .filter((e): e is SlowQueryMessage => e !== undefined)
      .sort((a, b) => b.durationMs - a.durationMs)
      .slice(0, Math.max(0, limit))
      .map((e) => {
        const q: SlowQuery = {
          text: e.text,
          fingerprint: e.fingerprint,
          durationMs: e.durationMs,
          at: new Date(e.at).toISOString(),
          connectionId: e.connectionId,
        };
        if (e.error !== undefined) q.error = e.error;
        if (e.sqlState !== undefined) q.sqlState = e.sqlState;
        if (e.traceId !== undefined) q.traceId = e.traceId;
        return q;
      });
  }
}
