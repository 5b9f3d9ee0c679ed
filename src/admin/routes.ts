/**
 * The admin endpoint's routes: one table, each route with its method, path, access level and
 * handler. Handlers call the public `DatabasePool` API only, and throw to answer with an error
 * (`admin-server.ts` turns library errors into status codes).
 */
import { z } from 'zod';
import type { AdminPools } from './pools.js';
import { AdminHttpError } from './http.js';
import { POOL_SETTINGS } from '../config/config.js';
import { PATCHABLE_SETTINGS, type AdminIssue, type ConfigChange, type PoolSummary } from './protocol.js';
import { valueAt } from '../util/object-utils.js';

/** Who may call a route: anyone (liveness), readers, or writers (a token is configured and presented). */
export type RouteAccess = 'public' | 'read' | 'write';

export interface RouteContext {
  db: AdminPools;
  /** Path parameters, decoded (`id` for `/pools/:id/...`). */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body (routes with `body: true`), or undefined when empty. */
  body: unknown;
}

export interface RouteResult {
  status?: number;
  body: unknown;
}

export interface AdminRoute {
  method: 'GET' | 'POST' | 'PATCH';
  /** Path with `:name` parameters, e.g. `/pools/:id/metrics`. */
  path: string;
  access: RouteAccess;
  /** Reads a JSON body (size-limited, validated by the handler). */
  body?: boolean;
  summary: string;
  handle(ctx: RouteContext): Promise<RouteResult> | RouteResult;
}

const SLOW_QUERY_LIMIT = { min: 1, max: 100, default: 10 };
const TOP_STATEMENTS_LIMIT = { min: 1, max: 200, default: 20 };

/** Every route of the admin endpoint (exported for the route × token test matrix). */
export const ADMIN_ROUTES: readonly AdminRoute[] = [
  {
    method: 'GET',
    path: '/healthz',
    access: 'public',
    summary: 'liveness: the process answers HTTP (no auth, touches no pool)',
    handle: () => ({ body: { status: 'ok' } }),
  },
  {
    method: 'GET',
    path: '/readyz',
    access: 'read',
    summary: 'readiness: healthCheck(); 200 when every pool answers SELECT 1, 503 otherwise',
    handle: async ({ db }) => {
      const report = await db.healthCheck();
      return { status: report.status === 'healthy' ? 200 : 503, body: report };
    },
  },
  {
    method: 'GET',
    path: '/health',
    access: 'read',
    summary: 'healthCheck() report (always 200; read `status`)',
    handle: async ({ db }) => ({ body: await db.healthCheck() }),
  },
  {
    method: 'GET',
    path: '/pools',
    access: 'read',
    summary: 'every pool with its connection counts',
    handle: ({ db }) => ({ body: { pools: db.listPools().flatMap((id) => poolSummary(db, id)) } }),
  },
  {
    method: 'GET',
    path: '/pools/:id',
    access: 'read',
    summary: 'one pool: its config (secrets redacted) and status',
    handle: ({ db, params }) => ({ body: { poolId: params.id, config: db.getPoolConfig(params.id!), status: db.getPoolStatus(params.id!) } }),
  },
  {
    method: 'GET',
    path: '/pools/:id/metrics',
    access: 'read',
    summary: 'getDetailedMetrics().toJSON()',
    handle: ({ db, params }) => ({ body: db.getDetailedMetrics(params.id!).toJSON() }),
  },
  {
    method: 'GET',
    path: '/pools/:id/query-metrics',
    access: 'read',
    summary: 'getQueryMetrics({ limit }).toJSON(): errors by SQLSTATE, top statements',
    handle: ({ db, params, query }) => {
      db.getPoolStatus(params.id!); // 404 before 400
      const limit = intParam(query, 'limit', TOP_STATEMENTS_LIMIT);
      return { body: db.getQueryMetrics(params.id!, { limit }).toJSON() };
    },
  },
  {
    method: 'GET',
    path: '/pools/:id/slow-queries',
    access: 'read',
    summary: 'getSlowQueries({ limit }): slowest first, literals removed',
    handle: ({ db, params, query }) => {
      db.getPoolStatus(params.id!);
      const limit = intParam(query, 'limit', SLOW_QUERY_LIMIT);
      return { body: { poolId: params.id, slowQueries: db.getSlowQueries(params.id!, { limit }) } };
    },
  },
  {
    method: 'GET',
    path: '/pools/:id/connections',
    access: 'read',
    summary: 'getConnectionDetails()',
    handle: ({ db, params }) => ({ body: { poolId: params.id, connections: db.getConnectionDetails(params.id!) } }),
  },
  {
    method: 'GET',
    path: '/pools/:id/diagnosis',
    access: 'read',
    summary: 'diagnosePerformanceIssues() and diagnoseConnectionLeak()',
    handle: async ({ db, params }) => {
      const id = params.id!;
      const [performance, leaks] = await Promise.all([db.diagnosePerformanceIssues(id), db.diagnoseConnectionLeak(id)]);
      return { body: { poolId: id, performance, leaks } };
    },
  },
  {
    method: 'POST',
    path: '/pools/:id/restart',
    access: 'write',
    body: true,
    summary: 'restartPool(): new connections; waiting callers move over, running work drains. Body: { drainTimeoutMs? }',
    handle: async ({ db, params, body }) => {
      const id = params.id!;
      db.getPoolStatus(id);
      const opts = parse(restartSchema, body ?? {});
      const started = performance.now();
      await db.restartPool(id, opts.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: opts.drainTimeoutMs });
      return { body: { poolId: id, restarted: true, durationMs: Math.round(performance.now() - started), status: db.getPoolStatus(id) } };
    },
  },
  {
    method: 'POST',
    path: '/pools/:id/cleanup',
    access: 'write',
    body: true,
    summary: 'cleanupPool(): close idle connections, reclaim leaks past the threshold, clear transient errors. Body: none or {}',
    handle: async ({ db, params, body }) => {
      const id = params.id!;
      db.getPoolStatus(id);
      parse(cleanupSchema, body ?? {});
      const report = await db.cleanupPool(id);
      return { body: { poolId: id, ...report, status: db.getPoolStatus(id) } };
    },
  },
  {
    method: 'PATCH',
    path: '/pools/:id/config',
    access: 'write',
    body: true,
    summary: `updatePoolConfig() with a subset of ${PATCHABLE_SETTINGS.join(', ')}; validated first, an invalid patch changes nothing`,
    handle: async ({ db, params, body }) => {
      const id = params.id!;
      db.getPoolStatus(id);
      if (body === undefined) {
        throw new AdminHttpError(400, 'INVALID_REQUEST', `request body required: a JSON object with some of ${PATCHABLE_SETTINGS.join(', ')}`);
      }
      const patch = parse(configPatchSchema, body);
      const before = db.getPoolConfig(id) as unknown as Record<string, unknown>;
      await db.updatePoolConfig(id, patch); // validates the merged config (ranges, min <= max) first
      const after = db.getPoolConfig(id) as unknown as Record<string, unknown>;
      const changed: Record<string, ConfigChange> = {};
      for (const key of Object.keys(body as object)) {
        // in the order the caller wrote them
        if (before[key] !== after[key]) changed[key] = { from: before[key], to: after[key] };
      }
      return { body: { poolId: id, changed, config: after, status: db.getPoolStatus(id) } };
    },
  },
];

