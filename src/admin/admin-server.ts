/**
 * The admin endpoint: a small HTTP JSON API over a `DatabasePool` for the `db-pool` CLI, readiness
 * probes and scripts. Opt-in, loopback by default, bearer-token protected:
 *
 * - `GET /healthz` answers anyone (liveness: the process serves HTTP).
 * - Every other route needs `Authorization: Bearer <token>`, compared in constant time.
 * - With no token configured the mutating routes (restart, cleanup, config) are off (403), and the
 *   read routes answer only when `allowUnauthenticatedReads: true` (loopback only), else 401.
 * - Bodies are JSON, at most `maxBodyBytes` (16 KiB), validated; bad input changes nothing.
 * - Responses never carry a password, a token or a stack trace.
 * - Sockets are bounded: at most `maxConnections` (64) open at once, the ones beyond are closed at
 *   once; a connection must send complete request headers within `headersTimeoutMs` (5 s) and the
 *   whole request within `requestTimeoutMs` (10 s), however slowly it trickles; an idle keep-alive
 *   connection is closed after `keepAliveTimeoutMs` (5 s). Idle or trickling sockets cannot use up
 *   the process's file descriptors (which the pools need for their own connections).
 *
 * @example
 * const admin = await startAdminServer(db, { port: 9000, token: process.env.DB_POOL_ADMIN_TOKEN });
 * // db-pool --url http://127.0.0.1:9000 pools
 * await admin.close();
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { AdminPools } from './pools.js';
import { DbPoolError, InvalidConfigError, type ConfigIssue } from '../errors.js';
import { REDACTED } from '../config/config.js';
import { AdminHttpError, closeWithBadRequest, closeWithTimeout, discardBody, enforceHeaderDeadline, hasBody, readJsonBody, sendJson } from './http.js';
import {
  ADMIN_SERVER_DEFAULTS,
  DEFAULT_ADMIN_PORT,
  DEFAULT_MAX_BODY_BYTES,
  isLoopback,
  MIN_TOKEN_LENGTH,
  type AdminErrorBody,
  type AdminIssue,
} from './protocol.js';
import { ADMIN_ROUTES, isEchoable, type AdminRoute } from './routes.js';

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  /** TCP port; 0 picks a free one (read it from the result). Default 9000. */
  port?: number;
  /** Interface to bind. Default `127.0.0.1` (loopback only): see the README before changing it. */
  host?: string;
  /**
   * Bearer token every route but `/healthz` requires; at least 16 characters (e.g.
   * `openssl rand -hex 32`). Without one, restart / cleanup / config changes are off.
   */
  token?: string;
  /**
   * Without a token: serve the read routes to unauthenticated callers. Loopback hosts only, and only
   * to requests whose `Host` header names a loopback address (a guard against DNS rebinding).
   * With a token: reads without an `Authorization` header are served too. Default false.
   */
  allowUnauthenticatedReads?: boolean;
  /** Largest request body accepted; larger ones get 413. Default 16 384 (16 KiB). */
  maxBodyBytes?: number;
  /**
   * Where mutations (`info`: who restarted, cleaned or reconfigured which pool) and rejected
   * tokens (`warn`) are logged. Default `console`; `null` for silence.
   */
  logger?: Pick<Console, 'info' | 'warn'> | null;
  /**
   * Most connections open at once; further ones are closed as soon as they are accepted (and the
   * refusals logged, at most once a minute). Default 64.
   */
  maxConnections?: number;
  /**
   * Time a connection has to send complete request headers, from when it opens (or its previous
   * answer was sent); an idle or trickling connection is answered 408 and closed. Default 5 000 ms.
   */
  headersTimeoutMs?: number;
  /** Time to receive a whole request, body included (not to answer it). Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long. Default 5 000 ms. */
  keepAliveTimeoutMs?: number;
}

export { ADMIN_SERVER_DEFAULTS };

