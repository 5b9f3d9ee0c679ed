/**
 * What a DatabasePool tells its users about its pools: the events it emits (connection errors and
 * closes, leaks, slow queries, careless releases, recovery), the log lines that go with them, and
 * the alert handlers paged on failover.
 */
import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { AlertHandler } from './alerts/alert-handler.js';
import type { ManagedPool } from './pool/managed-pool.js';
import type { PoolHooks } from './pool/pool-types.js';
import type { DatabasePoolEvents } from './pool-api.js';

type PoolEmitter = EventEmitter<DatabasePoolEvents>;
type Logger = Pick<Console, 'warn'> | null;

/** The facade's part of a new pool's hooks: its events and log lines. */
export function poolHooks(db: PoolEmitter, logger: Logger, poolOf: () => ManagedPool): Omit<PoolHooks, 'onUnreachable'> {
  return {
    onConnectionError: (id, connectionId, error, { idle, client }) => {
      poolOf().publish('connection-error', { connectionId, error: error?.message });
      db.emit('connectionError', withClient({ poolId: id, connectionId, error, idle }, client));
    },
    onConnectionClosed: (id, connectionId, client) => {
      if (db.listenerCount('connectionClosed') > 0) db.emit('connectionClosed', withClient({ poolId: id, connectionId }, client));
    },
    onLeak: (report) => {
      if (report.kind === 'suspected') {
        logger?.warn(
          `[db-pool-otel] pool "${report.poolId}": connection ${report.connectionId} held for ${Math.round(report.heldMs)} ms ` +
            `(leakDetectionThresholdMs ${poolOf().config.leakDetectionThresholdMs}); acquired at:\n${report.stack ?? '(no stack)'}`,
        );
      }
      db.emit('leak', report);
    },
    onSlowQuery: (report) => db.emit('slowQuery', report),
    onReleasedWithPending: (report) => {
      logger?.warn(
        `[db-pool-otel] pool "${report.poolId}": loan ${report.loanId} was released with ${report.pendingStatements} statement(s) still running ` +
          `(a missing await?); connection ${report.connectionId} is lent to nobody until they finish, then checked` +
          (report.stack ? `; acquired at:\n${report.stack}` : ''),
      );
      db.emit('releasedWithPending', report);
    },
  };
}

/** A recovery transition: logged when it is bad news, paged to the alert handlers, emitted. */
export function onTransition(
  db: PoolEmitter,
  logger: Logger,
  handlers: readonly AlertHandler[],
  poolId: string,
  event: string,
  detail: Record<string, unknown>,
): void {
  if (event === 'failed-over' || event === 'recovery-failed') {
    logger?.warn(`[db-pool-otel] pool "${poolId}": ${event} (${JSON.stringify(detail)})`);
  }
  alertTransition(handlers, poolId, event, detail);
  db.emit('recovery', { poolId, event, detail });
}

/** Failover, failback and a failed recovery page the alert handlers (one incident: same dedup key). */
function alertTransition(handlers: readonly AlertHandler[], poolId: string, event: string, detail: Record<string, unknown>): void {
  if (event !== 'failed-over' && event !== 'failed-back' && event !== 'recovery-failed') return;
  const message =
    event === 'failed-over'
      ? `Pool "${poolId}" failed over to its backup: the primary is unreachable (${String(detail.error ?? 'unknown error')})`
      : event === 'failed-back'
        ? `Pool "${poolId}" failed back to its primary`
        : `Pool "${poolId}" could not be recovered after ${String(detail.attempts)} attempts and has no backup (${String(detail.error ?? '')})`;
  for (const h of handlers) {
    void h
      .sendAlert({ level: event === 'failed-back' ? 'info' : 'critical', message, poolId, kind: 'FailedOver', resolve: event === 'failed-back' })
      .catch(() => {});
  }
}

/** An event payload carrying the raw client as a non-enumerable `client` (logs and JSON skip it). */
function withClient<T extends object>(payload: T, client: pg.Client): T & { client: pg.Client } {
  return Object.defineProperty(payload, 'client', { value: client, enumerable: false }) as T & { client: pg.Client };
}
