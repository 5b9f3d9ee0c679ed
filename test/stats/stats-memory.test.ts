import test from 'ava';
import { describeQuery } from '../../src/index.js';
import { PoolStats } from '../../src/stats/pool-stats.js';

// In a file of its own: it keeps the CPU busy for seconds, which would starve database tests
// running beside it in the same process.
test('stats memory stays flat over 1e6 recorded queries with 100 000 distinct statements', (t) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return t.fail('run with --expose-gc (set in package.json ava.nodeArguments)');
  const stats = new PoolStats(60_000);
  // The same work #recordQuery does per query: window histogram, per-statement aggregates.
  const record = (i: number) => {
    const text = `SELECT * FROM t${i % 100_000} WHERE id = ${i}`;
    const d = describeQuery(text);
    const ms = (i % 97) / 10;
    stats.queries.record(ms, i % 50 === 0, i / 10);
    stats.statements.record(d.fingerprint, d.sanitized, ms, i % 50 === 0);
  };
  for (let i = 0; i < 10_000; i++) record(i);
  gc();
  const after1e4 = process.memoryUsage().heapUsed;
  for (let i = 10_000; i < 1_000_000; i++) record(i);
  gc();
  const after1e6 = process.memoryUsage().heapUsed;
  const growthMb = (after1e6 - after1e4) / 1024 / 1024;
  t.log(
    `heap after 1e4: ${(after1e4 / 1048576).toFixed(1)} MB, after 1e6: ${(after1e6 / 1048576).toFixed(1)} MB (growth ${growthMb.toFixed(2)} MB); statements tracked ${stats.statements.size}, evicted ${stats.statements.evicted}`,
  );
  t.true(stats.statements.size <= 200);
  t.true(growthMb < 5);
});