/** Refusals beyond `maxConnections` are logged at most this often. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

/** A running admin endpoint. */
export interface AdminServer {
  /** Base URL, e.g. `http://127.0.0.1:9000` (give it to the CLI as `--url` or `DB_POOL_ADMIN_URL`). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stops listening and closes open connections. Safe to call twice. */
  close(): Promise<void>;
}

const optionsSchema = z.strictObject({
  port: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(0, { error: 'must be from 0 to 65535' })
    .max(65_535, { error: 'must be from 0 to 65535' })
    .optional(),
  host: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).optional(),
  token: z
    .string({ error: 'must be a string' })
    .min(MIN_TOKEN_LENGTH, { error: `must be at least ${MIN_TOKEN_LENGTH} characters (e.g. the output of \`openssl rand -hex 32\`)` })
    .max(4096, { error: 'must be at most 4096 characters' })
    .regex(/^[\x21-\x7e]+$/, { error: 'must be printable ASCII without spaces (it travels in an HTTP header)' })
    .optional(),
  allowUnauthenticatedReads: z.boolean({ error: 'must be true or false' }).optional(),
  maxBodyBytes: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(256, { error: 'must be from 256 to 16777216' })
    .max(16 * 1024 * 1024, { error: 'must be from 256 to 16777216' })
    .optional(),
  logger: z.any().optional(),
  maxConnections: wholeNumber(1, 10_000).optional(),
  headersTimeoutMs: wholeNumber(100, 600_000, ' (milliseconds)').optional(),
  requestTimeoutMs: wholeNumber(100, 3_600_000, ' (milliseconds)').optional(),
  keepAliveTimeoutMs: wholeNumber(100, 600_000, ' (milliseconds)').optional(),
});

function wholeNumber(min: number, max: number, unit = '') {
  const range = { error: `must be from ${min} to ${max}${unit}` };
  return z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).min(min, range).max(max, range);
}

/**
 * Starts the admin endpoint over `db`. Resolves once listening; rejects with INVALID_CONFIG for bad
 * options, or with the listen error (e.g. `EADDRINUSE`).
 *
 * @example
 * const admin = await startAdminServer(db, { token: process.env.DB_POOL_ADMIN_TOKEN });
 * console.log(`admin endpoint on ${admin.url}`);
 */
