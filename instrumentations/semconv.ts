/**
 * Attribute and metric names. The database-client connection-pool names are still "development" in
 * the spec, so (as opentelemetry-js-contrib does) they are copied here rather than imported from the
 * package's unstable `incubating` entry point. Project names live under `db_pool.`.
 *
 * The stable names are copied too, not imported from `@opentelemetry/semantic-conventions`: its
 * entry point is 7 modules and ~390 KB of source for these twelve strings, loaded on every import of
 * `db-pool-otel/instrumentation` (issue 19, "cheap to import"). Stable names never change;
 * test/instrumentation/semconv-copies.test.ts checks each against the package.
 */

// --- semantic conventions, stable (copied) ------------------------------------------------------
export const ATTR_DB_COLLECTION_NAME = 'db.collection.name' as const;
export const ATTR_DB_NAMESPACE = 'db.namespace' as const;
export const ATTR_DB_OPERATION_NAME = 'db.operation.name' as const;
export const ATTR_DB_QUERY_SUMMARY = 'db.query.summary' as const;
export const ATTR_DB_QUERY_TEXT = 'db.query.text' as const;
export const ATTR_DB_RESPONSE_STATUS_CODE = 'db.response.status_code' as const;
export const ATTR_DB_SYSTEM_NAME = 'db.system.name' as const;
export const ATTR_ERROR_TYPE = 'error.type' as const;
export const ATTR_SERVER_ADDRESS = 'server.address' as const;
export const ATTR_SERVER_PORT = 'server.port' as const;
export const DB_SYSTEM_NAME_VALUE_POSTGRESQL = 'postgresql' as const;
export const METRIC_DB_CLIENT_OPERATION_DURATION = 'db.client.operation.duration' as const;

// --- semantic conventions, development status (copied) ---------------------------------------
/** The pool's name: our pool id. */
export const ATTR_DB_CLIENT_CONNECTION_POOL_NAME = 'db.client.connection.pool.name' as const;
/** `idle` or `used`. */
export const ATTR_DB_CLIENT_CONNECTION_STATE = 'db.client.connection.state' as const;
export const DB_CLIENT_CONNECTION_STATE_VALUE_IDLE = 'idle' as const;
export const DB_CLIENT_CONNECTION_STATE_VALUE_USED = 'used' as const;
/** Rows returned by a SELECT-like statement. */
export const ATTR_DB_RESPONSE_RETURNED_ROWS = 'db.response.returned_rows' as const;

export const METRIC_DB_CLIENT_CONNECTION_COUNT = 'db.client.connection.count' as const;
export const METRIC_DB_CLIENT_CONNECTION_IDLE_MAX = 'db.client.connection.idle.max' as const;
export const METRIC_DB_CLIENT_CONNECTION_IDLE_MIN = 'db.client.connection.idle.min' as const;
export const METRIC_DB_CLIENT_CONNECTION_MAX = 'db.client.connection.max' as const;
export const METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS = 'db.client.connection.pending_requests' as const;
export const METRIC_DB_CLIENT_CONNECTION_TIMEOUTS = 'db.client.connection.timeouts' as const;
export const METRIC_DB_CLIENT_CONNECTION_CREATE_TIME = 'db.client.connection.create_time' as const;
export const METRIC_DB_CLIENT_CONNECTION_WAIT_TIME = 'db.client.connection.wait_time' as const;
export const METRIC_DB_CLIENT_CONNECTION_USE_TIME = 'db.client.connection.use_time' as const;

// --- project attributes -----------------------------------------------------------------------
/** Id of the physical connection (as in `getConnectionDetails`). */
export const ATTR_DB_POOL_CONNECTION_ID = 'db_pool.connection.id' as const;
/** Id of one loan (acquire to release) of a connection. */
export const ATTR_DB_POOL_LOAN_ID = 'db_pool.loan.id' as const;
/** Callers already waiting when an acquire started. */
export const ATTR_DB_POOL_ACQUIRE_PENDING = 'db_pool.acquire.pending_at_start' as const;
/** No idle connection was free when the acquire started. */
export const ATTR_DB_POOL_ACQUIRE_MUST_WAIT = 'db_pool.acquire.must_wait' as const;
/** Milliseconds from the acquire call to the connection being lent. */
export const ATTR_DB_POOL_ACQUIRE_WAIT_MS = 'db_pool.acquire.wait_ms' as const;
/** On a link from an acquire span: the loan whose release served this waiting caller. */
export const ATTR_DB_POOL_LINK_SERVED_BY_LOAN = 'db_pool.link.served_by_loan' as const;
/** Connect attempt number (1 after a success, counting up through consecutive failures). */
export const ATTR_DB_POOL_CONNECT_ATTEMPT = 'db_pool.connect.attempt' as const;
/** Rows returned or affected, as `pg` reports `rowCount`. */
export const ATTR_DB_POOL_QUERY_ROW_COUNT = 'db_pool.query.row_count' as const;
/** Number of bound parameter values (never the values). */
export const ATTR_DB_POOL_QUERY_VALUES_COUNT = 'db_pool.query.values_count' as const;
/** Why a connection was closed on release: error, broken, in-transaction, expired, revoked, closing. */
export const ATTR_DB_POOL_DISCARD_REASON = 'db_pool.discard.reason' as const;
/** Leak report kind: suspected or reclaimed. */
export const ATTR_DB_POOL_LEAK_KIND = 'db_pool.leak.kind' as const;
/**
 * Pool lifecycle event (`PoolEventMessage.event` in src/channels.ts): created, removed, closed,
 * resized, restarted, connection-error, unreachable, recovering, recovered, failed-over,
 * failed-back, recovery-failed, circuit-open, circuit-closed.
 */
export const ATTR_DB_POOL_EVENT = 'db_pool.event' as const;

// --- project metrics --------------------------------------------------------------------------
export const METRIC_DB_POOL_SLOW_QUERIES = 'db_pool.slow_queries' as const;
export const METRIC_DB_POOL_LEAKS = 'db_pool.leaks' as const;
export const METRIC_DB_POOL_ACQUIRE_ERRORS = 'db_pool.acquire.errors' as const;
export const METRIC_DB_POOL_CONNECTION_CREATE_ERRORS = 'db_pool.connection.create_errors' as const;
export const METRIC_DB_POOL_CONNECTION_DISCARDED = 'db_pool.connection.discarded' as const;
export const METRIC_DB_POOL_CONNECTION_PENDING_CREATES = 'db_pool.connection.pending_creates' as const;
export const METRIC_DB_POOL_EVENTS = 'db_pool.events' as const;

// --- the server's connection budget (instrumentations/server-budget-metrics.ts) ----------------
// Attributes: db.client.connection.pool.name, server.address, server.port, db.namespace.
/** The server's max_connections. */
export const METRIC_DB_POOL_SERVER_CONNECTION_LIMIT = 'db_pool.server.connection.limit' as const;
/** superuser_reserved_connections plus reserved_connections (PostgreSQL 16+). */
export const METRIC_DB_POOL_SERVER_CONNECTION_RESERVED = 'db_pool.server.connection.reserved' as const;
/** Client backends on the server now (every client). */
export const METRIC_DB_POOL_SERVER_CONNECTION_BACKENDS = 'db_pool.server.connection.backends' as const;
/** The pool's max, against the server it connects to. */
export const METRIC_DB_POOL_SERVER_CONNECTION_POOL_MAX = 'db_pool.server.connection.pool_max' as const;
/** The pool's open connections to the server. */
export const METRIC_DB_POOL_SERVER_CONNECTION_POOL_OPEN = 'db_pool.server.connection.pool_open' as const;
