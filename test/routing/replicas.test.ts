import test from 'ava';
import { DatabasePool } from '../../src/index.js';
import { databaseUrl } from '../support/helpers.js';
import { FaultProxy } from '../support/fault-proxy.js';

test('read-only queries and transactions go to healthy replicas and fall back to the primary', async (t) => {
  const [primary, r1, r2] = await Promise.all([FaultProxy.start(databaseUrl()), FaultProxy.start(databaseUrl()), FaultProxy.start(databaseUrl())]);
  t.teardown(() => Promise.all([primary.close(), r1.close(), r2.close()]).then(() => undefined));
  const db = new DatabasePool({
    pools: {
      main: {
        connection: { connectionString: primary.url(databaseUrl()) },
        readReplicas: [{ connectionString: r1.url(databaseUrl()) }, { connectionString: r2.url(databaseUrl()) }],
        max: 2,
        min: 0,
      },
    },
    logger: null,
  });
  t.teardown(() => db.close({ drainTimeoutMs: 500 }));

  await Promise.all(Array.from({ length: 20 }, () => db.query('main', 'SELECT 1', [], { readOnly: true })));
  t.is(primary.accepted, 0, 'reads did not touch the primary');
  t.true(r1.accepted > 0 && r2.accepted > 0, 'reads are spread over both replicas');
  await db.query('main', 'SELECT 1'); // a write-capable query goes to the primary
  t.is(primary.accepted, 1);

  const ro = await db.transaction('main', async (tx) => (await tx.query<{ ro: string }>("SELECT current_setting('transaction_read_only') AS ro")).rows[0]!.ro, {
    readOnly: true,
  });
  t.is(ro, 'on');
  t.is(primary.accepted, 1, 'the read-only transaction ran on a replica');

  // Both replicas go down: reads fall back to the primary, and none fails.
  await Promise.all([r1.down(), r2.down()]);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => db.query<{ n: number }>('main', 'SELECT 2 AS n', [], { readOnly: true })));
  t.true(
    results.every((r) => r.status === 'fulfilled'),
    JSON.stringify(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))),
  );
  t.true(primary.accepted >= 2);
  t.deepEqual(db.listPools(), ['main']);
  t.is(db.getPoolConfig('main').readReplicas!.length, 2);
});
