/**
 * One physical PostgreSQL connection: a `pg.Client` plus what the pool needs to know about it.
 * A connection is marked broken the moment its client reports an error or closes, so it can never
 * be lent again (pg clients killed while idle or mid-query otherwise look healthy).
 */
import type pg from 'pg';
import type { PooledConnection } from './pooled-connection.js';

let nextConnectionId = 1;

/** Why a connection must not be reused. */
export type BrokenReason = 'error' | 'ended' | 'timeout' | 'revoked';

export class Connection {
  readonly id = nextConnectionId++;
  readonly createdAt = Date.now();
  /** When it retires (max lifetime minus jitter); Infinity when unlimited. */
  readonly expiresAt: number;
  useCount = 0;
  /** When the last loan ended. */
  returnedAt = this.createdAt;
  /** Id of the loan that holds it now, or that last released it. */
  loanId = 0;
  /** The loan that holds it now (set and cleared by the pool). */
  loan: PooledConnection | undefined = undefined;
  broken: BrokenReason | undefined;
  /** Text of the last statement sent (raw; sanitized when shown). */
  lastQueryText: string | undefined;

  constructor(
    readonly client: pg.Client,
    maxLifetimeMs: number,
    onBroken: (conn: Connection, err: Error | undefined) => void,
  ) {
    // Up to 10 % earlier than the limit, so connections made together don't all retire together.
    this.expiresAt = maxLifetimeMs > 0 ? this.createdAt + maxLifetimeMs * (1 - Math.random() * 0.1) : Infinity;
    client.on('error', (err: Error) => {
      const first = this.broken === undefined;
      this.markBroken('error');
      if (first) onBroken(this, err);
    });
    client.on('end', () => {
      const first = this.broken === undefined;
      this.markBroken('ended');
      if (first) onBroken(this, undefined);
    });
  }

  markBroken(reason: BrokenReason): void {
    if (this.broken === undefined) this.broken = reason;
  }

  /** PostgreSQL backend pid, for `pg_stat_activity` and cancel requests. */
  get processId(): number | undefined {
    return (this.client as unknown as { processID: number | null }).processID ?? undefined;
  }

  /** Whether it may go back to the pool: not broken, not expired, not inside a transaction. */
  reusable(now: number): { ok: true } | { ok: false; reason: string } {
    if (this.broken) return { ok: false, reason: 'broken' };
    if (now >= this.expiresAt) return { ok: false, reason: 'expired' };
    const tx = this.client.getTransactionStatus?.();
    // 'I' idle; 'T' in a transaction, 'E' in a failed one: another caller must never inherit either.
    if (tx !== undefined && tx !== null && tx !== 'I') return { ok: false, reason: 'in-transaction' };
    return { ok: true };
  }
}

/**
 * Whether a query error means the connection itself is gone or unusable, rather than the statement
 * having failed. Server errors with a SQLSTATE outside classes 08 (connection exception), 57P
 * (operator intervention: terminated, shutdown) and XX (internal) leave the connection usable.
 */
export function isConnectionLevelError(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  const e = err as Error & { code?: unknown; severity?: unknown };
  if (typeof e.severity !== 'string' || typeof e.code !== 'string') return true;
  // Class 08 at ERROR severity (08P01 for a wrong parameter count) ends the statement, not the session.
  if (e.code.startsWith('08')) return e.severity !== 'ERROR';
  return e.code.startsWith('57P') || e.code.startsWith('XX');
}

/** The SQLSTATE of a server error (five digits or capitals), or undefined for any other error. */
export function sqlStateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
