/**
 * Reading the server's connection budget (max_connections, reserved slots, backends) on the pool's
 * own connections: the settings on a new connection before anyone is lent it, the backends on an
 * idle one when stale. A read never waits for a connection and never opens one.
 */
import type pg from 'pg';
import { runDriverCall } from '../trace-context.js';
import { isConnectionLevelError } from './connection.js';
import type { ConnectionFactory } from './connection-factory.js';
import { evictNow, idleResources } from './generic-pool-internals.js';
import type { LentConnection } from './pooled-connection.js';
import { BUDGET_BACKENDS_SQL, BUDGET_SETTINGS_SQL, type BudgetSettingsRow, type ServerBudgetTracker } from './server-budget.js';

/** The server did not answer the pool's budget statement in time (the connection is not used again). */
class BudgetTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`the server did not answer the pool's connection-budget statement within ${timeoutMs} ms`);
    this.name = 'BudgetTimeoutError';
  }
}

/** What the reader asks of its pool. */
export interface BudgetReaderPool {
  /** Closing, or callers are waiting: no idle connection is taken for the pool's own statement. */
  busy(): boolean;
  /** How long the budget statement may take before the connection is given up. */
  statementTimeoutMs(): number;
}

export class BudgetReader {
  #reading: Promise<void> | undefined;
  /** A connect is reading the settings. */
  #readingOnConnect = false;

  constructor(
    private readonly tracker: ServerBudgetTracker,
    private readonly factory: ConnectionFactory,
    private readonly gpool: object,
    private readonly pool: BudgetReaderPool,
  ) {}

  /**
   * Reads what is due of the server's budget (the backends when older than BACKENDS_REFRESH_MS;
   * the settings when reading them on connect failed a while ago) on an idle connection of the
   * pool. Never waits for a connection, never opens one: with none idle now it reads nothing and
   * the values keep their time. One read at a time; never rejects.
   */
  refresh(): Promise<void> {
    this.#reading ??= this.#readBudget()
      .catch((err: unknown) => this.tracker.applyFailure(this.factory.scrub(err)))
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }

  /**
   * On a new connection, before anyone is lent it: the settings, when the pool has never read them
   * or reconnected (its connects failed, or it held no connection). One read at a time. A server
   * that does not answer within the budget statement's timeout, or drops the connection, fails the
   * connect attempt; a statement error (a server without these settings) is kept, and the connect stands.
   */
  async onConnect(client: pg.Client, noConnection: boolean): Promise<void> {
    const b = this.tracker;
    if (noConnection) b.markReconnect();
    if (!b.settingsDue || this.#readingOnConnect) return;
    this.#readingOnConnect = true;
    try {
      b.applySettings((await this.#budgetQuery<BudgetSettingsRow>(client, BUDGET_SETTINGS_SQL)).rows[0]!);
    } catch (err) {
      if (isConnectionLevelError(err)) throw err;
      b.applyFailure(this.factory.scrub(err), true);
    } finally {
      this.#readingOnConnect = false;
    }
  }

  async #readBudget(): Promise<void> {
    const b = this.tracker;
    const settings = b.settingsDue;
    if (!settings && (!b.known || !b.backendsDue())) return;
    const conn = this.#idleForBudget();
    if (conn === undefined) return;
    // The connection stays idle in the pool (its counts unchanged); a caller that takes it meanwhile
    // waits for the answer (validate), and eviction leaves it alone until then.
    const read = (async () => {
      try {
        if (settings) b.applySettings((await this.#budgetQuery<BudgetSettingsRow>(conn.client, BUDGET_SETTINGS_SQL)).rows[0]!);
        else b.applyBackends((await this.#budgetQuery<{ backends: number }>(conn.client, BUDGET_BACKENDS_SQL)).rows[0]!.backends);
      } catch (err) {
        if (err instanceof BudgetTimeoutError) conn.markBroken('timeout');
        else if (isConnectionLevelError(err)) conn.markBroken('error');
        b.applyFailure(this.factory.scrub(err), settings);
      } finally {
        this.factory.budgetReads.delete(conn);
      }
    })();
    this.factory.budgetReads.set(conn, read);
    await read;
    // Broken (or timed out) meanwhile: closed now rather than at its next borrow.
    if (!conn.reusable(Date.now()).ok) evictNow(this.gpool);
  }

  /**
   * An idle connection for the pool's own statement: the one returned longest ago (callers get the
   * most recent first), none while callers wait. Never a new one.
   */
  #idleForBudget(): LentConnection | undefined {
    if (this.pool.busy()) return undefined;
    const now = Date.now();
    let pick: LentConnection | undefined;
    for (const r of idleResources<LentConnection>(this.gpool)) if (!this.factory.budgetReads.has(r.obj) && r.obj.reusable(now).ok) pick = r.obj;
    return pick;
  }

  /** One statement of the pool's own on `client`, abandoned after a few seconds (BudgetTimeoutError: close the connection). */
  #budgetQuery<R extends pg.QueryResultRow>(client: pg.Client, sql: string): Promise<pg.QueryResult<R>> {
    const timeoutMs = this.pool.statementTimeoutMs();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new BudgetTimeoutError(timeoutMs)), timeoutMs);
      runDriverCall(() => client.query<R>(sql)).then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }
}
