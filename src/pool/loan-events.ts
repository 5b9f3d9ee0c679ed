/**
 * What a pool publishes about its loans on the `db-pool:*` channels: a release (returned or
 * closed, and why) and a leak report (suspected or reclaimed). Messages are built only when
 * someone subscribes, except the leak report, which the pool's owner also receives.
 */
import { leakChannel, type LeakMessage, type ReleaseMessage, releaseChannel } from '../channels.js';
import type { PooledConnection } from './pooled-connection.js';
import type { LeakReport } from './pool-types.js';

export function publishRelease(poolId: string, loan: PooledConnection, now: number, reason: string | undefined, pendingStatements?: number): void {
  if (!releaseChannel.hasSubscribers) return;
  const msg: ReleaseMessage = {
    poolId,
    connectionId: loan.connection.id,
    loanId: loan.id,
    useMs: now - loan.acquiredAt,
    destroyed: reason !== undefined,
    reason,
    pendingStatements,
  };
  releaseChannel.publish(msg);
}

/** Publishes a leak report and returns it. */
export function publishLeak(poolId: string, loan: PooledConnection, heldMs: number, kind: LeakMessage['kind']): LeakReport {
  const report: LeakReport = {
    poolId,
    connectionId: loan.connection.id,
    loanId: loan.id,
    heldMs,
    acquiredAt: loan.acquiredAt,
    stack: loan.stack,
    traceId: loan.traceId,
    kind,
  };
  if (leakChannel.hasSubscribers) leakChannel.publish(report);
  return report;
}
