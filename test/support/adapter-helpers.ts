/** Shared setup of the knex / Kysely / Drizzle adapter tests. */
import type { ExecutionContext } from 'ava';
import { channel, tracingChannel } from 'node:diagnostics_channel';
import { CHANNELS, type AcquireMessage, type QueryMessage, type ReleaseMessage } from '../../src/index.js';
import { adminClient, uniqueName } from './helpers.js';

/** A schema of the test's own, dropped (with everything in it) when the test ends. */
export async function tempSchema(t: ExecutionContext, prefix = 'adapt'): Promise<string> {
  const admin = await adminClient(t);
  const schema = uniqueName(prefix);
  await admin.query(`CREATE SCHEMA "${schema}"`);
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });
  return schema;
}

/** What the core published on its channels for one pool while recording. */
export interface Recorded {
  acquires: AcquireMessage[];
  acquireErrors: AcquireMessage[];
  queries: QueryMessage[];
  queriesEnded: QueryMessage[];
  queryErrors: QueryMessage[];
  releases: ReleaseMessage[];
  stop(): void;
}

/** Subscribes to `db-pool:acquire`, `db-pool:query` and `db-pool:release`, keeping one pool's messages. */
export function recordChannels(t: ExecutionContext, poolId: string): Recorded {
  const rec: Recorded = { acquires: [], acquireErrors: [], queries: [], queriesEnded: [], queryErrors: [], releases: [], stop: () => {} };
  const mine = (m: unknown): boolean => (m as { poolId?: string }).poolId === poolId;
  const acquire = {
    start: () => {},
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (m: AcquireMessage) => void (mine(m) && rec.acquires.push(m)),
    error: (m: AcquireMessage) => void (mine(m) && rec.acquireErrors.push(m)),
  };
  const query = {
    start: (m: QueryMessage) => void (mine(m) && rec.queries.push(m)),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (m: QueryMessage) => void (mine(m) && rec.queriesEnded.push(m)),
    error: (m: QueryMessage) => void (mine(m) && rec.queryErrors.push(m)),
  };
  const release = (m: unknown): void => void (mine(m) && rec.releases.push(m as ReleaseMessage));
  const acquireCh = tracingChannel<AcquireMessage, AcquireMessage>(CHANNELS.acquire);
  const queryCh = tracingChannel<QueryMessage, QueryMessage>(CHANNELS.query);
  acquireCh.subscribe(acquire as never);
  queryCh.subscribe(query as never);
  channel(CHANNELS.release).subscribe(release);
  rec.stop = () => {
    acquireCh.unsubscribe(acquire as never);
    queryCh.unsubscribe(query as never);
    channel(CHANNELS.release).unsubscribe(release);
  };
  t.teardown(() => rec.stop());
  return rec;
}

/** Resolves on the next turn of the event loop after pending I/O callbacks. */
export function nextTurn(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
