/**
 * Load: many concurrent callers on a small pool. Every caller is served or rejected with
 * ACQUIRE_TIMEOUT or QUEUE_FULL within its bound; none hangs; no connection is ever lent to two
 * callers at once (backend pids and loan ids tracked per call, and each result carries the caller's
 * own id back); waiting callers are served in the order they asked (FIFO); nothing leaks.
 */
import { DatabasePool } from '../../../src/index.js';
import { accountLeaks, adminClient, appName } from '../server.js';
import { CallLedger, Checks, formatCodes, type ScenarioContext, type ScenarioResult } from '../outcomes.js';

export interface LoadSize {
  /** Concurrent callers (all start at once). */
  callers: number;
  /** Requests each caller makes one after another. */
  rounds: number;
  /** Pool size. */
  max: number;
  acquireTimeoutMs: number;
  /** Callers allowed to queue; those beyond get QUEUE_FULL. */
  maxWaitingClients: number;
}

// A request holds its connection at least 3 ms, so 10 connections serve at most ~6 700 requests in
// 2 s: of the 8 000 admitted at once, some must time out on any machine.
export const LOAD_FULL: LoadSize = { callers: 10_000, rounds: 5, max: 10, acquireTimeoutMs: 2_000, maxWaitingClients: 8_000 };
export const LOAD_CI: LoadSize = { callers: 10_000, rounds: 1, max: 10, acquireTimeoutMs: 2_000, maxWaitingClients: 8_000 };

