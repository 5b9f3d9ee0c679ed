/**
 * Huge statements (issue 14, item 4): a 1.3 MB and a 10 MB statement sent through the pool, through
 * the pool with the OpenTelemetry instrumentation on, and through a plain pg client; how long each
 * blocks the event loop (perf_hooks.monitorEventLoopDelay), how much heap describing one takes, and
 * what the pool still holds after 40 distinct 1 MB statements. Before the fix the pool's sanitizer
 * made a Token object per token (~110 bytes of heap per character: a 10 MB statement ran a 512 MB
 * heap out of memory) and kept every sanitized text whole (40 × 1 MB statements: 41 MB kept).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DatabasePool, describeQuery } from '../../../src/index.js';
import { DESCRIBE_MAX_CHARS } from '../../../src/sql/describe.js';
import { collectGarbage, settledMemory } from '../gc.js';
import { inMemoryOtel } from '../otel.js';
import { CallLedger, Checks, formatCodes, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { adminClient, appName } from '../server.js';

const MB = 1024 * 1024;
/** Longest sanitized text the pool keeps: the cap plus the truncation marker. */
const KEPT_MAX = DESCRIBE_MAX_CHARS + 48;

/** `<head> (v, v, v, …)` of about `chars` characters, one number per item: as token-dense as SQL gets. */
function valueList(head: string, chars: number, seed: number): string {
  const item = `${10_000 + (seed % 80_000)},`;
  const text = `${head} (${item.repeat(Math.ceil(chars / item.length))}0)`;
  text.charCodeAt(text.length - 1); // flatten now: building it is not what is measured
  return text;
}

/** A ~1 MB statement of distinct column names (nothing collapses); the server rejects it at its first word. */
function wideStatement(k: number): string {
  const cols: string[] = [];
  let len = 0;
  for (let i = 0; len < MB; i++) {
    const c = `c${k}_${i}`;
    cols.push(c);
    len += c.length + 2;
  }
  const text = `SELEC ${cols.join(', ')} FROM t${k}`;
  text.charCodeAt(text.length - 1);
  return text;
}

/** The longest the event loop stalled (ms) while `fn` ran. */
async function longestStall(fn: () => Promise<unknown>): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  try {
    await fn();
    // One more turn so a stall at the very end is sampled.
    await new Promise((r) => setTimeout(r, 5));
  } finally {
    h.disable();
  }
  return h.max / 1e6;
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

