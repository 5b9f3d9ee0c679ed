/** Shared setup of the admin endpoint and CLI tests: a DatabasePool with an admin server over it. */
import type { ExecutionContext } from 'ava';
import http from 'node:http';
import { DatabasePool, type PoolConfig } from '../../src/index.js';
import { startAdminServer, type AdminServer, type AdminServerOptions } from '../../src/admin/admin-server.js';
import { readBody } from './alert-receivers.js';
import { databaseUrl } from './helpers.js';

/** The test token (long enough for startAdminServer) and a wrong one of the same length. */
export const TOKEN = 'test-admin-token-7f3c9a1e5b2d4c6f';
export const WRONG_TOKEN = 'test-admin-token-00000000000000000'.slice(0, TOKEN.length);
/** A password that must never appear in any admin response or CLI output. */
export const SECRET_PASSWORD = 'pw-never-shown-4f1d2c';

/** A DatabasePool (silent logger) closed when the test ends. Pools get DATABASE_URL unless they say otherwise. */
export function quietDb(t: ExecutionContext, pools: Record<string, Partial<PoolConfig>> = {}): DatabasePool {
  const db = new DatabasePool({ pools: fullConfigs(pools), logger: null, health: { probeTimeoutMs: 5_000 } });
  t.teardown(() => db.close({ drainTimeoutMs: 2_000 }));
  return db;
}

export function fullConfigs(pools: Record<string, Partial<PoolConfig>>): Record<string, PoolConfig> {
  const full: Record<string, PoolConfig> = {};
  for (const [id, cfg] of Object.entries(pools)) full[id] = { connection: { connectionString: databaseUrl() }, ...cfg };
  return full;
}

/** An admin server on a free loopback port, closed when the test ends. */
export async function adminFor(t: ExecutionContext, db: DatabasePool, options: AdminServerOptions = { token: TOKEN }): Promise<AdminServer> {
  const admin = await startAdminServer(db, { port: 0, logger: null, ...options });
  t.teardown(() => admin.close());
  return admin;
}

/** A loopback port nobody listens on: a free port, left unused. */
export { freePort as closedPort } from './server.js';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/**
 * One request with node:http, for what fetch cannot do (a chosen Host header, a chunked body).
 * `chunks` are written one by one without a content-length.
 */
export function rawRequest(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string; chunks?: string[] },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(`${url}${options.path}`, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      answered = true;
      readBody(res).then(({ text, json }) => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json }), reject);
    });
    // The server may close after answering early (413) while the body is still being sent: the
    // answer counts; an error without one fails the request.
    let failure: Error | undefined;
    req.on('error', (err) => (failure = err));
    req.on('close', () => {
      if (!answered) reject(failure ?? new Error('connection closed without a response'));
    });
    if (options.chunks) {
      for (const c of options.chunks) req.write(c);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}
