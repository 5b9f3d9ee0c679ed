/** Shared test setup: where the server is, and pools that clean up after themselves. */
import type { ExecutionContext } from 'ava';
import type pg from 'pg';
import { eventually } from './outcomes.js';
import { adminClient as plainClient, serverConnections } from './server.js';
import { DatabasePool, type PoolConfig } from '../../src/index.js';

// One copy for the tests and the reliability scenarios: server-side counts, and polling on the
// event loop (not a fixed sleep) until a check holds: `eventually(check, timeoutMs = 5_000)`.
export { eventually, serverConnections };

/** The server under test: `npm test` sets DATABASE_URL (embedded PostgreSQL 18, or your own). */
export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run the tests with `npm test`, which starts an embedded PostgreSQL');
  return url;
}

/** The server under test, as spans and channel messages should show it. */
export function serverOf(): { address: string; port: number; database: string } {
  const u = new URL(databaseUrl());
  return { address: u.hostname, port: u.port ? Number(u.port) : 5432, database: decodeURIComponent(u.pathname.slice(1)) };
}

let seq = 0;
/** A name unique to this test process, for pools, schemas and application names. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${++seq}`;
}

/** A DatabasePool closed when the test ends. */
export function newDb(t: ExecutionContext, pools: Record<string, Partial<PoolConfig>> = {}): DatabasePool {
  const full: Record<string, PoolConfig> = {};
  for (const [id, cfg] of Object.entries(pools)) {
    full[id] = { connection: { connectionString: databaseUrl() }, ...cfg };
  }
  // Leak reports go to the tests' own listeners, not to the console.
  const db = new DatabasePool({ pools: full, logger: null });
  t.teardown(() => db.close({ drainTimeoutMs: 2_000 }));
  return db;
}

/**
 * A plain pg client outside any pool (for server-side checks and pg_terminate_backend), ended when
 * the test ends; an error on it (the server going away) is not an uncaught exception.
 */
export async function adminClient(t: ExecutionContext): Promise<pg.Client> {
  const client = await plainClient(databaseUrl(), 'db-pool-otel-test-admin');
  t.teardown(() => client.end().catch(() => {}));
  return client;
}
