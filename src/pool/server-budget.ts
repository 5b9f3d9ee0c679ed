/**
 * The server's connection budget, as the pools of this process see it: how many connections the
 * PostgreSQL server takes (`max_connections`), how many of those are kept for administrators
 * (`superuser_reserved_connections`, and `reserved_connections` on PostgreSQL 16+), how many
 * client backends it has now, and how many connections this process's pools may open to it
 * (the sum of their `max`) and have open.
 *
 * Nothing here knows pools. A pool owns one {@link ServerBudgetTracker}, runs the two statements
 * below and hands the answers over; the trackers of every open pool are registered process-wide,
 * so sums per server and observers (the OpenTelemetry gauges) read every live pool's view from
 * one place.
 *
 * When it reads:
 * - the settings ({@link BUDGET_SETTINGS_SQL}, one round trip) on the pool's first connection,
 *   before anyone is lent it, and again after a reconnect (a connect that failed, or the pool
 *   having had no connection): they change only with a server restart;
 * - the backends ({@link BUDGET_BACKENDS_SQL}) at most every {@link BACKENDS_REFRESH_MS}, and only
 *   when someone asks (the instrumentation's gauges at a collection, a health check,
 *   `getDetailedMetrics`), on an idle connection that stays in the pool meanwhile: never one a
 *   caller holds, never a new one.
 *
 * Through a transaction pooler (`transactionPooling: true`, PgBouncer) the statements reach a
 * server connection of the pooler, so the settings and the backends are the server's behind it;
 * but the pool's own connections go to the pooler and take no server slot each. Such a budget is
 * marked `via: 'pooler'`, and the pool's `max` and open connections are not counted against the
 * server (the pooler's own pool size is what the server sees).
 */

/** Settings and backends in one round trip (the first connection, and after a reconnect). */
export const BUDGET_SETTINGS_SQL =
  "SELECT current_setting('max_connections')::int AS max_connections," +
  " current_setting('superuser_reserved_connections')::int AS superuser_reserved," +
  " current_setting('reserved_connections', true) AS reserved," +
  " current_setting('server_version_num')::int AS version_num," +
  " (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS backends";

/** Client backends on the server now (what counts against max_connections). */
export const BUDGET_BACKENDS_SQL = "SELECT count(*)::int AS backends FROM pg_stat_activity WHERE backend_type = 'client backend'";

/** A failed settings read (a server without these settings) is tried again after this long, when asked. */
export const SETTINGS_RETRY_MS = 60_000;

/** The backends are read at most this often. */
export const BACKENDS_REFRESH_MS = 5_000;

/** A 53300 (too many connections) is "recent" for this long: auto-tuning does not grow the pool meanwhile. */
export const TOO_MANY_CONNECTIONS_BACKOFF_MS = 300_000;

/** How the budget was measured: on the server itself, or through a transaction pooler in front of it. */
export type BudgetVia = 'server' | 'pooler';

/** What this process's pools claim of one server. */
export interface InstanceClaims {
  /** Open pools of this process connecting directly to the server (pooler pools are not counted). */
  pools: number;
  /** The sum of their `max`: how many connections they may open. */
  max: number;
  /** The sum of their open connections now. */
  open: number;
  /** Their ids (an id appears once per pool object). */
  poolIds: string[];
}

/** One pool's view of its server's connection budget (JSON-ready). */
export interface ServerBudget {
  /** 'server': measured on a direct connection. 'pooler': through a transaction pooler; see the module comment. */
  via: BudgetVia;
  /** Where the pool connects (its configured host and port, as on the metrics). */
  serverAddress: string;
  serverPort: number;
  database: string | null;
  /** `server_version_num`, e.g. 150020. */
  serverVersionNum: number;
  /** `max_connections`. */
  maxConnections: number;
  /** `superuser_reserved_connections`. */
  superuserReservedConnections: number;
  /** `reserved_connections` (PostgreSQL 16+); null where the server has no such setting. */
  reservedConnections: number | null;
  /** Slots an ordinary role can get: max_connections minus both reserves. */
  usableConnections: number;
  /** Client backends on the server at `backendsMeasuredAt` (every client, not only this pool's); null until measured. */
  backends: number | null;
  backendsMeasuredAt: string | null;
  /** When the settings were read (the first connection, or the last reconnect). */
  learnedAt: string;
  /** This process's pools to the same server (direct ones only). */
  instance: InstanceClaims;
  /** This process's pools alone may open more connections than the server's usable slots. */
  overBudget: boolean;
  /** Connect attempts of this pool refused with 53300 (too many connections), and the last one. */
  tooManyConnections: { count: number; lastAt: string | null };
}

