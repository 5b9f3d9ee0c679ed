/**
 * Bookkeeping shared by every scenario: each call is tracked to its end (served, rejected with a
 * code, or hung past its deadline), errors are classified by their stable code, and each scenario
 * reports its figures and the checks it made in one shape ({@link ScenarioResult}) that the
 * `npm run reliability` table and the ava tests both read.
 */
import { DbPoolError } from '../../src/index.js';

/** One invariant a scenario checked. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** What a scenario measured. */
export interface ScenarioResult {
  /** Short name, the row of the summary table. */
  name: string;
  /** Calls made against the pool. */
  requests: number;
  /** Calls that succeeded. */
  served: number;
  /** Calls rejected, by error code (ACQUIRE_TIMEOUT, QUEUE_FULL, a SQLSTATE such as 57P01, ECONNRESET, ...). */
  rejected: Record<string, number>;
  /** Calls not settled by their deadline (every call is bounded by its timeouts plus a margin). */
  hung: number;
  /** Connections left behind: server-side connections beyond the pool's own, loans never returned, connections left open after close. */
  leaked: number;
  /** From the end of the fault to the pool serving again (ms); undefined where there is no fault. */
  recoverMs?: number | undefined;
  /** Further figures worth printing (name → value). */
  figures: Record<string, string | number>;
  checks: Check[];
  durationMs: number;
}

/** The environment a scenario runs in. */
export interface ScenarioContext {
  /** The server under test (DATABASE_URL). */
  databaseUrl: string;
  /** Progress lines (t.log in tests, stderr in the runner). */
  log(line: string): void;
}

/** Codes of unclassifiable errors start with this, so a check can spot them. */
export const UNTYPED = 'untyped:';

/**
 * A stable code for an error: the library's `code` (ACQUIRE_TIMEOUT, ...), a server SQLSTATE
 * (57P01, 28P01, ...), a Node system error code (ECONNRESET, ENOTFOUND, ...), or `untyped: <message>`.
 */
export function errorCode(err: unknown): string {
  if (err instanceof DbPoolError) return err.code;
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (typeof code === 'string' && code.length > 0) return code;
  if (err instanceof TypeError || err instanceof RangeError) return err.name;
  return `${UNTYPED} ${err instanceof Error ? err.message : String(err)}`.slice(0, 120);
}

/** A code whose error is the library's own or carries a stable code. */
export function isTyped(code: string): boolean {
  return !code.startsWith(UNTYPED);
}

export interface CallRecord {
  ok: boolean;
  code?: string;
  error?: unknown;
  ms: number;
  /** Settled after its deadline (or never). */
  hung: boolean;
}

/**
 * Tracks calls to the end. A call still pending at its deadline counts as hung; `drain()` waits for
 * every call, at most `capMs` past the last deadline.
 */
export class CallLedger {
  requests = 0;
  served = 0;
  hung = 0;
  readonly rejected: Record<string, number> = {};
  /** First error seen per code, for messages in checks. */
  readonly samples = new Map<string, unknown>();
  slowestMs = 0;
  readonly #pending = new Set<Promise<unknown>>();
  #lastDeadline = 0;

  /** Runs `fn`, recording how it ended; resolves when it settles or its deadline passes, whichever is first. */
  track<T>(fn: () => Promise<T>, deadlineMs: number): Promise<CallRecord & { value?: T }> {
    this.requests++;
    const t0 = performance.now();
    this.#lastDeadline = Math.max(this.#lastDeadline, Date.now() + deadlineMs);
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const call = (async () => {
      try {
        return { ok: true as const, value: await fn() };
      } catch (error) {
        return { ok: false as const, error };
      }
    })();
    const settled = call.then((r) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      this.slowestMs = Math.max(this.slowestMs, ms);
      if (r.ok) {
        this.served++;
        return { ok: true, ms, hung: late, value: r.value };
      }
      const code = errorCode(r.error);
      this.rejected[code] = (this.rejected[code] ?? 0) + 1;
      if (!this.samples.has(code)) this.samples.set(code, r.error);
      return { ok: false, code, error: r.error, ms, hung: late };
    });
    this.#pending.add(settled);
    void settled.then(() => this.#pending.delete(settled));
    const deadline = new Promise<CallRecord>((resolve) => {
      timer = setTimeout(() => {
        late = true;
        this.hung++;
        resolve({ ok: false, code: 'HUNG', ms: deadlineMs, hung: true });
      }, deadlineMs);
    });
    return Promise.race([settled, deadline]) as Promise<CallRecord & { value?: T }>;
  }

  /** Waits for the calls still running (bounded). Returns how many never settled. */
  async drain(capMs = 5_000): Promise<number> {
    const until = Math.max(this.#lastDeadline, Date.now()) + capMs;
    while (this.#pending.size > 0 && Date.now() < until) {
      await Promise.race([Promise.all(this.#pending), new Promise((r) => setTimeout(r, 50))]);
    }
    return this.#pending.size;
  }

  /** Rejection codes outside `allowed`. */
  unexpected(allowed: readonly (string | RegExp)[]): string[] {
    return Object.keys(this.rejected).filter((c) => !allowed.some((a) => (typeof a === 'string' ? a === c : a.test(c))));
  }

  /** The ledger's share of a {@link ScenarioResult}. */
  summary(): Pick<ScenarioResult, 'requests' | 'served' | 'rejected' | 'hung'> {
    return { requests: this.requests, served: this.served, rejected: { ...this.rejected }, hung: this.hung };
  }
}

/** Collects checks. */
export class Checks {
  readonly list: Check[] = [];
  add(name: string, ok: boolean, detail = ''): boolean {
    this.list.push({ name, ok, detail });
    return ok;
  }
}

/** Polls `check` until it holds or `timeoutMs` passes (waits on the event loop, no fixed sleep). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5_000, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return check();
}

/** `{ ACQUIRE_TIMEOUT: 3, QUEUE_FULL: 5 }` as `ACQUIRE_TIMEOUT 3, QUEUE_FULL 5`. */
export function formatCodes(codes: Record<string, number>): string {
  const e = Object.entries(codes).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? '—' : e.map(([c, n]) => `${c} ${n}`).join(', ');
}

/** A message sample for a code, for check details. */
export function sampleMessage(ledger: CallLedger, code: string): string {
  const e = ledger.samples.get(code);
  return e instanceof Error ? e.message : String(e);
}
