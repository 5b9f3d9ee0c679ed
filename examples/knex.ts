/**
 * knex on a db-pool-otel pool: a migration, query-builder queries and a transaction, with every
 * connection lent by the pool. Our spans (acquire, every statement) print beside
 * instrumentation-knex's, each of our statement spans a child of knex's.
 *
 *   DATABASE_URL=postgres://... npx tsx examples/knex.ts
 *   node scripts/with-postgres.mjs -- tsx examples/knex.ts     # on an embedded PostgreSQL
 */
import { KnexInstrumentation } from '@opentelemetry/instrumentation-knex';
import { startTracing } from './support/print-spans.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabasePool, knexConfig } from '../src/index.js'; // from the package: 'db-pool-otel'

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('Set DATABASE_URL, or run: node scripts/with-postgres.mjs -- tsx examples/knex.ts');
  process.exit(1);
}

startTracing([new KnexInstrumentation()]);
// Loaded after the instrumentations are registered, so instrumentation-knex sees it load.
const { default: knex } = await import('knex');

const db = new DatabasePool({ pools: { main: { connection: { connectionString: url }, max: 5 } } });
const schema = `knex_example_${process.pid}`;
const migrations = mkdtempSync(path.join(tmpdir(), 'knex-example-'));
writeFileSync(
  path.join(migrations, '20240101000000_accounts.cjs'),
  `exports.up = (knex) => knex.schema.createTable('accounts', (t) => {
  t.increments('id');
  t.string('owner').notNullable();
  t.integer('balance').notNullable().checkPositive();
});
exports.down = (knex) => knex.schema.dropTable('accounts');
`,
);

// Spread it to add any knex setting; pool size and timeouts are the pool's own.
const k = knex({
  ...knexConfig(db, 'main', { searchPath: [schema] }),
  migrations: { directory: migrations, schemaName: schema, loadExtensions: ['.cjs'] },
});

try {
  await db.query('main', `CREATE SCHEMA ${schema}`);

  const [, applied] = (await k.migrate.latest()) as [number, string[]];
  console.log('migrated:', applied.join(', '));

  await k('accounts').insert([
    { owner: 'ada', balance: 100 },
    { owner: 'alan', balance: 50 },
  ]);

  // A transfer: both updates or neither (the CHECK fails the second transfer, which rolls back).
  const transfer = (from: string, to: string, amount: number) =>
    k.transaction(async (trx) => {
      await trx('accounts').where({ owner: from }).decrement('balance', amount);
      await trx('accounts').where({ owner: to }).increment('balance', amount);
    });
  await transfer('ada', 'alan', 30);
  await transfer('alan', 'ada', 1_000).catch((err: Error) => console.log('transfer refused and rolled back:', err.message.split(' - ').pop()));

  console.log('balances:', await k('accounts').select('owner', 'balance').orderBy('owner'));
  console.log('pool:', db.getPoolStatus('main'));

  await k.migrate.rollback();
  console.log('rolled back; accounts table exists:', await k.schema.hasTable('accounts'));
} finally {
  await k.destroy(); // knex lets go of the pool; the pool is the DatabasePool's
  await db.query('main', `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.close();
  rmSync(migrations, { recursive: true, force: true });
}
