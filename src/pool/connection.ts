/**
 * One physical PostgreSQL connection: a `pg.Client` plus what the pool needs to know about it.
 * A connection is marked broken the moment its client reports an error or closes, so it can never
 * be lent again (pg clients killed while idle or mid-query otherwise look healthy).
 */
import type pg from 'pg';
import { describeQuery, type QueryDescription } from '../sql/describe.js';

let nextConnectionId = 1;

/** Why a connection must not be reused. */
export type BrokenReason = 'error' | 'ended' | 'timeout' | 'revoked';

/**
 * `Loan` is the type of the handle that holds it: the pool's loan (see `LentConnection`), named as a
 * parameter so a connection needs to know nothing of loans.
 */
export class Connection<Loan extends object = object> {
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
  loan: Loan | undefined = undefined;
  broken: BrokenReason | undefined;
  /** Why the pool took the connection from its holder (set with broken = 'revoked'). */
  revokedReason: string | undefined;
  /** SQLSTATE of the statement that failed the open transaction, for TRANSACTION_ROLLED_BACK. */
  txFailure: string | undefined;
  /**
   * Raw text of the last statement sent, until it finished and was described (then only its
   * description, {@link lastQuery}, is kept: a huge statement is not held after it ran).
   */
  lastQueryText: string | undefined;
  /** The session's standard_conforming_strings when the last statement was sent. */
  #lastQueryStandardStrings = true;
  #lastQuery: QueryDescription | undefined;
  /** What the server reported of the session's settings. */
  readonly #session: SessionSettings;
  /** The statement timeout's timer (see armTimeout), its duration, and what it calls. */
  #timer: NodeJS.Timeout | undefined = undefined;
  #timerMs = 0;
  #onTimeout: (() => void) | undefined = undefined;

