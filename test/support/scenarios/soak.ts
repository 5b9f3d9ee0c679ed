/**
 * Soak: a long run of queries through one process with the OpenTelemetry instrumentation on
 * (spans to a batch processor, metrics collected periodically). Heap and RSS are read after a full
 * GC at every tenth of the run; what must stay flat: the heap after the warm-up, the per-statement
 * table (bounded at 200), the slow-query ring (100), the instrumentation's per-loan and per-pool
 * maps, and the span processor's queue. The mix has one hot statement, thousands of texts that
 * differ only in a literal (one fingerprint), tens of thousands of distinct statements, slow ones
 * and failing ones.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { DbPoolInstrumentation } from '../../../instrumentations/index.js';
import { DatabasePool } from '../../../src/index.js';
import { settledMemory } from '../gc.js';
import { PullMetricReader, useAsyncContext } from '../otel.js';
import { accountLeaks, adminClient, appName } from '../server.js';
import { CallLedger, Checks, formatCodes, type ScenarioContext, type ScenarioResult } from '../outcomes.js';

export interface SoakSize {
  queries: number;
  /** Callers running queries concurrently (the pool has 10 connections). */
  workers: number;
  /** Heap growth allowed from the end of the warm-up to the end (MB). */
  heapBoundMb: number;
  /** RSS growth allowed over the same span (MB). */
  rssBoundMb: number;
}

export const SOAK_FULL: SoakSize = { queries: 1_000_000, workers: 24, heapBoundMb: 8, rssBoundMb: 64 };
export const SOAK_CI: SoakSize = { queries: 20_000, workers: 24, heapBoundMb: 8, rssBoundMb: 64 };

/** Counts spans and lets them go (an exporter that keeps nothing). */
class CountingExporter implements SpanExporter {
  exported = 0;
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.exported += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
  async forceFlush(): Promise<void> {}
}

function statement(i: number): { text: string; values: unknown[] } {
  const r = i % 1000;
  if (r < 700) return { text: 'SELECT $1::int AS n', values: [i] };
  if (r < 900) return { text: `SELECT ${i % 5_000} AS k, $1::int AS n`, values: [i] }; // one fingerprint, 5 000 texts
  if (r < 990) return { text: `SELECT $1::int AS c${i % 20_000}`, values: [i] }; // 20 000 distinct statements
  if (r < 998) return { text: 'SELECT pg_sleep(0.025), $1::int AS n', values: [i] }; // slow (threshold 20 ms)
  return { text: 'SELECT 1 / ($1::int - $1::int) AS boom', values: [i] }; // 22012 division by zero
}