export async function loadScenario(ctx: ScenarioContext, size: LoadSize): Promise<ScenarioResult> {
  const started = performance.now();
  const app = appName('load');
  const queryTimeoutMs = 5_000;
  const db = new DatabasePool({
    pools: {
      load: {
        connection: { connectionString: ctx.databaseUrl },
        max: size.max,
        min: 0,
        acquireTimeoutMs: size.acquireTimeoutMs,
        maxWaitingClients: size.maxWaitingClients,
        queryTimeoutMs,
        applicationName: app,
      },
    },
    logger: null,
  });
  const admin = await adminClient(ctx.databaseUrl);
  // Open the pool's connections before the stampede: what is measured is the lending, not whether a
  // first connect squeezes through a CPU saturated by 10 000 callers (on a shared test server it may
  // not, and with no connection the pool then fails its waiters with CONNECTION_FAILED by design).
  const warm = await Promise.all(Array.from({ length: size.max }, () => db.acquire('load')));
  for (const conn of warm) conn.release();
  const checks = new Checks();
  const ledger = new CallLedger();
  const deadline = size.acquireTimeoutMs + queryTimeoutMs + 2_000;
  // Per-request bookkeeping, by the order the requests were made.
  let callSeq = 0;
  const served: { seq: number; loanId: number }[] = [];
  const loanIds = new Set<number>();
  const heldBy = new Map<number, number>(); // backend pid -> caller holding it now
  let overlaps = 0;
  let crossTalk = 0;
  let duplicateLoans = 0;
  let queueFullBeforeAdmitted = 0;
  const rejectedSeqs: { seq: number; code: string }[] = [];

  const request = async (caller: number) => {
    const seq = callSeq++;
    const conn = await db.acquire('load');
    try {
      const pid = conn.processId ?? -1;
      if (heldBy.has(pid)) overlaps++;
      heldBy.set(pid, caller);
      if (loanIds.has(conn.id)) duplicateLoans++;
      loanIds.add(conn.id);
      served.push({ seq, loanId: conn.id });
      // Each request holds its connection a few milliseconds, as real work does.
      const { rows } = await conn.query<{ pid: number; caller: number }>('SELECT pg_backend_pid() AS pid, $1::int AS caller, pg_sleep(0.003)', [caller]);
      if (rows[0]!.pid !== pid || rows[0]!.caller !== caller) crossTalk++;
      if (heldBy.get(pid) !== caller) overlaps++;
      heldBy.delete(pid);
    } finally {
      conn.release();
    }
    return seq;
  };

  ctx.log(
    `load: ${size.callers} callers × ${size.rounds} rounds on a pool of ${size.max} (acquire timeout ${size.acquireTimeoutMs} ms, maxWaitingClients ${size.maxWaitingClients})`,
  );
  const callers = Array.from({ length: size.callers }, async (_, caller) => {
    for (let r = 0; r < size.rounds; r++) {
      const seqBefore = callSeq;
      const rec = await ledger.track(() => request(caller), deadline);
      if (!rec.ok) {
        rejectedSeqs.push({ seq: seqBefore, code: rec.code ?? '?' });
        // A caller that was turned away comes back a little later, as a real one would.
        await new Promise((res) => setTimeout(res, 5 + (caller % 20)));
      }
    }
  });
  await Promise.all(callers);
  const neverSettled = await ledger.drain();

  // FIFO: among served requests, loan ids (handed out in service order) rise with the order asked.
  served.sort((a, b) => a.seq - b.seq);
  let inversions = 0;
  for (let i = 1; i < served.length; i++) if (served[i]!.loanId < served[i - 1]!.loanId) inversions++;
  // In the first wave (everyone asks at once) QUEUE_FULL goes to the latest askers only.
  const firstWaveQueueFull = rejectedSeqs.filter((r) => r.code === 'QUEUE_FULL' && r.seq < size.callers).map((r) => r.seq);
  const firstWaveServed = served.filter((s) => s.seq < size.callers);
  if (firstWaveQueueFull.length > 0 && firstWaveServed.length > 0) {
    const minFull = Math.min(...firstWaveQueueFull);
    queueFullBeforeAdmitted = firstWaveServed.filter((s) => s.seq > minFull).length;
  }
  const waits = db.getDetailedMetrics('load');
  const leaks = await accountLeaks(db, 'load', app, admin);
  await admin.end();

  const unexpected = ledger.unexpected(['ACQUIRE_TIMEOUT', 'QUEUE_FULL']);
  checks.add('every request served or rejected with ACQUIRE_TIMEOUT / QUEUE_FULL', unexpected.length === 0, `rejections: ${formatCodes(ledger.rejected)}`);
  checks.add(
    'no request hung past acquire timeout + query timeout + 2 s',
    ledger.hung === 0 && neverSettled === 0,
    `hung ${ledger.hung}, never settled ${neverSettled}, slowest ${Math.round(ledger.slowestMs)} ms`,
  );
  checks.add(
    'every request accounted for',
    ledger.served + Object.values(ledger.rejected).reduce((a, b) => a + b, 0) === ledger.requests,
    `${ledger.requests} made`,
  );
  checks.add('no connection lent to two callers at once', overlaps === 0, `${overlaps} overlaps`);
  checks.add('every loan id used once', duplicateLoans === 0 && loanIds.size === ledger.served, `${loanIds.size} loan ids for ${ledger.served} served`);
  checks.add("each result carried its own caller's id and backend pid", crossTalk === 0, `${crossTalk} mismatches`);
  checks.add('FIFO: waiting requests served in the order they asked', inversions === 0, `${inversions} inversions among ${served.length} served`);
  checks.add(
    'QUEUE_FULL only for requests that asked after the queue filled',
    queueFullBeforeAdmitted === 0,
    `${queueFullBeforeAdmitted} served requests asked after a QUEUE_FULL one (first wave)`,
  );
  checks.add(
    'some requests were served, the queue overflowed and waiters timed out (the load was real)',
    ledger.served > 0 && (ledger.rejected.QUEUE_FULL ?? 0) > 0 && (ledger.rejected.ACQUIRE_TIMEOUT ?? 0) > 0,
    formatCodes(ledger.rejected),
  );
  checks.add(
    "server-side connections returned to the pool's own, and to none after close",
    leaks.matched && leaks.leakedAfterClose === 0,
    `server ${leaks.serverCount}, pool ${leaks.poolTotal}, after close ${leaks.leakedAfterClose}`,
  );
  return {
    name: 'load',
    ...ledger.summary(),
    leaked: leaks.leakedWhileOpen + leaks.leakedAfterClose,
    figures: {
      callers: size.callers,
      'pool max': size.max,
      'FIFO inversions': inversions,
      'acquire wait P99 (ms)': Math.round(waits.acquireLatencyP99),
      'slowest call (ms)': Math.round(ledger.slowestMs),
    },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
