/**
 * Pool configuration: the schema, its defaults, validation into one clear issue per problem, and
 * redaction. Validation never echoes a secret: an issue shows a value only for fields known to be
 * harmless (an allow-list, {@link SHOWN_FIELDS}); a connection URL is shown with its password
 * replaced; anything else — a password under a misspelled key, a URL where an object belongs — is
 * `[REDACTED]`.
 */
import type pg from 'pg';
import type { z } from 'zod';
import { bool, int, ms, nonEmptyStr, str, zodIssues } from './config-schema.js';
import { LIVE_SETTINGS } from './live-settings.js';
import { lazy, zod } from '../util/load-zod.js';
import { type ConfigIssue, InvalidConfigError } from '../errors.js';
import { REDACTED, issueValue, redactUnknown, safeDecode, stripUndefined, type ShownFields } from '../util/object-utils.js';

export { REDACTED };

/** TLS settings passed to `pg` as is. */
export interface TlsConfig {
  rejectUnauthorized?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

/** Where a pool connects: a URL, or the parts; and pg's connection options, passed through. */
export interface ConnectionConfig {
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  /**
   * The password, or a function that returns it (or a promise of it) for every new connection:
   * short-lived tokens such as AWS RDS IAM or Azure AD, fetched when needed.
   */
  password?: string | (() => string | Promise<string>);
  database?: string;
  ssl?: boolean | TlsConfig;
  /** TCP keep-alive on the connection's socket (pg's `keepAlive`). Default true. */
  keepAlive?: boolean;
  /** Idle time before the first keep-alive probe, ms (pg's `keepAliveInitialDelayMillis`). */
  keepAliveInitialDelayMillis?: number;
  /** Server-side `statement_timeout` for every statement of the session, ms (0: none). */
  statement_timeout?: number;
  /** Server-side `lock_timeout`, ms. */
  lock_timeout?: number;
  /** Server-side `idle_in_transaction_session_timeout`, ms. */
  idle_in_transaction_session_timeout?: number;
  /** Command-line options sent at startup, e.g. `-c search_path=app,public` (pg's `options`). */
  options?: string;
  /**
   * The socket to talk over instead of a TCP connection pg opens: a function returning a new
   * `net.Socket` / duplex stream per connection (pg's `stream`), e.g. for a tunnel.
   */
  stream?: () => NodeJS.ReadWriteStream;
}

/** Settings of one pool. Every field but `connection` has a default (see {@link POOL_DEFAULTS}). */
export interface PoolConfig {
  connection: ConnectionConfig;
  /** Connections kept open even when idle (default 2, or max when max is smaller). */
  min?: number;
  /** Most connections open at once. */
  max?: number;
  /** How long `acquire` (and so `query`) waits for a connection before ACQUIRE_TIMEOUT. */
  acquireTimeoutMs?: number;
  /** Longest a single query may run before QUERY_TIMEOUT; 0 disables. */
  queryTimeoutMs?: number;
  /** Idle connections above `min` are closed after this long; 0 never. */
  idleTimeoutMs?: number;
  /** Connections are retired after this long (minus up to 10 % jitter); 0 never. */
  maxLifetimeMs?: number;
  /** Callers allowed to wait; beyond it acquire fails at once with QUEUE_FULL. */
  maxWaitingClients?: number;
  /** Run `SELECT 1` on a connection idle for more than a second before lending it. */
  validateOnBorrow?: boolean;
  /** Report a loan held longer than this (with the stack that took it); 0 off. */
  leakDetectionThresholdMs?: number;
  /** Take back a loan held longer than this; 0 off. */
  leakReclaimMs?: number;
  /** Queries slower than this go to the slow-query log. */
  slowQueryThresholdMs?: number;
  /** Rolling window of the in-process metrics (rates, percentiles). */
  metricsWindowMs?: number;
  /** Another pool id, or a connection, to fail over to. */
  backup?: string | ConnectionConfig;
  /** `application_name` shown in `pg_stat_activity`; default `db-pool-otel:<poolId>`. */
  applicationName?: string;
  /** Read-only replicas: `query(..., { readOnly: true })` and read-only transactions go there. */
  readReplicas?: ConnectionConfig[];
  /**
   * The server is a transaction-mode pooler (PgBouncer): named prepared statements are sent unnamed,
   * since the next statement may reach another server connection.
   */
  transactionPooling?: boolean;
  /**
   * Close a connection after it has been lent this many times (pg.Pool's `maxUses`: spreads
   * sessions over the servers behind a load balancer or PgBouncer after a rebalance); 0 never.
   */
  maxUses?: number;
  /**
   * Runs once per new physical connection, before it is first lent, whichever face lends it
   * (`db.query`, `acquire`, `pgPool`, knex). May return a promise; a throw or rejection closes the
   * connection and counts as a failed connect. The client is the raw `pg.Client`.
   */
  onConnect?: (client: pg.Client) => void | Promise<void>;
  /** Idle connections don't keep the process alive (pg.Pool's `allowExitOnIdle`): their sockets are unref'd. */
  allowExitOnIdle?: boolean;
  /**
   * The client class connections are made with (pg.Pool's `Client`): a `pg.Client` subclass, e.g.
   * one that adds driver options; default `pg.Client`. It is given the pool's client settings.
   */
  Client?: new (
    config: pg.ClientConfig,
  ) => pg.Client;
}

/** A config with every default filled in. */
export type ResolvedPoolConfig = Required<Omit<PoolConfig, 'backup' | 'applicationName' | 'readReplicas' | 'onConnect' | 'Client'>> &
  Pick<PoolConfig, 'backup' | 'readReplicas' | 'onConnect' | 'Client'> & { applicationName: string };

/** Defaults chosen for a production service; the README documents each. */
export const POOL_DEFAULTS = {
  min: 2,
  max: 10,
  acquireTimeoutMs: 10_000,
  queryTimeoutMs: 30_000,
  idleTimeoutMs: 600_000,
  maxLifetimeMs: 1_800_000,
  maxWaitingClients: 10_000,
  validateOnBorrow: false,
  leakDetectionThresholdMs: 0,
  leakReclaimMs: 0,
  slowQueryThresholdMs: 1_000,
  metricsWindowMs: 60_000,
  transactionPooling: false,
  maxUses: 0,
  allowExitOnIdle: false,
} as const satisfies Partial<PoolConfig>;

const HOUR = 3_600_000;

const poolIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** Every setting of a pool config, in the schema's order (the schema's shape must name exactly these). */
const POOL_SETTING_NAMES = [
  'connection',
  // The settings a running pool takes in place (live-settings.ts), then the rest.
  ...LIVE_SETTINGS,
  'backup',
  'applicationName',
  'readReplicas',
  'transactionPooling',
  'maxUses',
  'onConnect',
  'allowExitOnIdle',
  'Client',
] as const;
type PoolSetting = (typeof POOL_SETTING_NAMES)[number];