export async function soakScenario(ctx: ScenarioContext, size: SoakSize): Promise<ScenarioResult> {
  const started = performance.now();
  useAsyncContext();
  const exporter = new CountingExporter();
  const spanProcessor = new BatchSpanProcessor(exporter, { maxQueueSize: 2_048, scheduledDelayMillis: 200 });
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [spanProcessor] });
  const reader = new PullMetricReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const instrumentation = new DbPoolInstrumentation();
  instrumentation.setTracerProvider(tracerProvider);
  instrumentation.setMeterProvider(meterProvider);
  instrumentation.enable();

  const app = appName('soak');
  const db = new DatabasePool({
    pools: {
      soak: {
        connection: { connectionString: ctx.databaseUrl },
        max: 10,
        min: 10,
        acquireTimeoutMs: 10_000,
        queryTimeoutMs: 10_000,
        slowQueryThresholdMs: 20,
        applicationName: app,
      },
    },
    logger: null,
  });
  const admin = await adminClient(ctx.databaseUrl);
  const checks = new Checks();
  const ledger = new CallLedger();
  const samples: { at: number; heapMb: number; rssMb: number }[] = [];
  const tenth = Math.max(1, Math.floor(size.queries / 10));
  let next = 0;
  let maxQueue = 0;
  let maxLoanTraces = 0;
  const internals = instrumentation as unknown as { _loanTraces?: Map<number, unknown>; _poolAttrs?: Map<string, unknown> };
  const processorQueue = () => (spanProcessor as unknown as { _finishedSpans?: unknown[] })._finishedSpans?.length ?? 0;
  const expectedErrors = { n: 0 };

  ctx.log(`soak: ${size.queries} queries, ${size.workers} workers, pool of 10, instrumentation on`);
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= size.queries) return;
      const { text, values } = statement(i);
      if (text.includes('boom')) expectedErrors.n++;
      await ledger.track(() => db.query('soak', text, values), 25_000);
      if (i % tenth === tenth - 1) {
        maxQueue = Math.max(maxQueue, processorQueue());
        maxLoanTraces = Math.max(maxLoanTraces, internals._loanTraces?.size ?? 0);
        await reader.collect(); // a metrics export, as a periodic reader would
        const m = await settledMemory();
        samples.push({ at: i + 1, ...m });
        ctx.log(`soak: ${i + 1} queries, heap ${m.heapMb.toFixed(1)} MB, rss ${m.rssMb.toFixed(1)} MB`);
      }
    }
  };
  await Promise.all(Array.from({ length: size.workers }, worker));
  await ledger.drain();
  await spanProcessor.forceFlush();

  const qm = db.getQueryMetrics('soak', { limit: 1_000 });
  const slow = db.getSlowQueries('soak', { limit: 1_000 });
  const dm = db.getDetailedMetrics('soak');
  const leaks = await accountLeaks(db, 'soak', app, admin);
  await admin.end();
  instrumentation.disable();
  await tracerProvider.shutdown();
  await meterProvider.shutdown();

  const warm = samples[0];
  const mid = samples[Math.floor((samples.length - 1) / 2)];
  const last = samples[samples.length - 1];
  const heapDrift = warm && last ? last.heapMb - warm.heapMb : NaN;
  const rssDrift = warm && last ? last.rssMb - warm.rssMb : NaN;
  const secondHalfHeap = mid && last ? last.heapMb - mid.heapMb : NaN;
  const expectedSpans = 2 * size.queries; // acquire + query per call on a warm pool (min = max: no connects)

  checks.add(
    'every query answered: served, or 22012 for the ones built to fail',
    ledger.unexpected(['22012']).length === 0 && (ledger.rejected['22012'] ?? 0) === expectedErrors.n,
    formatCodes(ledger.rejected),
  );
  checks.add('no query hung', ledger.hung === 0, `slowest ${Math.round(ledger.slowestMs)} ms`);
  checks.add(
    `heap drift after warm-up within ${size.heapBoundMb} MB`,
    heapDrift < size.heapBoundMb,
    `${heapDrift.toFixed(2)} MB (${samples.map((s) => s.heapMb.toFixed(1)).join(' → ')})`,
  );
  checks.add(`RSS drift after warm-up within ${size.rssBoundMb} MB`, rssDrift < size.rssBoundMb, `${rssDrift.toFixed(1)} MB`);
  checks.add(
    'per-statement table stays at its bound (200)',
    qm.statementsTracked <= 200 && qm.topStatements.length <= 200,
    `${qm.statementsTracked} tracked, ${qm.statementsEvicted} evicted`,
  );
  checks.add(
    'slow-query ring stays at its bound (100)',
    slow.length <= 100 && dm.totals.slowQueries > 100,
    `${slow.length} kept of ${dm.totals.slowQueries} slow`,
  );
  checks.add('errors-by-code map stays small', Object.keys(qm.errorsByCode).length <= 64, JSON.stringify(qm.errorsByCode));
  checks.add(
    'instrumentation maps bounded (loans by connection, pools)',
    maxLoanTraces <= 10 && (internals._poolAttrs?.size ?? 0) <= 1,
    `loan traces ≤ ${maxLoanTraces}, pool attrs ${internals._poolAttrs?.size}`,
  );
  checks.add(
    'span processor queue bounded, every span exported',
    maxQueue <= 2_048 && exporter.exported >= expectedSpans,
    `queue ≤ ${maxQueue}; ${exporter.exported} spans exported of ${expectedSpans} expected`,
  );
  checks.add(
    "server-side connections returned to the pool's own, and to none after close",
    leaks.matched && leaks.leakedAfterClose === 0,
    `server ${leaks.serverCount}, pool ${leaks.poolTotal}, after close ${leaks.leakedAfterClose}`,
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    name: 'soak',
    ...ledger.summary(),
    leaked: leaks.leakedWhileOpen + leaks.leakedAfterClose,
    figures: {
      'queries/s': Math.round(size.queries / seconds),
      'heap drift (MB)': heapDrift.toFixed(2),
      'heap drift, 2nd half (MB)': secondHalfHeap.toFixed(2),
      'RSS drift (MB)': rssDrift.toFixed(1),
      'spans exported': exporter.exported,
      'statements tracked / evicted': `${qm.statementsTracked} / ${qm.statementsEvicted}`,
      'slow queries kept / seen': `${slow.length} / ${dm.totals.slowQueries}`,
    },
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