export async function hugeStatementsScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const ledger = new CallLedger();
  const checks = new Checks();
  const figures: Record<string, string | number> = {};
  const REPEAT = 3;
  // The server accepts the 1.3 MB statement (an IN list it parses) and rejects the 10 MB one at its
  // first word (syntax error 42601): the attack's case, and no 10 MB IN list to plan server-side.
  const sizes = [
    { label: '1.3 MB', text: (k: number) => valueList('SELECT 1 AS one WHERE 0 IN', 1_300_000, k) },
    { label: '10 MB', text: (k: number) => valueList('SELEC 1 WHERE 0 IN', 10_000_000, k) },
  ];
  const db = new DatabasePool({
    pools: {
      main: {
        connection: { connectionString: ctx.databaseUrl },
        max: 1,
        min: 0,
        slowQueryThresholdMs: 1,
        queryTimeoutMs: 60_000,
        applicationName: appName('huge'),
      },
    },
    logger: null,
  });
  const plain = await adminClient(ctx.databaseUrl, appName('huge-plain'));
  try {
    // Warm both paths (JIT, connection) on a small statement first.
    describeQuery(valueList('SELECT 1 WHERE 0 IN', 200_000, 1));
    await db.query('main', 'SELECT 1');
    await plain.query('SELECT 1');

    // ---- event-loop stalls: plain pg, the pool, the pool with OpenTelemetry on
    const stalls: Record<string, Record<string, number>> = {};
    const measure = async (path: string, send: (sql: string) => Promise<unknown>) => {
      for (const size of sizes) {
        let worst = 0;
        for (let i = 0; i < REPEAT; i++) {
          const sql = size.text(i + 1);
          worst = Math.max(worst, await longestStall(() => ledger.track(() => send(sql), 60_000)));
        }
        (stalls[path] ??= {})[size.label] = worst;
        figures[`stall ${size.label} ${path} (ms)`] = round(worst);
        ctx.log(`  ${path}: ${size.label} statement stalls the event loop ${worst.toFixed(1)} ms at most (${REPEAT} runs)`);
      }
    };
    await measure('plain pg', (sql) => plain.query(sql));
    await measure('pool', (sql) => db.query('main', sql));
    const otel = inMemoryOtel();
    try {
      await measure('pool + OTel', (sql) => db.query('main', sql));
    } finally {
      await otel.shutdown();
    }
    for (const path of ['pool', 'pool + OTel']) {
      for (const [label, budget, before] of [
        ['1.3 MB', 100, 'before the fix: 240–270 ms vs 7–32 ms'],
        ['10 MB', 500, 'before the fix: seconds, or out of heap below ~1 GB'],
      ] as const) {
        const extra = stalls[path]![label]! - stalls['plain pg']![label]!;
        checks.add(
          `${path}: a ${label} statement stalls the event loop at most ${budget} ms longer than plain pg`,
          extra < budget,
          `${stalls[path]![label]!.toFixed(1)} ms vs ${stalls['plain pg']![label]!.toFixed(1)} ms (${before})`,
        );
      }
    }
    const codes = ledger.unexpected(['42601']);
    checks.add(
      "every huge statement ended in a result or the server's 42601",
      codes.length === 0 && ledger.hung === 0,
      `rejected: ${formatCodes(ledger.rejected)}, hung ${ledger.hung}`,
    );

    // ---- heap taken by describing a 10 MB statement (no collection in between: what it allocated and kept live)
    const tenMb = (() => sizes[1]!.text(99))();
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    const d = describeQuery(tenMb);
    const grownMb = (process.memoryUsage().heapUsed - before) / MB;
    figures['heap to describe 10 MB (MB)'] = round(grownMb, 2);
    checks.add(
      'describing a 10 MB statement takes under 16 MB of heap',
      grownMb < 16,
      `${grownMb.toFixed(2)} MB (before the fix: ~110 bytes per character, ~1 GB)`,
    );
    checks.add(
      'its sanitized text is capped and says so',
      d.sanitized.length <= KEPT_MAX && d.sanitized.endsWith(`...[truncated, ${tenMb.length} chars]`),
      `${d.sanitized.length} chars, ends ${JSON.stringify(d.sanitized.slice(-40))}`,
    );

    // ---- what the pool keeps after 40 distinct 1 MB statements
    const base = await settledMemory();
    for (let k = 0; k < 40; k++) {
      // In a function: no 1 MB temporary stays in this frame's registers.
      await (async () => ledger.track(() => db.query('main', wideStatement(k)), 30_000))();
    }
    const after = await settledMemory();
    const retainedMb = after.heapMb - base.heapMb;
    figures['heap kept after 40 × 1 MB statements (MB)'] = round(retainedMb, 2);
    checks.add('40 distinct 1 MB statements leave under 4 MB in the pool', retainedMb < 4, `${retainedMb.toFixed(2)} MB (before the fix: ~41 MB)`);
    const kept = [
      ...db.getQueryMetrics('main', { limit: 1_000 }).topStatements.map((s) => s.text),
      ...db.getSlowQueries('main', { limit: 1_000 }).map((q) => q.text),
      ...db.getConnectionDetails('main').map((c) => c.lastQuery ?? ''),
    ];
    const longest = Math.max(...kept.map((s) => s.length));
    figures['longest text kept (chars)'] = longest;
    checks.add('every text the pool keeps or shows is capped', longest <= KEPT_MAX, `longest ${longest} chars, cap ${KEPT_MAX}`);
    const wide = db.getQueryMetrics('main', { limit: 1_000 }).topStatements.filter((s) => s.text.startsWith('SELEC c'));
    checks.add('the 40 statements stay 40 distinct fingerprints', new Set(wide.map((s) => s.fingerprint)).size === 40, `${wide.length} listed`);

    const ok = await ledger.track(() => db.query('main', 'SELECT 1 AS one'), 10_000);
    checks.add('the pool serves on', ok.ok, ok.ok ? '' : String(ok.code));
  } finally {
    await ledger.drain();
    await plain.end().catch(() => {});
    await db.close({ drainTimeoutMs: 2_000 });
  }
  return {
    name: 'huge statements',
    ...ledger.summary(),
    leaked: 0,
    figures,
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
