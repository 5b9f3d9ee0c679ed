/**
 * The admin endpoint's wire contract, shared by the server (`admin-server.ts`) and the `db-pool` CLI:
 * the default address, the error shape and the names of the settings a config patch may change.
 * Types, constants and dependency-free helpers only, so the CLI can import it without loading the
 * pool core.
 */
import { LIVE_SETTINGS } from '../config/live-settings.js';

/** The report bodies of `GET /health` and `GET /pools/:id/diagnosis` (types only: nothing of the core loads). */
export type { HealthReport } from '../ops/health.js';
export type { LeakDiagnosis, PerformanceDiagnosis } from '../ops/diagnosis.js';

/** Port of `startAdminServer` when none is given, and of the CLI's default `--url`. */
export const DEFAULT_ADMIN_PORT = 9000;

/** Where the CLI looks when neither `--url` nor `DB_POOL_ADMIN_URL` is set. */
export const DEFAULT_ADMIN_URL = `http://127.0.0.1:${DEFAULT_ADMIN_PORT}`;

/** The socket limits of `startAdminServer` when not given. */
export const ADMIN_SERVER_DEFAULTS = { maxConnections: 64, headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000 } as const;

/** Largest request body accepted by default (16 KiB); larger ones get 413. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024;

/** Shortest token `startAdminServer` accepts: a guessable token is worse than none. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Settings `PATCH /pools/:id/config` may change: the ones a running pool takes without a restart.
 * `connection`, `applicationName`, `backup` and `readReplicas` are deliberately absent: redirecting a
 * pool to another server is not an operation to expose over HTTP.
 */
export const PATCHABLE_SETTINGS = LIVE_SETTINGS;

export type PatchableSetting = (typeof PATCHABLE_SETTINGS)[number];

/** True for addresses that are reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}

/** Error codes of admin responses: the library's own (`POOL_NOT_FOUND`, `INVALID_CONFIG`, ...) plus HTTP ones. */
export type AdminErrorCode =
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UNAUTHORIZED'
  | 'MUTATIONS_DISABLED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'INVALID_JSON'
  | 'INVALID_REQUEST'
  | 'INVALID_CONFIG'
  | 'POOL_NOT_FOUND'
  | 'POOL_CLOSED'
  | 'INTERNAL'
  | (string & {});

/** One problem with a request: the dotted path, the rule broken, and the value when it is safe to echo. */
export interface AdminIssue {
  path: string;
  rule: string;
  value?: unknown;
}

/** Every non-2xx response body. */
export interface AdminErrorBody {
  error: { code: AdminErrorCode; message: string; issues?: AdminIssue[] };
}

/** `GET /pools`: one row per pool. */
export interface PoolSummary {
  poolId: string;
  total: number;
  active: number;
  idle: number;
  waiting: number;
  max: number;
  min: number;
  utilization: number;
  pendingCreates: number;
  lastConnectError: string | null;
}

/** `PATCH /pools/:id/config`: what changed. */
export interface ConfigChange {
  from: unknown;
  to: unknown;
}
