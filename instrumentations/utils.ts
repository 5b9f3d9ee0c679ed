import { SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api';
import type { ServerInfo } from '../src/index.js';
import { DbPoolError } from '../src/internal.js';
import type { QueryAttrs } from './internal-types.js';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_NAMESPACE,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from './semconv.js';

/** Upper bound of remembered loans (for acquire-span links); oldest dropped first. */
export const MAX_TRACKED_LOANS = 10_000;
/**
 * Meter mode: default for `maxPoolSeries`, the number of pool ids given series of their own.
 * sdk-metrics keeps a pool id's series for the life of the process (10 to 40 kB of heap each in our
 * measurements, more with many statement shapes), and its default cardinality limit of 2 000
 * attribute sets per instrument is reached at 1 000 pool ids by `db.client.connection.count` (two
 * states a pool), after which new pools' gauges land in an `otel.metric.overflow` series for good.
 */
export const DEFAULT_MAX_POOL_SERIES = 200;
/** The pool name on the metrics of pool ids past `maxPoolSeries` (meter mode). */
export const POOL_NAME_OTHER = '_OTHER';
/** Upper bound of pools whose statement attributes are cached (oldest dropped first; rebuilt on use). */
export const MAX_QUERY_ATTR_POOLS = 4_096;
/** Producer mode: removed pools whose last values wait for a collection; past it the oldest are dropped unexported. */
export const MAX_GONE_POOLS = 1_000;
/** Upper bound of cached attribute-set variants per pool (per attribute) or per statement; beyond it they are built per call. */
export const MAX_ATTR_VARIANTS = 64;

/**
 * A bounded `error.type` for an error: the SQLSTATE when the server sent one, else the error's
 * string `code` (ACQUIRE_TIMEOUT, ECONNREFUSED, ...), else its class name, else `_OTHER`.
 */
export function errorType(err: unknown, sqlState?: string): string {
  if (sqlState) return sqlState;
  if (err !== null && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0 && code.length <= 64) return code;
    const name = (err as { name?: unknown }).name;
    if (typeof name === 'string' && name.length > 0 && name !== 'Error' && name.length <= 64) return name;
  }
  return '_OTHER';
}

/**
 * The span status message for an acquire failure: our own errors describe the pool (never a
 * password or a statement), anything else is reduced to its type.
 */
export function acquireErrorMessage(err: unknown, type: string): string {
  return err instanceof DbPoolError ? err.message : type;
}

/** Marks a span failed: `error.type`, and an ERROR status whose message is the type unless told otherwise. */
export function markError(span: Span, type: string, message: string = type): void {
  span.setAttribute(ATTR_ERROR_TYPE, type);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Makes room for one more entry in a bounded Map or Set: when it is full, drops the oldest (first inserted). */
export function dropOldestIfFull<K>(entries: { readonly size: number; keys(): Iterator<K>; delete(key: K): boolean }, max: number): void {
  if (entries.size < max) return;
  const oldest = entries.keys().next();
  if (oldest.done !== true) entries.delete(oldest.value);
}

/** Milliseconds to seconds, for the OpenTelemetry duration instruments. */
export function seconds(ms: number): number {
  return ms / 1000;
}

/**
 * The same attributes with their keys inserted in sorted order. sdk-metrics (2.x) hashes the
 * attributes of every measurement: their keys, sorted, then JSON. With the keys already in order
 * the sort, about half of that hash for our seven-attribute operation duration, does next to
 * nothing. Build cached attribute sets with it.
 */
export function withSortedKeys(attributes: Attributes): Attributes {
  const sorted: Attributes = {};
  for (const key of Object.keys(attributes).sort()) sorted[key] = attributes[key];
  return sorted;
}

/**
 * The attributes shared by a pool's query and connect spans and query metrics: system and pool,
 * then namespace and server when known. A new object, for the caller to add to.
 */
export function serverAttrs(m: ServerInfo & { readonly poolId: string }): Attributes {
  const a: Attributes = {
    [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: m.poolId,
  };
  if (m.database !== undefined) a[ATTR_DB_NAMESPACE] = m.database;
  if (m.serverAddress !== undefined) a[ATTR_SERVER_ADDRESS] = m.serverAddress;
  if (m.serverPort !== undefined) a[ATTR_SERVER_PORT] = m.serverPort;
  return a;
}

/**
 * A failed statement's metric attributes: `metric` plus `error.type` and, when the server sent
 * one, `db.response.status_code`. Built once per failure (frozen) and kept on the statement's
 * attributes, up to MAX_ATTR_VARIANTS; beyond that built per call.
 */
export function failedQueryAttrs(q: QueryAttrs, type: string, sqlState: string | undefined): Attributes {
  const key = sqlState === undefined ? type : `${type}\u0000${sqlState}`;
  const failures = (q.failures ??= new Map());
  let a = failures.get(key);
  if (a !== undefined) return a;
  const attrs: Attributes = { ...q.metric, [ATTR_ERROR_TYPE]: type };
  if (sqlState !== undefined) attrs[ATTR_DB_RESPONSE_STATUS_CODE] = sqlState;
  a = Object.freeze(withSortedKeys(attrs));
  if (failures.size < MAX_ATTR_VARIANTS) failures.set(key, a);
  return a;
}