/** The pool config schema, built on the first validation (zod is not loaded before: util/load-zod). */
const poolSchema = lazy(() => {
  const z = zod();
  const tlsSchema = z.strictObject({
    rejectUnauthorized: z.boolean().optional(),
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    servername: z.string().optional(),
  });

  const connectionSchema = z
    .strictObject(
      {
        connectionString: str()
          .refine(isPostgresUrl, { error: 'must be a postgres:// or postgresql:// URL with a host: postgres://user:password@host:port/database' })
          .optional(),
        host: nonEmptyStr().optional(),
        port: int(1, 65_535).optional(),
        user: nonEmptyStr().optional(),
        password: z
          .union([str(), z.custom<() => string | Promise<string>>((v) => typeof v === 'function')], {
            error: 'must be a string, or a function returning the password (or a promise of it)',
          })
          .optional(),
        database: nonEmptyStr().optional(),
        ssl: z.union([z.boolean(), tlsSchema], { error: 'must be true, false or TLS options' }).optional(),
        keepAlive: z.boolean({ error: 'must be true or false' }).optional(),
        keepAliveInitialDelayMillis: int(0, 86_400_000, ' ms').optional(),
        statement_timeout: int(0, 2_147_483_647, ' ms').optional(),
        lock_timeout: int(0, 2_147_483_647, ' ms').optional(),
        idle_in_transaction_session_timeout: int(0, 2_147_483_647, ' ms').optional(),
        options: str().max(4_096, { error: 'must be at most 4096 characters' }).optional(),
        stream: z
          .custom<() => NodeJS.ReadWriteStream>((v) => typeof v === 'function', { error: 'must be a function returning a new socket or duplex stream' })
          .optional(),
      },
      { error: 'must be an object with connectionString or host' },
    )
    .refine((c) => c.connectionString !== undefined || c.host !== undefined, {
      error: 'needs connectionString or host',
    });

  return z
    .strictObject(
      {
        connection: connectionSchema,
        min: int(0, 10_000).optional(),
        max: int(1, 10_000).optional(),
        acquireTimeoutMs: ms(1, HOUR).optional(),
        queryTimeoutMs: ms(0, 24 * HOUR).optional(),
        idleTimeoutMs: ms(0, 24 * HOUR).optional(),
        maxLifetimeMs: ms(0, 7 * 24 * HOUR)
          .refine((v) => v === 0 || v >= 1_000, { error: 'must be 0 (never) or at least 1000 (milliseconds)' })
          .optional(),
        maxWaitingClients: int(0, 10_000_000).optional(),
        validateOnBorrow: bool().optional(),
        leakDetectionThresholdMs: ms(0, 24 * HOUR).optional(),
        leakReclaimMs: ms(0, 24 * HOUR).optional(),
        slowQueryThresholdMs: ms(0, 24 * HOUR).optional(),
        metricsWindowMs: ms(1_000, HOUR).optional(),
        backup: z
          .union(
            [
              z.string().regex(poolIdPattern, { error: 'must be a pool id (1-64 letters, digits, "_", ".", ":" or "-") or a connection object' }),
              connectionSchema,
            ],
            {
              error: 'must be a pool id or a connection object',
            },
          )
          .optional(),
        applicationName: str().max(63, { error: 'must be at most 63 characters (PostgreSQL truncates longer names)' }).optional(),
        readReplicas: z.array(connectionSchema, { error: 'must be a list of connections' }).optional(),
        transactionPooling: bool().optional(),
        maxUses: int(0, 1_000_000_000).optional(),
        onConnect: z
          .custom<PoolConfig['onConnect']>((v) => typeof v === 'function', { error: 'must be a function (client) => void | Promise<void>' })
          .optional(),
        allowExitOnIdle: bool().optional(),
        Client: z.custom<PoolConfig['Client']>((v) => typeof v === 'function', { error: 'must be a client class (pg.Client or a subclass)' }).optional(),
      } satisfies Record<PoolSetting, z.ZodType>,
      { error: 'must be an object' },
    )
    .superRefine((c, ctx) => {
      const max = c.max ?? POOL_DEFAULTS.max;
      if (c.min !== undefined && c.min > max && max >= 1) {
        ctx.addIssue({ code: 'custom', path: ['min'], message: `must not exceed max (${max})` });
      }
      const detect = c.leakDetectionThresholdMs ?? 0;
      const reclaim = c.leakReclaimMs ?? 0;
      if (detect > 0 && reclaim > 0 && reclaim < detect) {
        ctx.addIssue({
          code: 'custom',
          path: ['leakReclaimMs'],
          message: 'must be at least leakDetectionThresholdMs, so a leak is reported before it is reclaimed',
        });
      }
    });
});

