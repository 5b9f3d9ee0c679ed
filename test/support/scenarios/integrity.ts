/**
 * Data integrity under careless callers (issue 14, items 1 and 2), at load:
 * - releases with `BEGIN` still in flight (a missing `await`) interleaved with callers doing
 *   autocommit writes: every acknowledged write must be in the table afterwards;
 * - transactions whose callback swallowed a failed statement: every one must reject with
 *   TRANSACTION_ROLLED_BACK, and none of their rows may exist.
 */
import { pgPool } from '../../../src/adapters/pg-pool.js';
import { DatabasePool, type PendingReleaseReport } from '../../../src/index.js';
import { CallLedger, Checks, formatCodes, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { adminClient, appName, serverConnections } from '../server.js';

export interface IntegritySize {
  /** Careless releases (BEGIN in flight) and honest writes, each. */
  calls: number;
  /** Transactions that swallow a failure, through transaction() and through the pg.Pool face, each. */
  transactions: number;
}
export const INTEGRITY_CI: IntegritySize = { calls: 200, transactions: 50 };
export const INTEGRITY_FULL: IntegritySize = { calls: 2_000, transactions: 500 };

export async function integrityScenario(ctx: ScenarioContext, size: IntegritySize): Promise<ScenarioResult> {
  const started = performance.now();
  const app = appName('integrity');
  const table = `reliability_integrity_${process.pid}`;
  const admin = await adminClient(ctx.databaseUrl);
  const checks = new Checks();
  const ledger = new CallLedger();
  await admin.query(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int PRIMARY KEY, kind text)`);
  const url = new URL(ctx.databaseUrl);
  url.searchParams.set('application_name', app);
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: url.toString() }, max: 4, min: 0, acquireTimeoutMs: 20_000 } },
    logger: null,
  });
  const pending: PendingReleaseReport[] = [];
  db.on('releasedWithPending', (r) => pending.push(r));
  const acked = new Set<number>();
  let leaked = 0;
  let present = -1;
  let phantom = -1;
  try {
    // 1. Careless releases and honest writes, interleaved on a small pool by 16 callers at a time
    //    (each careless release costs a connection, so all at once would only measure reconnects).
    const inFlight: Promise<unknown>[] = [];
    let next = 0;
    const worker = async () => {
      for (let id = next++; id < size.calls; id = next++) {
        await ledger.track(async () => {
          const c = await db.acquire('main');
          inFlight.push(c.query('BEGIN').catch(() => undefined)); // no await: the bug under test
          c.release();
        }, 30_000);
        await ledger.track(async () => {
          const r = await db.query('main', `INSERT INTO ${table} VALUES ($1, 'honest')`, [id]);
          if (r.rowCount === 1) acked.add(id);
        }, 30_000);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await Promise.all(inFlight);

    // 2. Transactions that swallow a failed statement: COMMIT is answered with ROLLBACK.
    const face = pgPool(db, 'main');
    const tx: Promise<unknown>[] = [];
    for (let i = 0; i < size.transactions; i++) {
      const id = 1_000_000 + 2 * i;
      tx.push(
        ledger.track(
          () =>
            db.transaction('main', async (t) => {
              await t.query(`INSERT INTO ${table} VALUES ($1, 'phantom')`, [id]);
              await t.query('SELECT 1/0').catch(() => undefined);
            }),
          30_000,
        ),
      );
      tx.push(
        ledger.track(async () => {
          const c = await face.connect();
          try {
            await c.query('BEGIN');
            await c.query(`INSERT INTO ${table} VALUES ($1, 'phantom')`, [id + 1]);
            await c.query('SELECT 1/0').catch(() => undefined);
            await c.query('COMMIT');
          } finally {
            c.release();
          }
        }, 30_000),
      );
    }
    await Promise.all(tx);
    await ledger.drain();
  } finally {
    await db.close({ drainTimeoutMs: 5_000 });
    leaked = await serverConnections(admin, app);
    const honest = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE kind = 'honest'`);
    const ph = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE kind = 'phantom'`);
    present = Number(honest.rows[0]!.n);
    phantom = Number(ph.rows[0]!.n);
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
    await admin.end();
  }
  const lost = acked.size - present;
  checks.add(
    'every acknowledged autocommit write is in the table (none lost to a careless release)',
    lost === 0 && acked.size === size.calls,
    `${acked.size} acknowledged, ${present} present`,
  );
  checks.add(
    'each release with BEGIN in flight was reported, naming its loan',
    pending.length === size.calls && pending.every((p) => p.loanId > 0),
    `${pending.length} reports`,
  );
  checks.add(
    'every transaction whose COMMIT was answered with ROLLBACK rejected with TRANSACTION_ROLLED_BACK',
    (ledger.rejected.TRANSACTION_ROLLED_BACK ?? 0) === 2 * size.transactions,
    formatCodes(ledger.rejected),
  );
  checks.add('no row of a rolled-back transaction exists', phantom === 0, `${phantom} rows`);
  checks.add(
    'no other rejection',
    Object.keys(ledger.rejected).every((c) => c === 'TRANSACTION_ROLLED_BACK'),
    formatCodes(ledger.rejected),
  );
  return {
    name: 'integrity: careless releases, rolled-back commits',
    ...ledger.summary(),
    leaked,
    figures: {
      'acknowledged writes': acked.size,
      'writes lost': lost,
      'releases with BEGIN in flight': pending.length,
      TRANSACTION_ROLLED_BACK: ledger.rejected.TRANSACTION_ROLLED_BACK ?? 0,
      'phantom rows': phantom,
    },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
