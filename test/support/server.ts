/**
 * Server-side views for the scenarios: a plain pg client outside any pool, connection counts by
 * `application_name` from `pg_stat_activity`, and the leak accounting every scenario ends with.
 */
import { createServer, type AddressInfo } from 'node:net';
import pg from 'pg';
import type { DatabasePool, PoolStatus } from '../../src/index.js';
import { eventually } from './outcomes.js';

/**
 * A free TCP port on 127.0.0.1 (bound, then released): for a server to listen on, or, left
 * unused, a port nobody listens on (connections to it are refused). The one copy the tests use too.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A plain client (not pooled) for server-side checks. Remember to `end()` it. */
export async function adminClient(url: string, applicationName = 'db-pool-otel-reliability-admin'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Server-side connections carrying this application_name. */
export async function serverConnections(admin: pg.Client, applicationName: string): Promise<number> {
  const { rows } = await admin.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
  return Number(rows[0]!.n);
}

/** Backend pids of this application_name, and whether each is running a statement. */
export async function serverBackends(admin: pg.Client, applicationName: string): Promise<{ pid: number; active: boolean }[]> {
  const { rows } = await admin.query<{ pid: number; state: string | null }>('SELECT pid, state FROM pg_stat_activity WHERE application_name = $1', [
    applicationName,
  ]);
  return rows.map((r) => ({ pid: r.pid, active: r.state === 'active' }));
}

let seq = 0;
/** An application_name unique to this process and scenario (≤ 63 characters). */
export function appName(scenario: string): string {
  return `rel-${scenario}-${process.pid}-${++seq}`.slice(0, 63);
}

export interface LeakReport {
  /** Server connections beyond the pool's own, plus loans still out, after the work ended. */
  leakedWhileOpen: number;
  /** Server connections still open after the DatabasePool closed. */
  leakedAfterClose: number;
  /** Whether the server's count met the pool's own (within `settleMs`). */
  matched: boolean;
  serverCount: number;
  poolTotal: number;
}

/**
 * After a scenario's calls have all ended: waits until the server's count of the pool's connections
 * equals the pool's own total, with no loan out; then closes the DatabasePool and waits for the
 * server's count to reach 0. What is left over either way counts as leaked.
 */
export async function accountLeaks(db: DatabasePool, poolId: string, applicationName: string, admin: pg.Client, settleMs = 10_000): Promise<LeakReport> {
  let serverCount = 0;
  let poolTotal = 0;
  let active = 0;
  const matched = await eventually(
    async () => {
      const s = db.getPoolStatus(poolId);
      poolTotal = s.total - s.pendingCreates;
      active = s.active;
      serverCount = await serverConnections(admin, applicationName);
      return serverCount === poolTotal && active === 0;
    },
    settleMs,
    50,
  );
  const leakedWhileOpen = Math.abs(serverCount - poolTotal) + active;
  await db.close({ drainTimeoutMs: 2_000 });
  let after = 0;
  await eventually(async () => (after = await serverConnections(admin, applicationName)) === 0, settleMs, 50);
  return { leakedWhileOpen, leakedAfterClose: after, matched, serverCount, poolTotal };
}

/**
 * The pool's status once `ok` holds, waiting up to `timeoutMs`. After a scenario's load has stopped,
 * the pool's own calls (a recovery probe, a half-open trial) may still wait a moment for a
 * connection: a caller left waiting past its acquire timeout is a fault, one served a turn later is not.
 */
export async function statusWhen(
  db: DatabasePool,
  poolId: string,
  ok: (s: PoolStatus) => boolean,
  timeoutMs: number,
): Promise<{ reached: boolean; status: PoolStatus }> {
  let status = db.getPoolStatus(poolId);
  const reached = await eventually(() => ok((status = db.getPoolStatus(poolId))), timeoutMs);
  return { reached, status };
}