  constructor(
    readonly client: pg.Client,
    maxLifetimeMs: number,
    onBroken: (conn: Connection<Loan>, err: Error | undefined) => void,
  ) {
    // Up to 10 % earlier than the limit, so connections made together don't all retire together.
    this.expiresAt = maxLifetimeMs > 0 ? this.createdAt + maxLifetimeMs * (1 - Math.random() * 0.1) : Infinity;
    this.#session = watchSessionSettings(client);
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

  /**
   * The session's `standard_conforming_strings` as the server last reported it (ParameterStatus,
   * sent at startup and on every change, `SET` included): when off, backslash escapes quotes in
   * plain '…' strings, and statements must be sanitized that way.
   */
  get standardConformingStrings(): boolean {
    return this.#session.standardConformingStrings;
  }

  /** Called as a statement is sent on this connection. */
  noteQuery(text: string): void {
    this.lastQueryText = text;
    this.#lastQueryStandardStrings = this.#session.standardConformingStrings;
    this.#lastQuery = undefined;
  }

  /**
   * The last statement sent, described (sanitized text, fingerprint, ...) under the session's
   * settings when it was sent. Computed once per statement, however often it is asked for.
   */
  get lastQuery(): QueryDescription | undefined {
    if (this.#lastQuery === undefined && this.lastQueryText !== undefined) {
      this.#lastQuery = describeQuery(this.lastQueryText, { standardConformingStrings: this.#lastQueryStandardStrings });
    }
    return this.#lastQuery;
  }

  /**
   * The description of `text`, a statement sent on this connection that has just finished. For
   * the last one sent that is {@link lastQuery} (described once), after which its raw text is let
   * go; an earlier one still finishing is described under the current settings.
   */
  describeFinished(text: string): QueryDescription {
    if (text === this.lastQueryText) {
      const d = this.lastQuery as QueryDescription;
      this.lastQueryText = undefined;
      return d;
    }
    return describeQuery(text, { standardConformingStrings: this.#session.standardConformingStrings });
  }

  /**
   * Calls `onTimeout` unless {@link disarmTimeout} comes within `timeoutMs` (a statement's timeout).
   * One timer per connection, re-armed with refresh(): a timer made and cleared per statement (a
   * Timeout object, its async resource, two list updates) was a visible part of a statement's
   * CPU. False when an earlier statement on this connection is still timed (sent without awaiting
   * the previous one): the caller times this one with a timer of its own.
   */
  armTimeout(timeoutMs: number, onTimeout: () => void): boolean {
    if (this.#onTimeout !== undefined) return false;
    this.#onTimeout = onTimeout;
    if (this.#timer !== undefined && this.#timerMs === timeoutMs) this.#timer.refresh();
    else {
      clearTimeout(this.#timer);
      this.#timerMs = timeoutMs;
      // Unref'd: a statement in flight keeps the process alive by its socket; once it is
      // answered the timer stays set, and must not.
      this.#timer = setTimeout(() => this.#timedOut(), timeoutMs).unref();
    }
    return true;
  }

  /**
   * The statement armed with `onTimeout` finished: the timer, still set, does nothing when it fires.
   * Only its own arming: a statement answered after its timeout fired must not disarm the next
   * statement's (sent on the same connection after the first one timed out).
   */
  disarmTimeout(onTimeout: () => void): void {
    if (this.#onTimeout === onTimeout) this.#onTimeout = undefined;
  }

  /** The connection is closed: the timer goes, unless a statement is still timed by it. */
  stopTimer(): void {
    if (this.#onTimeout !== undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #timedOut(): void {
    const onTimeout = this.#onTimeout;
    this.#onTimeout = undefined;
    onTimeout?.();
  }

  markBroken(reason: BrokenReason): void {
    if (this.broken === undefined) this.broken = reason;
  }

  /** PostgreSQL backend pid, for `pg_stat_activity` and cancel requests. */
  get processId(): number | undefined {
    return (this.client as unknown as { processID: number | null }).processID ?? undefined;
  }

  /**
   * Statements sent whose caller has not had the answer yet (a missing `await` before release).
   * While any is in flight the transaction status from the last ReadyForQuery is stale: a queued
   * `BEGIN` still reads as idle. pg 8 keeps them in `_activeQuery` and its queues (the public
   * `activeQuery` / `queryQueue` getters print deprecation warnings). A statement that failed is no
   * longer active although its ReadyForQuery is still on the way: its caller already has the error.
   * Without those internals (a later pg), `readyForQuery === false` is the conservative reading.
   */
  pendingStatements(): number {
    const c = this.client as unknown as { readyForQuery?: boolean; _queryQueue?: unknown[]; _sentQueryQueue?: unknown[]; _activeQuery?: unknown };
    if (!('_activeQuery' in c) || !Array.isArray(c._queryQueue)) return c.readyForQuery === false ? 1 : 0;
    const sent = Array.isArray(c._sentQueryQueue) ? c._sentQueryQueue.length : 0;
    return c._queryQueue.length + sent + (c._activeQuery != null ? 1 : 0);
  }

  /**
   * Resolves true once the client has answered everything sent to it (pg's 'drain'), false when
   * it closes or errors first, or after `timeoutMs`.
   */
  whenAnswered(timeoutMs: number): Promise<boolean> {
    if (this.pendingStatements() === 0) return Promise.resolve(this.broken === undefined);
    return new Promise<boolean>((resolve) => {
      const c = this.client;
      const done = (ok: boolean) => {
        clearTimeout(timer);
        c.removeListener('drain', onDrain);
        c.removeListener('end', onGone);
        c.removeListener('error', onGone);
        resolve(ok && this.broken === undefined);
      };
      const onDrain = () => done(true);
      const onGone = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      c.on('drain', onDrain);
      c.on('end', onGone);
      c.on('error', onGone);
    });
  }

  /** Whether it may go back to the pool: not broken, not expired, not inside a transaction. */
  reusable(now: number): { ok: true } | { ok: false; reason: string } {
    if (this.broken) return { ok: false, reason: 'broken' };
    // Ended by its holder (client.end(), or its socket ended) before pg reported it: never lend it.
    const c = this.client as unknown as { _ending?: boolean; _queryable?: boolean };
    if (c._ending === true || c._queryable === false) return { ok: false, reason: 'broken' };
    if (now >= this.expiresAt) return { ok: false, reason: 'expired' };
    if (this.pendingStatements() > 0) return { ok: false, reason: 'statements-pending' };
    const tx = this.client.getTransactionStatus?.();
    // 'I' idle; 'T' in a transaction, 'E' in a failed one: another caller must never inherit either.
    if (tx !== undefined && tx !== null && tx !== 'I') return { ok: false, reason: 'in-transaction' };
    return REUSABLE;
  }
}

/** reusable()'s usual answer, one object for every call (it runs on every borrow and release). */
const REUSABLE = { ok: true } as const;

/** What the server reported of a session's settings (ParameterStatus messages). */
export interface SessionSettings {
  /** `standard_conforming_strings`; PostgreSQL's default (on) until the server says otherwise. */
  standardConformingStrings: boolean;
}

const sessionSettings = new WeakMap<object, SessionSettings>();

/**
 * Follows the server's ParameterStatus reports on `client` (idempotent; the {@link Connection}
 * constructor calls it). Called before `client.connect()` it also sees the values of the startup
 * (a role, database or server with standard_conforming_strings = off); called after, it sees
 * every later change (SET, RESET, a rolled-back SET).
 */
export function watchSessionSettings(client: pg.Client): SessionSettings {
  let settings = sessionSettings.get(client);
  if (settings !== undefined) return settings;
  const s: SessionSettings = { standardConformingStrings: true };
  settings = s;
  sessionSettings.set(client, s);
  const wire = (client as unknown as { connection?: { on?: (event: string, fn: (m: unknown) => void) => unknown } }).connection;
  wire?.on?.('parameterStatus', (m: unknown) => {
    const msg = m as { parameterName?: unknown; parameterValue?: unknown };
    if (msg.parameterName === 'standard_conforming_strings') s.standardConformingStrings = msg.parameterValue !== 'off';
  });
  return s;
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

/** pg's Client#ref / #unref: whether the connection's socket keeps the process alive. */
export function setRef(client: pg.Client, ref: boolean): void {
  const c = client as unknown as { ref?: () => void; unref?: () => void };
  try {
    if (ref) c.ref?.();
    else c.unref?.();
  } catch {
    // no socket (closing): nothing to keep alive
  }
}