function poolSummary(db: AdminPools, poolId: string): PoolSummary[] {
  try {
    const s = db.getPoolStatus(poolId);
    return [
      {
        poolId,
        total: s.total,
        active: s.active,
        idle: s.idle,
        waiting: s.waiting,
        max: s.max,
        min: s.min,
        utilization: s.max > 0 ? s.active / s.max : 0,
        pendingCreates: s.pendingCreates,
        lastConnectError: s.lastConnectError ?? null,
      },
    ];
  } catch {
    return []; // removed while listing
  }
}

// ------------------------------------------------------------------ validation

const wholeMs = z
  .number({ error: 'must be a number (milliseconds)' })
  .int({ error: 'must be a whole number (milliseconds)' })
  .min(0, { error: 'must not be negative' });
const count = z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).min(0, { error: 'must not be negative' });

/** Types and keys only; ranges and cross-field rules are the core's (`updatePoolConfig` validates the merged config). */
const configPatchSchema = z
  .strictObject(
    {
      min: count.optional(),
      max: count.optional(),
      acquireTimeoutMs: wholeMs.optional(),
      queryTimeoutMs: wholeMs.optional(),
      idleTimeoutMs: wholeMs.optional(),
      maxLifetimeMs: wholeMs.optional(),
      maxWaitingClients: count.optional(),
      validateOnBorrow: z.boolean({ error: 'must be true or false' }).optional(),
      leakDetectionThresholdMs: wholeMs.optional(),
      leakReclaimMs: wholeMs.optional(),
      slowQueryThresholdMs: wholeMs.optional(),
      metricsWindowMs: wholeMs.optional(),
    } satisfies Record<(typeof PATCHABLE_SETTINGS)[number], z.ZodType>,
    { error: `must be a JSON object with some of ${PATCHABLE_SETTINGS.join(', ')}` },
  )
  .refine((p) => Object.keys(p).length > 0, { error: `must change at least one of ${PATCHABLE_SETTINGS.join(', ')}` });

const restartSchema = z.strictObject(
  { drainTimeoutMs: wholeMs.max(600_000, { error: 'must be at most 600000 (milliseconds)' }).optional() },
  { error: 'must be a JSON object: {} or { "drainTimeoutMs": number }' },
);

const cleanupSchema = z.strictObject({}, { error: 'must be empty or {}' });

/** Settings that exist on a pool but may not be changed over HTTP. */
const NOT_OVER_HTTP = new Set(POOL_SETTINGS.filter((k) => !(PATCHABLE_SETTINGS as readonly string[]).includes(k)));

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues: AdminIssue[] = [];
  for (const issue of result.error.issues) {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        issues.push({
          path: [...path, key].join('.'),
          // The value of an unknown key is never echoed: it could be anything, a password included.
          rule: NOT_OVER_HTTP.has(key)
            ? 'cannot be changed over the admin endpoint (change it in code: updatePoolConfig restarts the pool)'
            : 'is not a setting this endpoint accepts',
        });
      }
      continue;
    }
    const item: AdminIssue = { path: path.join('.') || '(body)', rule: issue.message };
    const value = valueAt(input, path);
    if (isEchoable(value)) item.value = value;
    issues.push(item);
  }
  throw new AdminHttpError(400, 'INVALID_REQUEST', `invalid request body: ${issues.map((i) => `${i.path} ${i.rule}`).join('; ')}`, issues);
}

function intParam(query: URLSearchParams, name: string, range: { min: number; max: number; default: number }): number {
  const raw = query.get(name);
  if (raw === null) return range.default;
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < range.min || n > range.max) {
    throw new AdminHttpError(400, 'INVALID_REQUEST', `query parameter ${name} must be a whole number from ${range.min} to ${range.max}`, [
      { path: name, rule: `must be a whole number from ${range.min} to ${range.max}` },
    ]);
  }
  return n;
}

/** Only scalars that cannot carry a secret are echoed back in issues. */
export function isEchoable(value: unknown): value is number | boolean | null {
  return value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}