/** What the registry needs from a pool. */
export interface BudgetOwner {
  readonly poolId: string;
  /** The pool's target as on its telemetry (address and port with pg's defaults filled in). */
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly database: string | undefined;
  readonly via: BudgetVia;
  /** The pool's `max` and its open connections now. */
  claims(): { max: number; open: number };
  /** Reads what is due (settings after a reconnect, backends when stale) in the background. */
  refreshBudget(): Promise<void>;
}

/** A row of {@link BUDGET_SETTINGS_SQL}. */
export interface BudgetSettingsRow {
  max_connections: number;
  superuser_reserved: number;
  reserved: string | null;
  version_num: number;
  backends: number;
}

interface Settings {
  maxConnections: number;
  superuserReserved: number;
  reserved: number | null;
  versionNum: number;
}

/** Keeps one pool's view of its server's budget. */
export class ServerBudgetTracker {
  #settings: Settings | undefined;
  #learnedAt = 0;
  #backends: number | undefined;
  #backendsAt = 0;
  /** The settings must be (re)read: never read, or the pool reconnected since. */
  #stale = true;
  #tooMany = 0;
  #lastTooManyAt = 0;
  /** When reading the settings last failed (e.g. a server without max_connections): retried after SETTINGS_RETRY_MS. */
  #failedAt = 0;
  /** Why the last read failed (e.g. a server that has no max_connections), cleared by a success. */
  lastError: string | undefined;

  constructor(readonly owner: BudgetOwner) {}

  /** The settings are unknown, or were read before the last reconnect. */
  get settingsDue(): boolean {
    return this.#stale || (this.#settings === undefined && this.#failedAt > 0 && Date.now() - this.#failedAt >= SETTINGS_RETRY_MS);
  }

  /** The backends were read longer than {@link BACKENDS_REFRESH_MS} ago (or never). */
  backendsDue(now = Date.now()): boolean {
    return now - this.#backendsAt >= BACKENDS_REFRESH_MS;
  }

  get known(): boolean {
    return this.#settings !== undefined;
  }

  /** The pool reconnected (first connection, or after failures or having none): read the settings again. */
  markReconnect(): void {
    this.#stale = true;
  }

  /** A connect attempt was refused with 53300. */
  noteTooManyConnections(now = Date.now()): void {
    this.#tooMany++;
    this.#lastTooManyAt = now;
  }

  /** Milliseconds since the last 53300, or undefined when there was none. */
  sinceTooManyConnections(now = Date.now()): number | undefined {
    return this.#tooMany > 0 ? now - this.#lastTooManyAt : undefined;
  }