const SECRET_KEYS = new Set(['password', 'connectionString']);

/** Every setting of a pool config. */
export const POOL_SETTINGS: readonly string[] = POOL_SETTING_NAMES;

/**
 * The fields whose values an invalid-config issue shows as they are (an allow-list: anything not
 * here may hold a secret); `connectionString` is shown with its password replaced.
 */
export const SHOWN_FIELDS: ShownFields = {
  plain: new Set([
    ...POOL_SETTINGS.filter((k) => !['connection', 'backup', 'readReplicas'].includes(k)),
    'host',
    'port',
    'user',
    'database',
    'rejectUnauthorized',
    'servername',
    'poolId',
    'keepAlive',
    'keepAliveInitialDelayMillis',
    'statement_timeout',
    'lock_timeout',
    'idle_in_transaction_session_timeout',
  ]),
  urls: new Set(['connectionString']),
  redactUrl,
};

/** A value at `path` of a config, as an invalid-config issue may show it. */
export function shownValue(path: readonly string[], value: unknown): unknown {
  return issueValue(path, value, SHOWN_FIELDS);
}

/**
 * A postgres:// or postgresql:// URL with a host. The `//` is required: in `postgres:/user:pw@host/db`
 * or `postgres:user:pw@host/db` URL parsing finds no host and no password, so the password would
 * become part of the database name. The host may instead be a `host` parameter (a socket directory).
 */
