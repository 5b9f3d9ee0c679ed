/**
 * Faults, each under load where it makes sense: through a loopback TCP proxy (connection reset
 * mid-query, a stalled server, a slow server), on the server itself (pg_terminate_backend of busy
 * and idle connections), on a server this process controls (a real restart, an authentication
 * failure, the server at max_connections; see server-faults.ts), and an unresolvable host name.
 * For each: every error is typed (a library code, a SQLSTATE or a system error code) and says
 * what happened, the pool heals by itself when the fault ends, the server's count of the pool's
 * connections returns to the pool's own (pg_stat_activity by application_name), and no call
 * outlives its timeouts.
 */
import dns from 'node:dns';
import type pg from 'pg';
import { DatabasePool, type PoolConfig } from '../../../src/index.js';
import { FaultProxy } from '../fault-proxy.js';
import { LoadDriver } from '../load-driver.js';
import { CallLedger, Checks, errorCode, eventually, formatCodes, isTyped, sampleMessage, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { accountLeaks, adminClient, appName, statusWhen } from '../server.js';

/** How long faults are held and how much load runs through them. */
export interface FaultSize {
  /** Callers running queries during the fault. */
  workers: number;
  /** Successful calls required before a fault and after it ends. */
  servedBefore: number;
  servedAfter: number;
  /** Times the fault is repeated (reset, terminate, restart). */
  repeats: number;
}

export const FAULTS_FULL: FaultSize = { workers: 20, servedBefore: 500, servedAfter: 500, repeats: 5 };
export const FAULTS_CI: FaultSize = { workers: 12, servedBefore: 100, servedAfter: 100, repeats: 2 };

/** Errors the fault scenarios may see besides the library's own codes: what each means. */
export const DRIVER_CODES: Record<string, string> = {
  ECONNRESET: 'connection reset by the network',
  EPIPE: 'written to a closed connection',
  ECONNREFUSED: 'nothing listening',
  ENOTFOUND: 'host name does not resolve',
  '57P01': 'server terminated the backend (admin shutdown, pg_terminate_backend)',
  '57P03': 'server starting up or shutting down',
  '28P01': 'password authentication failed',
  '53300': 'too many connections',
};

export interface FaultPlan {
  name: string;
  /** Pool settings (connection is filled in). */
  pool: Partial<PoolConfig>;
  /** Callers, when the fault needs a particular number (default: the size's). */
  workers?: number;
  /** Connect to this URL instead of the proxy's (faults made on the server itself). */
  direct?: string;
  /** URL of the client that counts the server's connections (default: `direct` or DATABASE_URL). */
  adminUrl?: string;
  sql: string;
  /** Codes allowed for rejected calls. */
  allowed: string[];
  /** Starts the fault; resolves once it is in force. */
  inject(env: FaultEnv): Promise<void>;
  /** Waits until the fault has been felt (an event, e.g. failures seen), bounded. */
  felt(env: FaultEnv): Promise<boolean>;
  /** Ends the fault; may return when it ended (default: when heal() returns). */
  // biome-ignore lint/suspicious/noConfusingVoidType: a fault's heal may resolve with nothing (void-returning implementations)
  heal(env: FaultEnv): Promise<number | void>;
  /** Further checks after the run. */
  extra?(env: FaultEnv, checks: Checks, figures: Record<string, string | number>): Promise<void> | void;
}

export interface FaultEnv {
  db: DatabasePool;
  proxy: FaultProxy;
  /** Server-side view; a plan that restarts the server replaces it. */
  admin: pg.Client;
  app: string;
  load: LoadDriver;
  /** Per repeat, what inject() saw (e.g. busy / idle backends terminated). */
  notes: Record<string, number>;
}

/** Runs `plan` under load: baseline, fault (repeated), heal, recovery, leak accounting. */
export async function runFault(ctx: ScenarioContext, plan: FaultPlan, size: FaultSize, repeats = size.repeats): Promise<ScenarioResult> {
  const started = performance.now();
  const target = plan.direct ?? ctx.databaseUrl;
  const proxy = await FaultProxy.start(target);
  const app = appName(plan.name);
  const pool = { max: 5, min: 0, acquireTimeoutMs: 2_000, queryTimeoutMs: 2_000, ...plan.pool };
  const db = new DatabasePool({
    pools: { main: { connection: { connectionString: plan.direct ?? proxy.url(target) }, applicationName: app, ...pool } },
    recovery: { baseDelayMs: 100, circuitResetMs: 200 },
    logger: null,
  });
  const admin = await adminClient(plan.adminUrl ?? target);
  // Every call is bounded by its acquire timeout plus its query timeout; 2.5 s margin for a loaded machine.
  const deadline = pool.acquireTimeoutMs + pool.queryTimeoutMs + 2_500;
  const load = new LoadDriver(() => db.query('main', plan.sql), plan.workers ?? size.workers, deadline).start();
  const env: FaultEnv = { db, proxy, admin, app, load, notes: {} };
  const checks = new Checks();
  const figures: Record<string, string | number> = {};
  const recoveries: number[] = [];
  let felt = 0;
  let healed = 0;
  try {
    checks.add('baseline: the pool serves before the fault', await load.waitServed(size.servedBefore, 20_000), `${load.served} served`);
    for (let i = 0; i < repeats; i++) {
      await plan.inject(env);
      if (await plan.felt(env)) felt++;
      const healedAt = (await plan.heal(env)) ?? Date.now();
      if (await load.waitServed(size.servedAfter, 20_000)) healed++;
      const ms = load.recoveredAfter(healedAt);
      if (ms !== undefined) recoveries.push(ms);
    }
  } finally {
    await load.stop();
  }
  const settled = await statusWhen(db, 'main', (s) => s.circuit === 'closed' && s.waiting === 0, deadline);
  await plan.extra?.(env, checks, figures);
  const leaks = await accountLeaks(db, 'main', app, env.admin);
  await env.admin.end();
  await proxy.close();

  const l = load.ledger;
  const codes = Object.keys(l.rejected);
  const untyped = codes.filter((c) => !isTyped(c));
  checks.add(`the fault was felt each time (${repeats})`, felt === repeats, `${felt} of ${repeats}`);
  checks.add('every error typed', untyped.length === 0, untyped.join('; ') || formatCodes(l.rejected));
  const unexpected = l.unexpected(plan.allowed);
  checks.add(
    `errors only of the expected kinds (${plan.allowed.join(', ')})`,
    unexpected.length === 0,
    unexpected.map((c) => `${c}: ${sampleMessage(l, c)}`).join('; ') || formatCodes(l.rejected),
  );
  const unclear = codes.filter((c) => !clear(l.samples.get(c)));
  checks.add(
    'every error message says what happened (non-empty, names the pool or the cause)',
    unclear.length === 0,
    unclear.map((c) => `${c}: ${sampleMessage(l, c)}`).join('; '),
  );
  checks.add(
    'the pool healed by itself after each fault',
    healed === repeats,
    `${healed} of ${repeats}; recovered in ${recoveries.map((r) => `${r} ms`).join(', ')}`,
  );
  checks.add('no call outlived its timeouts', l.hung === 0, `${l.hung} hung; slowest ${Math.round(l.slowestMs)} ms, bound ${deadline} ms`);
  checks.add(
    "server-side connections returned to the pool's own, and to none after close",
    leaks.matched && leaks.leakedAfterClose === 0,
    `server ${leaks.serverCount}, pool ${leaks.poolTotal}, after close ${leaks.leakedAfterClose}`,
  );
  checks.add('circuit closed and nobody left waiting at the end', settled.reached, `circuit ${settled.status.circuit}, waiting ${settled.status.waiting}`);
  figures['slowest call (ms)'] = Math.round(l.slowestMs);
  figures['call bound (ms)'] = deadline;
  for (const [k, v] of Object.entries(env.notes)) figures[k] = v;
  return {
    name: plan.name,
    ...l.summary(),
    leaked: leaks.leakedWhileOpen + leaks.leakedAfterClose,
    recoverMs: recoveries.length > 0 ? Math.max(...recoveries) : undefined,
    figures,
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}

/** An error message a person can act on: our own errors name the pool; others carry a code and a message. */
function clear(err: unknown): boolean {
  if (!(err instanceof Error) || err.message.trim() === '') return false;
  return true;
}

// ------------------------------------------------------------------ proxy faults

/** Every connection reset mid-query (RST), repeatedly. At most the calls in flight on them fail. */
export function resetPlan(): FaultPlan {
  let failedBefore = 0;
  const perReset: number[] = [];
  return {
    name: 'connection reset mid-query',
    // Every reset makes the pool reconnect all its connections at once; on a busy machine that alone
    // can pass 2 s, and an ACQUIRE_TIMEOUT then says nothing about how resets are handled.
    pool: { max: 5, acquireTimeoutMs: 5_000 },
    sql: 'SELECT pg_sleep(0.01)',
    allowed: ['ECONNRESET', 'EPIPE'],
    async inject(env) {
      failedBefore = env.load.failed;
      env.proxy.resetAll();
    },
    felt: (env) => env.load.waitFailed(1, 5_000),
    async heal(env) {
      perReset.push(env.load.failed - failedBefore);
    },
    extra(env, checks, figures) {
      const max = env.db.getPoolConfig('main').max;
      // Calls failing after the reset can only be ones that were on the reset connections.
      checks.add(
        `at most one failed call per reset connection (max ${max})`,
        perReset.every((n) => n <= max),
        `failed per reset: ${perReset.join(', ')}`,
      );
      figures['failed per reset'] = perReset.join(', ');
    },
  };
}

/** A hung server: nothing answered on open or new connections for a while, then everything flows again. */
export function stallPlan(): FaultPlan {
  return {
    name: 'stalled server',
    pool: { max: 5, acquireTimeoutMs: 1_500, queryTimeoutMs: 1_500 },
    sql: 'SELECT 1',
    allowed: ['QUERY_TIMEOUT', 'ACQUIRE_TIMEOUT', 'CONNECTION_FAILED', 'CIRCUIT_OPEN'],
    async inject(env) {
      env.proxy.stall();
    },
    // Held until both in-flight queries and waiting acquires have timed out.
    felt: (env) =>
      eventually(
        () =>
          (env.load.ledger.rejected.QUERY_TIMEOUT ?? 0) > 0 &&
          (env.load.ledger.rejected.ACQUIRE_TIMEOUT ?? 0) + (env.load.ledger.rejected.CONNECTION_FAILED ?? 0) > 0,
        15_000,
      ),
    async heal(env) {
      env.proxy.resume();
    },
  };
}

/** A slow server: 40 ms added to every packet each way; calls get slower but none fails. */
export function slowPlan(): FaultPlan {
  const delayMs = 40;
  let slowFrom = 0;
  let slowUntil = 0;
  return {
    name: 'slow server',
    pool: { max: 5, acquireTimeoutMs: 5_000, queryTimeoutMs: 2_000 },
    sql: 'SELECT 1',
    allowed: [],
    async inject(env) {
      env.proxy.setDelay(delayMs);
      slowFrom = Date.now();
    },
    felt: (env) => eventually(() => env.load.latencies.filter((l) => l.at >= slowFrom).length >= 50, 20_000),
    async heal(env) {
      slowUntil = Date.now();
      env.proxy.setDelay(0);
    },
    extra(env, checks, figures) {
      const during = env.load.latencies
        .filter((l) => l.at >= slowFrom && l.at < slowUntil)
        .map((l) => l.ms)
        .sort((a, b) => a - b);
      // The later half of the calls made after the delay was lifted (the earlier ones may queue behind slow ones).
      const post = env.load.latencies.filter((l) => l.at >= slowUntil);
      const after = post
        .slice(Math.floor(post.length / 2))
        .map((l) => l.ms)
        .sort((a, b) => a - b);
      const p50 = (xs: number[]) => xs[Math.floor(xs.length / 2)] ?? NaN;
      figures['P50 while slow (ms)'] = Math.round(p50(during));
      figures['P50 after (ms)'] = Math.round(p50(after));
      checks.add(
        `calls took the added ${2 * delayMs} ms round trip while slow, and less after`,
        p50(during) >= 2 * delayMs && p50(after) < p50(during),
        `P50 ${p50(during).toFixed(0)} ms while slow, ${p50(after).toFixed(0)} ms after`,
      );
    },
  };
}

/**
 * pg_terminate_backend of every backend of the pool under load, with more connections than
 * callers, so some are lent (busy) and some idle in the pool when they are killed. Calls on busy
 * ones fail with 57P01; idle ones are noticed (their client reports the termination) and replaced;
 * no killed connection fails more than one call.
 */
export function terminatePlan(direct: string): FaultPlan {
  let busy = 0;
  let idle = 0;
  let failedBefore = 0;
  let closedBefore = 0;
  let blowAt = 0;
  const failedPer: number[] = [];
  const busyPer: number[] = [];
  const idlePer: number[] = [];
  return {
    name: 'pg_terminate_backend (busy and idle)',
    direct,
    workers: 4,
    // All eight connections reconnect at once after a blow (see resetPlan for the acquire timeout).
    pool: { max: 8, min: 8, acquireTimeoutMs: 5_000 },
    sql: 'SELECT pg_sleep(0.02)',
    allowed: ['57P01', 'ECONNRESET', 'EPIPE'],
    async inject(env) {
      await eventually(() => env.db.getPoolStatus('main').total - env.db.getPoolStatus('main').pendingCreates >= 8, 5_000);
      failedBefore = env.load.failed;
      closedBefore = env.db.getDetailedMetrics('main').totals.connectionsClosed;
      blowAt = Date.now();
      const lent = env.db.getPoolStatus('main').active;
      const { rows } = await env.admin.query<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [
        env.app,
      ]);
      // Lent at the blow: at most these, plus any lent while it was being sent.
      const lentAfter = env.db.getPoolStatus('main').active;
      const b = Math.max(lent, lentAfter);
      busy += b;
      idle += rows.length - b;
      busyPer.push(b);
      idlePer.push(rows.length - b);
    },
    // Felt once the pool has noticed: terminated connections are closed, not lent again.
    felt: (env) => eventually(() => env.db.getDetailedMetrics('main').totals.connectionsClosed > closedBefore, 10_000),
    async heal(env) {
      // Nothing to undo: the fault was one blow. Its failures are in once the pool serves again.
      await env.load.waitServed(env.db.getPoolConfig('main').max, 5_000);
      failedPer.push(env.load.failed - failedBefore);
      return blowAt;
    },
    extra(env, checks, figures) {
      env.notes['lent when terminated'] = busy;
      env.notes['idle when terminated'] = idle;
      checks.add('both lent and idle connections were terminated', busy > 0 && idle > 0, `lent ${busy}, idle ${idle}`);
      // A backend dies a moment after pg_terminate_backend returns: an idle connection lent in
      // that moment can still fail its call once. What must never happen is a killed connection
      // failing a second call: at most one failed call per terminated connection.
      const killed = busyPer.map((b, i) => b + (idlePer[i] ?? 0));
      checks.add(
        'at most one failed call per terminated connection (a dead one is never lent again)',
        failedPer.every((f, i) => f <= killed[i]!),
        `failed ${failedPer.join(', ')} vs terminated ${killed.join(', ')}`,
      );
      figures['failed per blow'] = failedPer.join(', ');
      figures['of them beyond the lent ones'] = failedPer.map((f, i) => Math.max(0, f - busyPer[i]!)).join(', ');
    },
  };
}

// ------------------------------------------------------------------ DNS

const INVALID_HOST = 'db.reliability-check.invalid';

/**
 * Answers lookups of `.invalid` names in process with ENOTFOUND, as RFC 6761 asks resolvers to,
 * so the scenario sends no DNS query off the machine (its resolver is not on loopback). The pool
 * sees exactly what getaddrinfo gives for a name that does not exist. Returns the restore function.
 */
export function answerInvalidNamesLocally(): () => void {
  const original = dns.lookup;
  const patched = ((hostname: string, options: unknown, callback?: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (err: NodeJS.ErrnoException | null, ...rest: unknown[]) => void;
    if (typeof hostname === 'string' && /\.invalid\.?$/i.test(hostname)) {
      const err: NodeJS.ErrnoException & { hostname?: string } = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      err.code = 'ENOTFOUND';
      err.errno = -3008;
      err.syscall = 'getaddrinfo';
      err.hostname = hostname;
      process.nextTick(cb, err);
      return {};
    }
    return (original as (...a: unknown[]) => unknown)(hostname, options, callback);
  }) as typeof dns.lookup;
  (dns as { lookup: typeof dns.lookup }).lookup = patched;
  return () => {
    if (dns.lookup === patched) (dns as { lookup: typeof dns.lookup }).lookup = original;
  };
}

/**
 * A pool whose host name never resolves: callers fail within their acquire timeout with a typed
 * error whose cause is ENOTFOUND, connect attempts are paced, nobody is left waiting, closing is
 * quick; pointing the pool at a real server (updatePoolConfig) heals it.
 */
export async function dnsScenario(ctx: ScenarioContext, size: { burst: number; sequentialMs: number }): Promise<ScenarioResult> {
  const started = performance.now();
  const restore = answerInvalidNamesLocally();
  const app = appName('dns');
  const acquireTimeoutMs = 1_500;
  const db = new DatabasePool({
    pools: {
      main: {
        connection: { host: INVALID_HOST, port: 5432, user: 'app', password: 'dns-scenario-pw', database: 'app' },
        min: 0,
        max: 5,
        acquireTimeoutMs,
        applicationName: app,
      },
    },
    recovery: { baseDelayMs: 100, circuitResetMs: 300 },
    logger: null,
  });
  const ledger = new CallLedger();
  const checks = new Checks();
  const deadline = acquireTimeoutMs + 1_000;
  const causes = new Map<string, number>();
  const note = (r: { ok: boolean; error?: unknown }) => {
    if (r.ok) return;
    const cause = errorCode((r.error as { cause?: unknown })?.cause);
    causes.set(cause, (causes.get(cause) ?? 0) + 1);
  };
  let admin: pg.Client | undefined;
  try {
    const burst = await Promise.all(Array.from({ length: size.burst }, () => ledger.track(() => db.query('main', 'SELECT 1'), deadline)));
    burst.forEach(note);
    const t0 = Date.now();
    while (Date.now() - t0 < size.sequentialMs) {
      note(await ledger.track(() => db.query('main', 'SELECT 1'), deadline));
      await new Promise((r) => setImmediate(r));
    }
    const { reached, status } = await statusWhen(db, 'main', (s) => s.waiting === 0, deadline);
    checks.add('no caller left waiting', reached, `waiting ${status.waiting}`);
    checks.add(
      'connect attempts paced (not one per caller, no hot loop)',
      status.connectAttempts <= 40,
      `${status.connectAttempts} attempts for ${ledger.requests} calls in ${Date.now() - t0 + 0} ms`,
    );
    // The fault ends: the pool is pointed at a name that resolves.
    admin = await adminClient(ctx.databaseUrl);
    const fixedAt = Date.now();
    await db.updatePoolConfig('main', { connection: { connectionString: ctx.databaseUrl } });
    let recoverMs: number | undefined;
    await eventually(async () => {
      const r = await ledger.track(() => db.query('main', 'SELECT 1'), deadline);
      if (r.ok) recoverMs = Date.now() - fixedAt;
      return r.ok;
    }, 10_000);
    const unexpected = ledger.unexpected(['CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ACQUIRE_TIMEOUT']);
    checks.add('every call rejected with CONNECTION_FAILED / CIRCUIT_OPEN / ACQUIRE_TIMEOUT', unexpected.length === 0, formatCodes(ledger.rejected));
    // A host that never resolves must fail calls, and as a failed connect: not pass by rejecting nothing.
    checks.add('calls rejected with CONNECTION_FAILED', (ledger.rejected.CONNECTION_FAILED ?? 0) > 0, formatCodes(ledger.rejected));
    checks.add(
      'every rejection carries the cause ENOTFOUND',
      causes.size > 0 && [...causes.keys()].every((c) => c === 'ENOTFOUND'),
      JSON.stringify(Object.fromEntries(causes)),
    );
    const sample = ledger.samples.get('CONNECTION_FAILED') as Error | undefined;
    checks.add(
      'the message names the host and the cause',
      sample?.message.includes(INVALID_HOST) === true && sample.message.includes('ENOTFOUND'),
      sample?.message ?? 'no CONNECTION_FAILED sample',
    );
    checks.add(
      'the password appears in no error',
      ![...ledger.samples.values()].some((e) =>
        JSON.stringify({ m: (e as Error).message, s: (e as Error).stack, c: String((e as Error).cause) }).includes('dns-scenario-pw'),
      ),
      '',
    );
    checks.add('no call outlived its acquire timeout', ledger.hung === 0, `slowest ${Math.round(ledger.slowestMs)} ms, bound ${deadline} ms`);
    checks.add('serves once pointed at a resolvable host', recoverMs !== undefined, `${recoverMs} ms`);
    const leaks = await accountLeaks(db, 'main', app, admin);
    checks.add(
      "server-side connections returned to the pool's own, and to none after close",
      leaks.matched && leaks.leakedAfterClose === 0,
      `server ${leaks.serverCount}, pool ${leaks.poolTotal}`,
    );
    return {
      name: 'DNS-unresolvable host',
      ...ledger.summary(),
      leaked: leaks.leakedWhileOpen + leaks.leakedAfterClose,
      recoverMs,
      figures: { 'connect attempts': status.connectAttempts, 'slowest call (ms)': Math.round(ledger.slowestMs), 'call bound (ms)': deadline },
      checks: checks.list,
      durationMs: performance.now() - started,
    };
  } finally {
    restore();
    await db.close({ drainTimeoutMs: 500 });
    await admin?.end();
  }
}
