/**
 * Everything a pool measures about itself, in memory bounded whatever the traffic: rolling-window
 * histograms of acquire waits and query times, lifetime totals, per-statement aggregates, the
 * slow-query ring and SQLSTATE counts. Recording is allocation-free on the common path.
 */
import { SlowQueryLog } from './slow-query-log.js';
import { StatementStatsTable } from './statement-stats.js';
import { WindowedCounter } from './windowed-counter.js';
import { WindowedHistogram } from './windowed-histogram.js';

/** Distinct error codes counted; codes beyond it are counted as 'other'. */
const MAX_ERROR_CODES = 64;

/** Lifetime counts of a pool: kept across restarts and changes of the window. */
function newTotals() {
  return {
    acquires: 0,
    acquireTimeouts: 0,
    queries: 0,
    errors: 0,
    leaksReported: 0,
    leaksReclaimed: 0,
    connectionsCreated: 0,
    connectionsClosed: 0,
    circuitOpens: 0,
    failovers: 0,
    failbacks: 0,
    recoveries: 0,
  };
}

export class PoolStats {
  readonly acquire: WindowedHistogram;
  readonly queries: WindowedHistogram;
  /** How long loans are held (acquire to release): with the acquire rate, Little's law. */
  readonly holds: WindowedHistogram;
  readonly acquireTimeouts: WindowedCounter;
  readonly slowQueries: WindowedCounter;
  readonly statements: StatementStatsTable;
  readonly slowLog: SlowQueryLog;
  readonly errorsByCode: Map<string, number>;
  readonly totals: ReturnType<typeof newTotals>;

  /** With `carried`, the lifetime part of that pool's measurements goes on (see {@link withWindow}). */
  constructor(
    readonly windowMs: number,
    carried?: PoolStats,
  ) {
    this.acquire = new WindowedHistogram(windowMs);
    this.queries = new WindowedHistogram(windowMs);
    this.holds = new WindowedHistogram(windowMs);
    this.acquireTimeouts = new WindowedCounter(windowMs);
    this.slowQueries = new WindowedCounter(windowMs);
    this.statements = carried?.statements ?? new StatementStatsTable();
    this.slowLog = carried?.slowLog ?? new SlowQueryLog();
    this.errorsByCode = carried?.errorsByCode ?? new Map();
    this.totals = carried?.totals ?? newTotals();
  }

  /**
   * These measurements over a window of another length: the windows start empty (their slots are
   * sized by the window); totals, statements, the slow-query log and error counts go on.
   */
  withWindow(windowMs: number): PoolStats {
    return windowMs === this.windowMs ? this : new PoolStats(windowMs, this);
  }

  countError(code: string): void {
    const key = this.errorsByCode.has(code) || this.errorsByCode.size < MAX_ERROR_CODES ? code : 'other';
    this.errorsByCode.set(key, (this.errorsByCode.get(key) ?? 0) + 1);
  }

  /** Clears the transient part (windows, slow-query count, error counts); totals, statements and the slow-query log stay. */
  clearTransient(): void {
    this.acquire.clear();
    this.queries.clear();
    this.holds.clear();
    this.acquireTimeouts.clear();
    this.slowQueries.clear();
    this.errorsByCode.clear();
  }
}
