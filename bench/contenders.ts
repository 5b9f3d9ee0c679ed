/**
 * The pools compared, each set up the way its users would, at its own defaults except `max: 10`.
 * Modules are imported lazily, inside the worker process of one contender: instrumentation-pg must
 * patch `pg` before anything loads it, and no contender should pay for another's modules.
 */
import { createRequire } from 'node:module';
import type { BenchSdk, ServiceSdk } from './otel.js';
import { SETUP_LABEL, TRACE_SETUPS, type TraceSetup } from './setups.js';
import { StubClient } from './stub-client.js';

const require = createRequire(import.meta.url);

export const POOL_MAX = 10;
/** The parameterized case: a primary-key lookup in a 1 000-row table the runner creates. */
export const ITEMS_TABLE = 'db_pool_bench_items';
export const ITEMS = 1_000;
const PARAM_SQL = `SELECT id, name, price FROM ${ITEMS_TABLE} WHERE id = $1`;
const PARAM_SQL_KNEX = `SELECT id, name, price FROM ${ITEMS_TABLE} WHERE id = ?`;
/** Where stub-backed pools "connect" (nothing listens; the stub never dials). */
const STUB_URL = 'postgres://bench@127.0.0.1:9/bench';

/** What one operation is. */
export type OpKind =
  /** acquire + release, no statement */
  | 'cycle'
  | 'select1'
  | 'param'
  /** one of `distinct` different statements (stub-backed pools only) */
  | 'distinct';

export interface OpParams {
  kind: OpKind;
  /** Number of different statements for 'distinct'. */
  distinct?: number;
}

export interface Contender {
  /** One operation; `caller` spreads callers over pools when there are several. */
  op(params: OpParams): (caller: number, i: number) => Promise<unknown>;
  spans?(): { exported: number; dropped: number; bytes?: number };
  /** Anything the contender wants shown about itself after a run (statement table size, ...). */
  facts?(): Record<string, number>;
  scrape?(): Promise<{ ms: number; bytes: number; lines: number }>;
  close(): Promise<void>;
}

export interface SetupOptions {
  /** Real server; absent for stub-backed runs. */
  databaseUrl?: string;
  /** Number of pools (ours only). */
  pools?: number;
  /** Queue limit for the waiters case. */
  maxWaiting?: number;
}

type Factory = (o: SetupOptions) => Promise<Contender>;

const randomId = () => 1 + Math.floor(Math.random() * ITEMS);

function distinctText(i: number, n: number): string {
  return `SELECT id, c${i % n} FROM ${ITEMS_TABLE} WHERE id = $1`;
}

// ---------------------------------------------------------------------------------------------
// generic-pool and tarn: the raw pools, stub resources only
// ---------------------------------------------------------------------------------------------

const genericPool: Factory = async () => {
  const { createPool } = await import('generic-pool');
  const pool = createPool<StubClient>({ create: async () => new StubClient(), destroy: async () => {} }, { max: POOL_MAX });
  return {
    op: (p) =>
      rawOp(
        p,
        async () => pool.acquire(),
        (r) => void pool.release(r),
      ),
    close: async () => {
      await pool.drain();
      await pool.clear();
    },
  };
};

/**
 * generic-pool configured as our pool configures it (test on borrow, acquire timeout, queue limit,
 * evictor): the floor under ours, since each of our pools is one of these.
 */
const genericPoolAsOurs: Factory = async () => {
  const { createPool } = await import('generic-pool');
  const pool = createPool<StubClient>(
    { create: async () => new StubClient(), destroy: async () => {}, validate: () => VALID },
    {
      max: POOL_MAX,
      min: 2,
      testOnBorrow: true,
      acquireTimeoutMillis: 10_000,
      maxWaitingClients: 20_000,
      evictionRunIntervalMillis: 5_000,
      numTestsPerEvictionRun: POOL_MAX,
      autostart: true,
    },
  );
  return {
    op: (p) =>
      rawOp(
        p,
        async () => pool.acquire(),
        (r) => void pool.release(r).catch(() => {}),
      ),
    close: async () => {
      await pool.drain();
      await pool.clear();
    },
  };
};
const VALID = Promise.resolve(true);