  /** Takes a row of {@link BUDGET_SETTINGS_SQL}. */
  applySettings(row: BudgetSettingsRow, now = Date.now()): void {
    const reserved = row.reserved === null || row.reserved === undefined || row.reserved === '' ? null : Number(row.reserved);
    this.#settings = {
      maxConnections: Number(row.max_connections),
      superuserReserved: Number(row.superuser_reserved),
      reserved: reserved !== null && Number.isFinite(reserved) ? reserved : null,
      versionNum: Number(row.version_num),
    };
    this.#learnedAt = now;
    this.#stale = false;
    this.lastError = undefined;
    this.applyBackends(row.backends, now);
  }

  applyBackends(backends: number, now = Date.now()): void {
    this.#backends = Number(backends);
    this.#backendsAt = now;
  }

  /**
   * A read failed: the message is kept (`lastError`). A failed settings read is tried again at the
   * next reconnect, or when asked (telemetry, a health check) after SETTINGS_RETRY_MS.
   */
  applyFailure(err: unknown, settings = false): void {
    this.lastError = err instanceof Error ? err.message : String(err);
    if (settings) {
      this.#stale = false;
      this.#failedAt = Date.now();
    }
  }

  /** The view now, with this process's claims on the same server; null until the settings were read. */
  snapshot(claims?: InstanceClaims): ServerBudget | null {
    const s = this.#settings;
    if (!s) return null;
    const o = this.owner;
    const instance = claims ?? instanceClaims(o.serverAddress, o.serverPort);
    const usable = usableOf(s);
    return {
      via: o.via,
      serverAddress: o.serverAddress,
      serverPort: o.serverPort,
      database: o.database ?? null,
      serverVersionNum: s.versionNum,
      maxConnections: s.maxConnections,
      superuserReservedConnections: s.superuserReserved,
      reservedConnections: s.reserved,
      usableConnections: usable,
      backends: this.#backends ?? null,
      backendsMeasuredAt: this.#backends === undefined ? null : new Date(this.#backendsAt).toISOString(),
      learnedAt: new Date(this.#learnedAt).toISOString(),
      instance,
      overBudget: o.via === 'server' && instance.max > usable,
      tooManyConnections: { count: this.#tooMany, lastAt: this.#tooMany > 0 ? new Date(this.#lastTooManyAt).toISOString() : null },
    };
  }
}

function usableOf(s: Settings): number {
  return Math.max(0, s.maxConnections - s.superuserReserved - (s.reserved ?? 0));
}

// ---------------------------------------------------------------- the process-wide registry

/** One per process, shared by the ESM and the CommonJS build (see registry.ts). */
const trackers = ((globalThis as Record<symbol, unknown>)[Symbol.for('db-pool-otel.server-budgets.v1')] ??=
  new Set<ServerBudgetTracker>()) as Set<ServerBudgetTracker>;

/** @internal An open pool's tracker; removed when the pool starts closing. */
export function registerBudget(tracker: ServerBudgetTracker): void {
  trackers.add(tracker);
}

/** @internal */
export function unregisterBudget(tracker: ServerBudgetTracker): void {
  trackers.delete(tracker);
}

const serverKey = (address: string, port: number) => `${address}:${port}`;

/** What this process's open pools claim of the server at `address:port` (by default pools through a pooler are not counted). */
export function instanceClaims(address: string, port: number, via: BudgetVia = 'server'): InstanceClaims {
  const out: InstanceClaims = { pools: 0, max: 0, open: 0, poolIds: [] };
  for (const t of trackers) {
    const o = t.owner;
    if (o.via !== via || o.serverAddress !== address || o.serverPort !== port) continue;
    const c = o.claims();
    out.pools++;
    out.max += c.max;
    out.open += c.open;
    out.poolIds.push(o.poolId);
  }
  return out;
}

/** One live pool's budget reading, as the instrumentation observes it. */
export interface LiveServerBudget {
  poolId: string;
  serverAddress: string;
  serverPort: number;
  database: string | undefined;
  via: BudgetVia;
  /** The pool's max and open connections now. */
  max: number;
  open: number;
  /** Null until the pool has read its server's settings. */
  budget: ServerBudget | null;
}

/**
 * Every open pool's view of its server's budget, with this process's claims summed once per
 * server. With `refresh`, pools whose readings are due read them in the background (never
 * waiting for a connection): the values come with the next call.
 *
 * @example
 * for (const b of liveServerBudgets()) if (b.budget?.overBudget) console.warn(b.poolId, 'claims more than', b.budget.usableConnections);
 */
export function* liveServerBudgets(options: { refresh?: boolean } = {}): IterableIterator<LiveServerBudget> {
  const now = Date.now();
  const claims = new Map<string, InstanceClaims>();
  for (const t of [...trackers]) {
    const o = t.owner;
    if (options.refresh && (t.settingsDue || t.backendsDue(now))) o.refreshBudget().catch(() => {});
    const key = serverKey(o.serverAddress, o.serverPort);
    let c = claims.get(key);
    if (c === undefined) claims.set(key, (c = instanceClaims(o.serverAddress, o.serverPort)));
    const own = o.claims();
    yield {
      poolId: o.poolId,
      serverAddress: o.serverAddress,
      serverPort: o.serverPort,
      database: o.database,
      via: o.via,
      max: own.max,
      open: own.open,
      budget: t.snapshot(c),
    };
  }
}
