/**
 * The parameterized select's table (`ITEMS` rows in `ITEMS_TABLE`), made for a run and dropped after
 * it by whoever made it: bench/run.ts, bench/fresh.ts and bench/native-profile.ts.
 */
import pg from 'pg';
import { ITEMS, ITEMS_TABLE } from './contenders.js';

/** Creates and fills the table unless it is there; true when this call made it (so drop it after). */
export async function ensureItemsTable(databaseUrl: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    if ((await c.query('SELECT 1 FROM pg_class WHERE relname = $1', [ITEMS_TABLE])).rowCount! > 0) return false;
    await c.query(`CREATE TABLE ${ITEMS_TABLE} (id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL)`);
    await c.query(`INSERT INTO ${ITEMS_TABLE} SELECT i, 'item ' || i, (i % 100) + 0.99 FROM generate_series(1, ${ITEMS}) i`);
    await c.query(`ANALYZE ${ITEMS_TABLE}`);
    return true;
  } finally {
    await c.end();
  }
}

export async function dropItemsTable(databaseUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  await c.query(`DROP TABLE IF EXISTS ${ITEMS_TABLE}`).finally(() => c.end());
}