const tarn: Factory = async () => {
  const { Pool } = await import('tarn');
  const pool = new Pool<StubClient>({ create: async () => new StubClient(), destroy: () => {}, min: 0, max: POOL_MAX });
  return {
    op: (p) =>
      rawOp(
        p,
        () => pool.acquire().promise,
        (r) => void pool.release(r),
      ),
    close: async () => {
      await pool.destroy();
    },
  };
};

/**
 * tarn with the telemetry ours emits, written by hand against the same SDK: an acquire span (4
 * attributes at start, 3 at the end) and a wait-time record per acquire, a use-time record per
 * release, and per statement a CLIENT span (the 9 cached attributes, 4 more) and an operation
 * duration record (7 attributes). No channels, no stats, no pool of ours: what any
 * instrumentation producing these spans and histograms pays the SDK, the floor under
 * "ours + spans + metrics".
 *
 * It is the floor of one design only: telemetry made inline, at the call site, with the span and
 * attribute objects prepared ahead, on a pool with no bookkeeping of its own (tarn), under the
 * stub cases' bare SDK (no context manager, so no context propagation and every span a root). It
 * says nothing of the cost of context propagation, of a sampler that drops spans, or of an
 * exporter that encodes them, which the query case's production-like setups measure.
 */
const tarnHandTelemetry: Factory = async () => {
  const { Pool } = await import('tarn');
  const { SpanKind } = await import('@opentelemetry/api');
  // Names and buckets from the package, so the floor makes the very series and spans ours makes.
  const sc = await import('db-pool-otel/instrumentation');
  const { startSdk } = await import('./otel.js');
  const sdk = startSdk({ traces: true });
  const tracer = sdk.tracerProvider!.getTracer('bench-sdk-floor');
  const meter = sdk.meterProvider.getMeter('bench-sdk-floor');
  const histogram = (name: string, buckets: readonly number[]) =>
    meter.createHistogram(name, { unit: 's', advice: { explicitBucketBoundaries: [...buckets] } });
  const waitTime = histogram(sc.METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, sc.POOL_TIME_BUCKETS);
  const useTime = histogram(sc.METRIC_DB_CLIENT_CONNECTION_USE_TIME, sc.POOL_TIME_BUCKETS);
  const duration = histogram(sc.METRIC_DB_CLIENT_OPERATION_DURATION, sc.OPERATION_DURATION_BUCKETS);
  const poolAttrs = Object.freeze({ [sc.ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: 'bench' });
  const opAttrs = Object.freeze({
    [sc.ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: 'bench',
    [sc.ATTR_DB_COLLECTION_NAME]: ITEMS_TABLE,
    [sc.ATTR_DB_NAMESPACE]: 'bench',
    [sc.ATTR_DB_OPERATION_NAME]: 'SELECT',
    [sc.ATTR_DB_SYSTEM_NAME]: sc.DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    [sc.ATTR_SERVER_ADDRESS]: '127.0.0.1',
    [sc.ATTR_SERVER_PORT]: 9,
  });
  const spanAttrs = Object.freeze({ ...opAttrs, [sc.ATTR_DB_QUERY_SUMMARY]: `SELECT ${ITEMS_TABLE}`, [sc.ATTR_DB_QUERY_TEXT]: PARAM_SQL });
  const pool = new Pool<StubClient>({ create: async () => new StubClient(), destroy: () => {}, min: 0, max: POOL_MAX });
  let loans = 0;
  const acquire = async (): Promise<{ r: StubClient; lentAt: number }> => {
    const t0 = performance.now();
    const span = tracer.startSpan('acquire bench', {
      kind: SpanKind.INTERNAL,
      attributes: {
        [sc.ATTR_DB_SYSTEM_NAME]: sc.DB_SYSTEM_NAME_VALUE_POSTGRESQL,
        [sc.ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: 'bench',
        [sc.ATTR_DB_POOL_ACQUIRE_PENDING]: pool.numPendingAcquires(),
        [sc.ATTR_DB_POOL_ACQUIRE_MUST_WAIT]: pool.numFree() === 0,
      },
    });
    const r = await pool.acquire().promise;
    const lentAt = performance.now();
    waitTime.record((lentAt - t0) / 1000, poolAttrs);
    span.setAttribute(sc.ATTR_DB_POOL_ACQUIRE_WAIT_MS, lentAt - t0);
    span.setAttribute(sc.ATTR_DB_POOL_CONNECTION_ID, r.processID);
    span.setAttribute(sc.ATTR_DB_POOL_LOAN_ID, ++loans);
    span.end();
    return { r, lentAt };
  };
  const release = (loan: { r: StubClient; lentAt: number }) => {
    pool.release(loan.r);
    useTime.record((performance.now() - loan.lentAt) / 1000, poolAttrs);
  };
  return {
    op: (p) => {
      if (p.kind === 'cycle') return async () => release(await acquire());
      const text = p.kind === 'select1' ? 'SELECT 1' : PARAM_SQL;
      return async () => {
        const loan = await acquire();
        try {
          const span = tracer.startSpan(`SELECT ${ITEMS_TABLE}`, { kind: SpanKind.CLIENT, attributes: spanAttrs });
          span.setAttribute(sc.ATTR_DB_POOL_CONNECTION_ID, loan.r.processID);
          span.setAttribute(sc.ATTR_DB_POOL_QUERY_VALUES_COUNT, 1);
          const t0 = performance.now();
          const res = (await loan.r.query(text, p.kind === 'select1' ? undefined : [randomId()])) as { rowCount: number };
          duration.record((performance.now() - t0) / 1000, opAttrs);
          span.setAttribute(sc.ATTR_DB_POOL_QUERY_ROW_COUNT, res.rowCount);
          span.setAttribute(sc.ATTR_DB_RESPONSE_RETURNED_ROWS, res.rowCount);
          span.end();
          return res;
        } finally {
          release(loan);
        }
      };
    },
    spans: () => sdk.spanCounts(),
    close: async () => {
      await pool.destroy();
      await sdk.shutdown();
    },
  };
};

/** acquire + release, or acquire + a stub statement + release, on a raw resource pool. */
function rawOp(p: OpParams, acquire: () => Promise<StubClient>, release: (r: StubClient) => void): () => Promise<unknown> {
  if (p.kind === 'cycle') {
    return async () => {
      release(await acquire());
    };
  }
  const text = p.kind === 'select1' ? 'SELECT 1' : PARAM_SQL;
  return async () => {
    const r = await acquire();
    try {
      return await r.query(text, p.kind === 'select1' ? undefined : [randomId()]);
    } finally {
      release(r);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// The production-like setups (bench/otel.ts): names, and the request span around each operation
// ---------------------------------------------------------------------------------------------

/** Contender names of the query case, per setup, so that bench/run.ts and this file agree. */
export const NAMES = {
  /** `@opentelemetry/instrumentation-pg` on pg.Pool. */
  pgInstrumented: (s: TraceSetup) => `pg.Pool + instrumentation-pg, ${SETUP_LABEL[s]}`,
  ours: (s: TraceSetup) => (s === 'metrics' ? 'ours, metrics only' : `ours + spans + metrics, ${SETUP_LABEL[s]}`),
  /** knex on its own (tarn) pool, with instrumentation-pg patching the pg.Client knex drives. */
  knexInstrumented: (s: TraceSetup) => `knex + instrumentation-pg, ${SETUP_LABEL[s]}`,
  knexOnOurs: (s: TraceSetup) => (s === 'metrics' ? 'knex on ours, metrics only' : `knex on ours + spans + metrics, ${SETUP_LABEL[s]}`),
  /** Metrics only, the instrumentation in producer mode: the reader pulls its per-pool aggregates (no SDK record per value). */
  oursProducer: 'ours, metrics only, producer mode',
  /** pg.Pool with the request span and the SDK, and no database instrumentation. */
  requestSpanOnly: 'pg.Pool, request span only, all spans',
  /** The same with no tracer provider (the request span a no-op one): the harness's cost under the metrics-only rows. */
  requestSpanOnlyMetrics: 'pg.Pool, request span only, metrics only',
  /** knex as auto-instrumentations-node sets it up: instrumentation-knex's span over instrumentation-pg's. */
  knexBoth: 'knex + instrumentation-knex + instrumentation-pg, all spans',
} as const;

/** Each operation inside a request span when the contender runs under the service SDK; as it is otherwise. */
function inRequest(sdk: ServiceSdk | undefined, op: (caller: number, i: number) => Promise<unknown>): (caller: number, i: number) => Promise<unknown> {
  return sdk ? sdk.inRequest(op) : op;
}

/** instrumentation-pg enabled under the service SDK, before anything loads `pg`. */
async function enablePgInstrumentation(sdk: ServiceSdk): Promise<void> {
  const { PgInstrumentation } = await import('@opentelemetry/instrumentation-pg');
  const inst = new PgInstrumentation({ enabled: false });
  // Metrics only: no tracer provider set, so the instrumentation keeps the API's global one, which
  // has no SDK behind it: its spans are non-recording, its metrics are recorded.
  if (sdk.tracerProvider) inst.setTracerProvider(sdk.tracerProvider);
  inst.setMeterProvider(sdk.meterProvider);
  inst.enable();
}

function assertPgPatched(): void {
  const pg = require('pg') as typeof import('pg');
  if (!(pg.Client.prototype.query as { __wrapped?: boolean }).__wrapped) throw new Error('instrumentation-pg did not patch pg.Client');
}

// ---------------------------------------------------------------------------------------------
// pg.Pool, bare, or under the service SDK with or without @opentelemetry/instrumentation-pg
// ---------------------------------------------------------------------------------------------

function pgPoolFactory(setup?: TraceSetup, instrumented = true): Factory {
  return async (o) => {
    let sdk: ServiceSdk | undefined;
    if (setup) {
      const { startServiceSdk } = await import('./otel.js');
      sdk = startServiceSdk(setup);
      if (instrumented) await enablePgInstrumentation(sdk);
    }
    // Through require, after the instrumentation's hooks are in place.
    const pg = require('pg') as typeof import('pg');
    if (setup && instrumented) assertPgPatched();
    const pool = o.databaseUrl
      ? new pg.Pool({ connectionString: o.databaseUrl, max: POOL_MAX })
      : new pg.Pool({ max: POOL_MAX, Client: StubClient as unknown as typeof pg.Client });
    pool.on('error', () => {});
    const c: Contender = {
      op: (p) => {
        switch (p.kind) {
          case 'cycle':
            return inRequest(sdk, async () => {
              const client = await pool.connect();
              client.release();
            });
          case 'select1':
            return inRequest(sdk, () => pool.query('SELECT 1'));
          case 'param':
            return inRequest(sdk, () => pool.query(PARAM_SQL, [randomId()]));
          default:
            throw new Error(`pg.Pool: no ${p.kind} case`);
        }
      },
      close: async () => {
        await pool.end();
        await sdk?.shutdown();
      },
    };
    if (sdk) c.spans = () => sdk.spanCounts();
    return c;
  };
}

// ---------------------------------------------------------------------------------------------
// knex with its own (tarn) pool, bare or under the service SDK
// ---------------------------------------------------------------------------------------------

function knexFactory(setup?: TraceSetup, knexInstrumentation = false): Factory {
  return async (o) => {
    if (!o.databaseUrl) throw new Error('knex needs a database');
    let sdk: ServiceSdk | undefined;
    if (setup) {
      const { startServiceSdk } = await import('./otel.js');
      sdk = startServiceSdk(setup);
      await enablePgInstrumentation(sdk);
      if (knexInstrumentation) {
        const { KnexInstrumentation } = await import('@opentelemetry/instrumentation-knex');
        const inst = new KnexInstrumentation({ enabled: false });
        if (sdk.tracerProvider) inst.setTracerProvider(sdk.tracerProvider);
        inst.setMeterProvider(sdk.meterProvider);
        inst.enable();
      }
    }
    // Through require, after the hooks are in place (knex requires pg itself, when it first connects).
    const knex = (require('knex') as typeof import('knex')).knex;
    const k = knex({ client: 'pg', connection: o.databaseUrl, pool: { max: POOL_MAX } });
    if (setup) assertPgPatched();
    const c: Contender = {
      op: (p) => inRequest(sdk, knexOp(k, p)),
      close: async () => {
        await k.destroy();
        await sdk?.shutdown();
      },
    };
    if (sdk) c.spans = () => sdk.spanCounts();
    return c;
  };
}

function knexOp(k: import('knex').Knex, p: OpParams): () => Promise<unknown> {
  switch (p.kind) {
    case 'select1':
      return () => k.raw('SELECT 1');
    case 'param':
      return () => k.raw(PARAM_SQL_KNEX, [randomId()]);
    default:
      throw new Error(`knex: no ${p.kind} case`);
  }
}

// ---------------------------------------------------------------------------------------------
// ours: DatabasePool, bare, metrics only, spans + metrics, Prometheus endpoint, under knex; and
// under the service SDK
// ---------------------------------------------------------------------------------------------

/**
 * 'metrics' and 'spans': the stub cases' bare SDK (no context manager, no request span);
 * { service }: the production-like setups of the query case.
 */
type Telemetry = 'none' | 'metrics' | 'spans' | 'prometheus' | { service: TraceSetup; producer?: boolean };

function oursFactory(telemetry: Telemetry, viaKnex = false): Factory {
  return async (o) => {
    if (!o.databaseUrl) {
      // The core opens connections with `new pg.Client(...)` read from pg's exports at call time:
      // point that at the stub, in this worker process only.
      const pg = (await import('pg')).default as unknown as { Client: unknown };
      pg.Client = StubClient;
    }
    let sdk: BenchSdk | undefined;
    let service: ServiceSdk | undefined;
    let scrapeUrl: string | undefined;
    if (typeof telemetry === 'object') {
      const { startServiceSdk } = await import('./otel.js');
      const { trace } = await import('@opentelemetry/api');
      const { DbPoolInstrumentation } = await import('db-pool-otel/instrumentation');
      const inst = new DbPoolInstrumentation({ enabled: false, metricsExport: telemetry.producer ? 'producer' : 'meter' });
      sdk = service = startServiceSdk(telemetry.service, telemetry.producer ? [inst.metricProducer] : undefined);
      // Metrics only: the API's global tracer provider, with no SDK behind it (as instrumentation-pg gets).
      inst.setTracerProvider(service.tracerProvider ?? trace.getTracerProvider());
      inst.setMeterProvider(service.meterProvider);
      inst.enable();
    } else if (telemetry === 'metrics' || telemetry === 'spans') {
      const { startSdk } = await import('./otel.js');
      const { ProxyTracerProvider } = await import('@opentelemetry/api');
      const { DbPoolInstrumentation } = await import('db-pool-otel/instrumentation');
      sdk = startSdk({ traces: telemetry === 'spans' });
      const inst = new DbPoolInstrumentation({ enabled: false });
      // Metrics only: spans go to a provider with no SDK behind it, as startPrometheusExporter does.
      inst.setTracerProvider(sdk.tracerProvider ?? new ProxyTracerProvider());
      inst.setMeterProvider(sdk.meterProvider);
      inst.enable();
    } else if (telemetry === 'prometheus') {
      const { startPrometheusExporter } = await import('db-pool-otel/instrumentation');
      scrapeUrl = (await startPrometheusExporter({ port: 0 })).url;
    }
    const { DatabasePool, knexConfig } = await import('db-pool-otel');
    const db = new DatabasePool({ logger: null });
    const ids = Array.from({ length: o.pools ?? 1 }, (_, i) => ((o.pools ?? 1) > 1 ? `bench${i}` : 'bench'));
    for (const id of ids) {
      const config: Parameters<typeof db.createPool>[1] = { connection: { connectionString: o.databaseUrl ?? STUB_URL }, max: POOL_MAX };
      if (o.maxWaiting !== undefined) config.maxWaitingClients = o.maxWaiting;
      await db.createPool(id, config);
    }
    const k = viaKnex ? (require('knex') as typeof import('knex')).knex(knexConfig(db, 'bench')) : undefined;
    const pick = ids.length === 1 ? () => ids[0]! : (caller: number) => ids[caller % ids.length]!;

    const c: Contender = {
      op: (p) => {
        if (k) return inRequest(service, knexOp(k, p));
        switch (p.kind) {
          case 'cycle':
            return inRequest(service, async (caller) => {
              const conn = await db.acquire(pick(caller));
              conn.release();
            });
          case 'select1':
            return inRequest(service, (caller) => db.query(pick(caller), 'SELECT 1'));
          case 'param':
            return inRequest(service, (caller) => db.query(pick(caller), PARAM_SQL, [randomId()]));
          case 'distinct': {
            const n = p.distinct ?? 10;
            return inRequest(service, (caller, i) => db.query(pick(caller), distinctText(i, n), [i]));
          }
        }
      },
      facts: () => {
        const q = db.getQueryMetrics(ids[0]!);
        return { statementsKept: q.statementsTracked, statementsEvicted: q.statementsEvicted };
      },
      close: async () => {
        await k?.destroy();
        await db.close();
        await sdk?.shutdown();
      },
    };
    if (sdk) {
      const s = sdk;
      c.spans = () => s.spanCounts();
    }
    if (scrapeUrl !== undefined) {
      const url = scrapeUrl;
      c.scrape = async () => {
        const t0 = performance.now();
        const text = await (await fetch(url)).text();
        return { ms: performance.now() - t0, bytes: Buffer.byteLength(text), lines: text.split('\n').filter((l) => l && !l.startsWith('#')).length };
      };
    }
    return c;
  };
}

export const CONTENDERS: Record<string, Factory> = {
  'generic-pool': genericPool,
  'generic-pool, our options': genericPoolAsOurs,
  tarn,
  'tarn + the same telemetry by hand': tarnHandTelemetry,
  'pg.Pool': pgPoolFactory(),
  [NAMES.requestSpanOnly]: pgPoolFactory('all', false),
  [NAMES.requestSpanOnlyMetrics]: pgPoolFactory('metrics', false),
  knex: knexFactory(),
  [NAMES.knexBoth]: knexFactory('all', true),
  ours: oursFactory('none'),
  // The stub cases' setups (bare SDK, no context manager, no request span).
  'ours + metrics': oursFactory('metrics'),
  'ours + spans + metrics': oursFactory('spans'),
  'ours + Prometheus endpoint': oursFactory('prometheus'),
  'knex on ours': oursFactory('none', true),
};
CONTENDERS[NAMES.oursProducer] = oursFactory({ service: 'metrics', producer: true });
for (const s of TRACE_SETUPS) {
  CONTENDERS[NAMES.pgInstrumented(s)] = pgPoolFactory(s);
  CONTENDERS[NAMES.ours(s)] = oursFactory({ service: s });
  CONTENDERS[NAMES.knexInstrumented(s)] = knexFactory(s);
  CONTENDERS[NAMES.knexOnOurs(s)] = oursFactory({ service: s }, true);
}

/**
 * A --contenders list: names separated by ";" or by "," (names that contain a comma, such as
 * "ours, metrics only", are recognised whole).
 */
export function parseContenderList(list: string): string[] {
  if (list.includes(';'))
    return list
      .split(';')
      .map((s) => s.trim())
      .filter(Boolean);
  const parts = list.split(',');
  const out: string[] = [];
  for (let i = 0; i < parts.length; ) {
    // The longest run of parts that names a contender; a single part otherwise.
    let j = parts.length;
    while (j > i + 1 && !(parts.slice(i, j).join(',').trim() in CONTENDERS)) j--;
    out.push(parts.slice(i, j).join(',').trim());
    i = j;
  }
  return out.filter(Boolean);
}