export async function startAdminServer(db: AdminPools, options: AdminServerOptions = {}): Promise<AdminServer> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issues: ConfigIssue[] = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '');
      const raw = key ? (options as Record<string, unknown>)[key] : options;
      return {
        path: `adminServer.${i.path.join('.') || (i.code === 'unrecognized_keys' ? i.keys.join(', ') : '')}`,
        value: key === 'token' ? REDACTED : isEchoable(raw) || typeof raw === 'string' ? raw : undefined,
        rule: i.code === 'unrecognized_keys' ? 'is not a known option' : i.message,
      };
    });
    throw new InvalidConfigError(issues, 'the admin server');
  }
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? DEFAULT_ADMIN_PORT;
  const token = options.token;
  const allowUnauthenticatedReads = options.allowUnauthenticatedReads ?? false;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logger = options.logger === undefined ? console : options.logger;
  const maxConnections = options.maxConnections ?? ADMIN_SERVER_DEFAULTS.maxConnections;
  const requestTimeoutMs = options.requestTimeoutMs ?? ADMIN_SERVER_DEFAULTS.requestTimeoutMs;
  const headersTimeoutMs = options.headersTimeoutMs ?? Math.min(ADMIN_SERVER_DEFAULTS.headersTimeoutMs, requestTimeoutMs);
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? ADMIN_SERVER_DEFAULTS.keepAliveTimeoutMs;
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new InvalidConfigError(
      [{ path: 'adminServer.headersTimeoutMs', value: headersTimeoutMs, rule: `must not be more than requestTimeoutMs (${requestTimeoutMs})` }],
      'the admin server',
    );
  }
  if (allowUnauthenticatedReads && !isLoopback(host)) {
    throw new InvalidConfigError(
      [
        {
          path: 'adminServer.allowUnauthenticatedReads',
          value: true,
          rule: `is allowed on a loopback host only (host is ${JSON.stringify(host)}): set a token instead`,
        },
      ],
      'the admin server',
    );
  }
  const tokenDigest = token === undefined ? undefined : digest(token);

  const authorize = (route: AdminRoute, req: IncomingMessage): void => {
    if (route.access === 'public') return;
    const header = req.headers.authorization;
    if (tokenDigest === undefined) {
      if (route.access === 'write') {
        throw new AdminHttpError(
          403,
          'MUTATIONS_DISABLED',
          'this admin endpoint was started without a token, so restart, cleanup and config changes are off: start it with startAdminServer({ token })',
        );
      }
      if (allowUnauthenticatedReads) {
        requireLoopbackHostHeader(req);
        return;
      }
      throw new AdminHttpError(
        401,
        'UNAUTHORIZED',
        'this admin endpoint was started without a token and without allowUnauthenticatedReads: start it with startAdminServer({ token })',
        undefined,
        { 'www-authenticate': 'Bearer realm="db-pool-admin"' },
      );
    }
    if (header === undefined) {
      if (route.access === 'read' && allowUnauthenticatedReads) {
        requireLoopbackHostHeader(req);
        return;
      }
      throw new AdminHttpError(401, 'UNAUTHORIZED', 'missing bearer token: send "Authorization: Bearer <token>"', undefined, {
        'www-authenticate': 'Bearer realm="db-pool-admin"',
      });
    }
    const presented = /^Bearer +([\x21-\x7e]+) *$/i.exec(header)?.[1];
    // Compare digests: equal length whatever was sent, so neither the token nor its length leaks through timing.
    if (presented === undefined || !timingSafeEqual(digest(presented), tokenDigest)) {
      logger?.warn(`[db-pool-otel] admin: rejected token for ${req.method} ${pathOf(req)} from ${req.socket.remoteAddress ?? '?'}`);
      throw new AdminHttpError(401, 'UNAUTHORIZED', 'invalid bearer token', undefined, {
        'www-authenticate': 'Bearer realm="db-pool-admin", error="invalid_token"',
      });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let route: AdminRoute | undefined;
    try {
      // Prefixed, not resolved against a base: a target starting with "//" would be read as
      // scheme-relative (another host), not as a path.
      const target = req.url ?? '/';
      const url = new URL(`http://admin.invalid${target.startsWith('/') ? target : `/${target}`}`);
      const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
      const match = matchRoute(req.method ?? 'GET', path);
      route = match.route;
      authorize(match.route, req);
      const body = match.route.body ? await readJsonBody(req, maxBodyBytes) : undefined;
      const result = await match.route.handle({ db, params: match.params, query: url.searchParams, body });
      const status = result.status ?? 200;
      if (match.route.access === 'write') {
        logger?.info(`[db-pool-otel] admin: ${req.method} ${path} from ${req.socket.remoteAddress ?? '?'}: ${status}`);
      }
      sendJson(res, status, result.body, {}, !(await settleBody(req)));
    } catch (err) {
      const e = toHttpError(err, logger);
      if (route?.access === 'write' && e.status !== 401 && e.status !== 403) {
        logger?.info(`[db-pool-otel] admin: ${req.method} ${pathOf(req)} from ${req.socket.remoteAddress ?? '?'}: ${e.status} ${e.code}`);
      }
      const body: AdminErrorBody = { error: { code: e.code, message: e.message } };
      if (e.issues) body.error.issues = e.issues;
      sendJson(res, e.status, body, e.headers, !(await settleBody(req)));
    }
  };

  const server = createServer(
    {
      // Node checks the header and request timeouts on this period (30 s by default, which would
      // let an idle socket live 35 s): a tenth of the header timeout, 100 ms to 1 s.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeoutMs / 10))),
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs, // to receive a request, not to answer it (a restart may drain longer)
      keepAliveTimeout: keepAliveTimeoutMs,
    },
    (req, res) => void handle(req, res),
  );
  // Beyond the cap Node closes a connection as soon as it is accepted ('drop').
  server.maxConnections = maxConnections;
  let refused = 0;
  let lastRefusalLog = -Infinity;
  server.on('drop', () => {
    refused++;
    const now = performance.now();
    if (now - lastRefusalLog < REFUSAL_LOG_INTERVAL_MS) return;
    lastRefusalLog = now;
    logger?.warn(`[db-pool-otel] admin: connection limit of ${maxConnections} reached; refused ${refused} connection(s) so far (maxConnections)`);
  });
  // Headers within headersTimeoutMs of the connection opening (or of the previous answer on it).
  enforceHeaderDeadline(server, headersTimeoutMs);
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') closeWithTimeout(socket);
    else closeWithBadRequest(socket);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function matchRoute(method: string, path: string): { route: AdminRoute; params: Record<string, string> } {
  const segments = path.split('/').slice(1);
  const allowed: string[] = [];
  for (const route of ADMIN_ROUTES) {
    const params = matchPath(route.path, segments);
    if (!params) continue;
    if (route.method === method) return { route, params };
    allowed.push(route.method);
  }
  if (allowed.length > 0) {
    throw new AdminHttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path} (allowed: ${allowed.join(', ')})`, undefined, {
      allow: allowed.join(', '),
    });
  }
  throw new AdminHttpError(404, 'NOT_FOUND', `no route ${JSON.stringify(path.slice(0, 200))}: see GET /pools, /health, /readyz, /healthz`);
}

function matchPath(pattern: string, segments: string[]): Record<string, string> | undefined {
  const parts = pattern.split('/').slice(1);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const seg = segments[i]!;
    if (part.startsWith(':')) {
      let value: string;
      try {
        value = decodeURIComponent(seg);
      } catch {
        throw new AdminHttpError(400, 'INVALID_REQUEST', 'malformed percent-encoding in the path');
      }
      if (value === '') return undefined;
      params[part.slice(1)] = value;
    } else if (part !== seg) {
      return undefined;
    }
  }
  return params;
}

function toHttpError(err: unknown, logger: Pick<Console, 'warn'> | null): AdminHttpError {
  if (err instanceof AdminHttpError) return err;
  if (err instanceof InvalidConfigError) {
    const issues = err.issues.map((i): AdminIssue => (isEchoable(i.value) ? { path: i.path, rule: i.rule, value: i.value } : { path: i.path, rule: i.rule }));
    return new AdminHttpError(400, 'INVALID_CONFIG', `invalid configuration: ${issues.map((i) => `${i.path} ${i.rule}`).join('; ')}`, issues);
  }
  if (err instanceof DbPoolError) {
    // Library messages are written to be shown (they never contain a password).
    const status =
      err.code === 'POOL_NOT_FOUND' ? 404 : err.code === 'POOL_CLOSED' || err.code === 'CIRCUIT_OPEN' || err.code === 'CONNECTION_FAILED' ? 503 : 500;
    return new AdminHttpError(status, err.code, err.message);
  }
  logger?.warn(`[db-pool-otel] admin: internal error: ${err instanceof Error ? err.message : String(err)}`);
  return new AdminHttpError(500, 'INTERNAL', 'internal error in the admin endpoint (logged by the application)');
}

/**
 * A body left unread (the request was rejected before it was read) is read and thrown away, so the
 * answer is not lost to a TCP reset; false when that gave up (too big or too slow): close then.
 */
function settleBody(req: IncomingMessage): Promise<boolean> {
  return hasBody(req) ? discardBody(req) : Promise.resolve(true);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!.slice(0, 200);
}

function requireLoopbackHostHeader(req: IncomingMessage): void {
  const hostHeader = req.headers.host ?? '';
  const name = hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.split(':')[0]!;
  if (!isLoopback(name)) {
    throw new AdminHttpError(
      401,
      'UNAUTHORIZED',
      'unauthenticated reads are served only to requests addressed to a loopback host name (Host header): send a bearer token',
    );
  }
}