function isPostgresUrl(s: string): boolean {
  if (!/^postgres(?:ql)?:\/\//i.test(s)) return false;
  try {
    const u = new URL(s);
    return u.hostname.length > 0 || (u.searchParams.get('host') ?? '').length > 0;
  } catch {
    return false;
  }
}

/** Whether `s` is a valid pool id (see {@link validatePoolId}). */
export function isPoolId(s: string): boolean {
  return poolIdPattern.test(s);
}

/** Checks a pool id: 1-64 characters of letters, digits, `_ . : -`, starting with a letter or digit. */
export function validatePoolId(poolId: unknown): asserts poolId is string {
  if (typeof poolId !== 'string' || !poolIdPattern.test(poolId)) {
    throw new InvalidConfigError([
      {
        path: 'poolId',
        value: shownValue(['poolId'], poolId),
        rule: 'must be 1-64 characters of letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
      },
    ]);
  }
}

/**
 * Validates a pool config and fills in defaults. Throws {@link InvalidConfigError} listing every
 * problem (never a secret value).
 *
 * @example
 * const cfg = resolvePoolConfig({ connection: { connectionString: process.env.DATABASE_URL }, max: 20 }, 'main');
 */
export function resolvePoolConfig(input: unknown, poolId: string, pathPrefix = ''): ResolvedPoolConfig {
  const parsed = poolSchema().safeParse(input);
  if (!parsed.success) {
    const issues = zodIssues(parsed.error.issues, input, { prefix: pathPrefix, known: POOL_SETTINGS, redact: shownValue, redactUnknown });
    throw new InvalidConfigError(issues, `pool "${poolId}"`);
  }
  const c = parsed.data as PoolConfig;
  return {
    ...POOL_DEFAULTS,
    ...stripUndefined(c),
    connection: { ...c.connection },
    // The default min never exceeds a small max the user chose.
    min: c.min ?? Math.min(POOL_DEFAULTS.min, c.max ?? POOL_DEFAULTS.max),
    applicationName: c.applicationName ?? `db-pool-otel:${poolId}`.slice(0, 63),
  } as ResolvedPoolConfig;
}

/** Validates every pool of a `pools` record before any is used: all issues at once, as INVALID_CONFIG. */
export function resolvePools(pools: Record<string, unknown>): [string, ResolvedPoolConfig][] {
  const issues: ConfigIssue[] = [];
  const resolved: [string, ResolvedPoolConfig][] = [];
  for (const [id, cfg] of Object.entries(pools)) {
    try {
      validatePoolId(id);
      resolved.push([id, resolvePoolConfig(cfg, id, `pools.${id}`)]);
    } catch (err) {
      if (err instanceof InvalidConfigError) issues.push(...err.issues);
      else throw err;
    }
  }
  if (issues.length > 0) throw new InvalidConfigError(issues);
  return resolved;
}

/**
 * Validates a partial update against the current config; returns the merged config or throws
 * {@link InvalidConfigError}. The current config is not touched.
 */
export function mergePoolConfig(current: ResolvedPoolConfig, patch: unknown, poolId: string): ResolvedPoolConfig {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new InvalidConfigError([{ path: 'patch', value: shownValue(['patch'], patch), rule: 'must be an object of pool settings' }], `pool "${poolId}"`);
  }
  return resolvePoolConfig({ ...current, ...(patch as object) }, poolId);
}

/**
 * Replaces the password (and secret-looking parameters and the fragment) of a URL. A URL without a
 * `scheme://` authority (`postgres:/u:pw@h`, `u:pw@h/db`), one with an `@` past its host (a password
 * holding `/`, `?` or `#` cuts the URL early), or an unparsable one is hidden whole: there the
 * password is not where URL parsing puts it.
 */
export function redactUrl(url: string): string {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) return REDACTED;
  try {
    const u = new URL(url);
    if (`${u.pathname}${u.search}${u.hash}`.includes('@')) return REDACTED;
    if (u.password) u.password = REDACTED;
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret|key|token/i.test(key)) u.searchParams.set(key, REDACTED);
    }
    if (u.hash) u.hash = REDACTED;
    return u.toString().replaceAll(encodeURIComponent(REDACTED), REDACTED);
  } catch {
    return REDACTED;
  }
}

/** A deep copy with passwords and URL passwords replaced by `[REDACTED]`. */
export function redactDeep<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEYS.has(k) && typeof v === 'string') out[k] = k === 'connectionString' ? redactUrl(v) : REDACTED;
    else if (k === 'key' && typeof v === 'string') out[k] = REDACTED;
    else out[k] = redactDeep(v);
  }
  return out as T;
}

/** Every secret string in a connection (password, URL password), for scrubbing driver messages. */
export function secretsOf(connection: ConnectionConfig): string[] {
  const out: string[] = [];
  if (typeof connection.password === 'string' && connection.password) out.push(connection.password);
  if (connection.connectionString) {
    try {
      const u = new URL(connection.connectionString);
      if (u.password) out.push(u.password, safeDecode(u.password));
    } catch {
      out.push(connection.connectionString);
    }
  }
  return out.filter((s) => s.length > 0);
}
