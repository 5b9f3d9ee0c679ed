/**
 * Huge statements: describing one costs bounded memory whatever its length (the sanitizer keeps
 * tokens only for the first DESCRIBE_MAX_CHARS of sanitized text and streams over the rest), what
 * the pool keeps of it (statement stats, slow log, last query of a connection) is capped, and a
 * 10 MB statement through db.query does not run a small heap out of memory.
 *
 * Heap figures are allocation bounds measured with --expose-gc (ava's nodeArguments), never times.
 * The measuring tests are serial: concurrent tests in this file would allocate in between.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { describeQuery } from '../../src/index.js';
import { fingerprintSql } from '../../src/sql/describe.js';
import { Connection } from '../../src/pool/connection.js';
import { DESCRIBE_MAX_CHARS, FINGERPRINT_MAX_TOKENS } from '../../src/sql/describe.js';
import { PoolStats } from '../../src/stats/pool-stats.js';
import { databaseUrl, newDb } from '../support/helpers.js';

const MB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;
const MARKER = / \.\.\.\[truncated, (\d+) chars\]$/;

function heapAfterGc(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** A flat (not a rope) string of about `chars` characters: a bulk INSERT, one literal per row. */
function bulkInsert(chars: number, seed: number): string {
  const rows: string[] = [];
  let len = 0;
  for (let i = 0; len < chars; i++) {
    const row = `(${i + seed}, 'name-${i}-secret', ${i}.5, $${(i % 9) + 1})`;
    rows.push(row);
    len += row.length + 2;
  }
  const text = `INSERT INTO public.big_table (id, name, score, p) VALUES ${rows.join(', ')}`;
  text.charCodeAt(text.length - 1); // flatten now, not inside the measured call
  return text;
}

/** A ~1 MB statement whose every word is its own (nothing collapses), distinct per `k`. */
function wideSelect(k: number, chars = MB, verb = 'SELECT'): string {
  const cols: string[] = [];
  let len = 0;
  for (let i = 0; len < chars; i++) {
    const c = `c${k}_${i}`;
    cols.push(c);
    len += c.length + 2;
  }
  const text = `${verb} ${cols.join(', ')} FROM missing_table_${k}`;
  text.charCodeAt(text.length - 1);
  return text;
}

test.serial('describeQuery on 1.3 MB and 10 MB statements allocates a bounded amount and keeps nothing of them', (t) => {
  if (!gc) return t.fail('run with --expose-gc (set in package.json ava.nodeArguments)');
  describeQuery(bulkInsert(200_000, 0)); // warm the JIT
  const fingerprints: string[] = [];
  for (const size of [1_300_000, 10_000_000]) {
    const text = bulkInsert(size, size);
    const before = heapAfterGc();
    const d = describeQuery(text);
    // No gc in between: the growth is (about) what the call allocated and still had live. The old
    // scanner made a Token object per token: ~300 MB for 10 MB of text.
    const grown = process.memoryUsage().heapUsed - before;
    t.log(`${(size / MB).toFixed(1)} MB statement: heap grew ${(grown / MB).toFixed(2)} MB while describing; sanitized ${d.sanitized.length} chars`);
    t.true(grown < 8 * MB, `${grown} bytes`);
    t.true(d.sanitized.length <= DESCRIBE_MAX_CHARS + 48, String(d.sanitized.length));
    t.regex(d.sanitized, MARKER);
    t.is(MARKER.exec(d.sanitized)![1], String(text.length));
    t.false(d.sanitized.includes('secret'));
    t.is(d.summary, 'INSERT public.big_table');
    fingerprints.push(d.fingerprint);
  }
  // Both scans stopped after FINGERPRINT_MAX_TOKENS: the same bulk INSERT with other values and
  // another row count keeps one fingerprint, marked apart from the one-row statement's.
  t.is(fingerprints[0], fingerprints[1]);
  t.not(fingerprints[0], fingerprintSql("INSERT INTO public.big_table (id, name, score, p) VALUES (1, 'a', 2.5, $1)"));
  // What a description keeps does not pin the text it was cut from (V8 slices share memory).
  const base = heapAfterGc();
  const kept = [
    (() => describeQuery(wideSelect(900, 10 * MB)))(),
    (() => describeQuery(`SELECT a_rather_long_column_name FROM a_rather_long_table_name /* ${'x'.repeat(10 * MB)} */`))(),
  ];
  const retained = heapAfterGc() - base;
  t.log(`two described 10 MB statements retain ${(retained / 1024).toFixed(0)} KiB`);
  t.true(retained < 1 * MB, `${retained} bytes`);
  t.is(kept[1]!.sanitized, 'SELECT a_rather_long_column_name FROM a_rather_long_table_name');
  t.is(kept[1]!.collection, 'a_rather_long_table_name');
});

test.serial('40 distinct 1 MB statements leave statement stats and the slow log holding under 2 MB', (t) => {
  if (!gc) return t.fail('run with --expose-gc');
  // The same work #recordQuery does for each (see managed-pool.ts), the slow log included.
  const record = (stats: PoolStats, k: number) => {
    const d = describeQuery(wideSelect(k));
    stats.statements.record(d.fingerprint, d.sanitized, 100 + k, false);
    stats.slowLog.add({
      poolId: 'p',
      connectionId: 1,
      text: d.sanitized,
      fingerprint: d.fingerprint,
      durationMs: 100 + k,
      at: Date.now(),
      error: undefined,
      sqlState: undefined,
      traceId: undefined,
    });
  };
  // A first round on throw-away tables, so compiled code is not counted below.
  const warm = new PoolStats(60_000);
  for (let k = 0; k < 5; k++) record(warm, 1000 + k);
  const stats = new PoolStats(60_000);
  const before = heapAfterGc();
  for (let k = 0; k < 40; k++) record(stats, k);
  // A caller handing the tables a raw long text gets it capped too. (In a function of its own: a
  // temporary of this frame would stay reachable from the interpreter's registers.)
  const recordRaw = () => stats.statements.record('raw', 'x'.repeat(MB), 1, false);
  recordRaw();
  const retained = heapAfterGc() - before;
  t.log(`retained by stats + slow log: ${(retained / MB).toFixed(2)} MB for 40 × 1 MB statements`);
  t.true(retained < 2 * MB, `${retained} bytes`);
  const top = stats.statements.top(100);
  t.is(top.length, 41);
  t.is(new Set(top.map((s) => s.fingerprint)).size, 41);
  for (const s of top) t.true(s.text.length <= DESCRIBE_MAX_CHARS + 48, String(s.text.length));
  for (const q of stats.slowLog.slowest(100)) t.regex(q.text, MARKER);
});

test('the sanitizer is unchanged under the cap; above it only the kept part and a marker show', (t) => {
  // A list longer than the sanitized text's cap (but under FINGERPRINT_MAX_TOKENS) is truncated
  // and keeps the fingerprint of its collapsed form.
  const items = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from).join(', ');
  const list = `SELECT * FROM big WHERE v IN (${items(7_000)}) AND s = 'tail-secret'`;
  t.true(list.length > 2 * DESCRIBE_MAX_CHARS);
  const d = describeQuery(list);
  t.regex(d.sanitized, /^SELECT \* FROM big WHERE v IN \(\?, \?, /);
  t.regex(d.sanitized, MARKER);
  t.false(d.sanitized.includes('tail-secret'));
  t.is(d.fingerprint, fingerprintSql("SELECT * FROM big WHERE v IN (1) AND s = 'x'"));
  t.is(d.summary, 'SELECT big');
  // A different long statement (the difference far past the cap) gets another fingerprint.
  t.not(describeQuery(list.replace("AND s = 'tail-secret'", "OR t = 'tail-secret'")).fingerprint, d.fingerprint);
  // Past FINGERPRINT_MAX_TOKENS the scan stops: lists cut there count as complete, so size and
  // values do not matter, the statement's head still does.
  const cut = (table: string, n: number, from: number) => fingerprintSql(`SELECT * FROM ${table} WHERE v IN (${items(n, from)}) AND s = 'x'`);
  t.true(FINGERPRINT_MAX_TOKENS < 2 * 20_000);
  t.is(cut('big', 20_000, 0), cut('big', 90_000, 7));
  t.not(cut('big', 20_000, 0), cut('other', 20_000, 0));
  t.not(cut('big', 20_000, 0), d.fingerprint);
  // A long literal or comment costs one `?` (or nothing): such a statement is not truncated.
  const doc = `INSERT INTO docs (body) VALUES ('${'j'.repeat(2 * MB)}') RETURNING id -- ${'c'.repeat(MB)}`;
  t.is(describeQuery(doc).sanitized, 'INSERT INTO docs (body) VALUES (?) RETURNING id');
  t.is(describeQuery(doc).fingerprint, fingerprintSql("insert into docs (body) values ('x') returning id"));
  // Exactly at the cap: whole, no marker.
  const words = (n: number) => `SELECT ${'a, '.repeat(n)}b FROM t`;
  const n = (DESCRIBE_MAX_CHARS - 'SELECT b FROM t'.length) / 3;
  const atCap = words(Math.floor(n));
  t.true(atCap.length <= DESCRIBE_MAX_CHARS);
  t.is(describeQuery(atCap).sanitized, atCap);
  t.is(describeQuery(words(Math.floor(n) + 10)).sanitized.length, DESCRIBE_MAX_CHARS - 1 + ` ...[truncated, ${words(Math.floor(n) + 10).length} chars]`.length);
  // A single token longer than the cap (an identifier) is never shown in part.
  const ident = `SELECT ${'q'.repeat(DESCRIBE_MAX_CHARS + 1)} FROM t`;
  t.is(describeQuery(ident).sanitized, `SELECT ...[truncated, ${ident.length} chars]`);
});

test('a connection describes its last statement once, and lets go of the raw text once it finished', (t) => {
  const client = Object.assign(new EventEmitter(), { connection: new EventEmitter() }) as unknown as pg.Client;
  const conn = new Connection(client, 0, () => {});
  const text = wideSelect(7, 100_000); // above the description cache's 10 000 chars
  conn.noteQuery(text);
  const first = conn.lastQuery;
  t.truthy(first);
  t.is(conn.lastQuery, first, 'the same frozen description object: not re-sanitized per call');
  t.is(conn.describeFinished(text), first!);
  t.is(conn.lastQueryText, undefined);
  t.is(conn.lastQuery, first);
  // The session's setting as the server reports it, and the mode a statement was sent under.
  (client as unknown as { connection: EventEmitter }).connection.emit('parameterStatus', {
    parameterName: 'standard_conforming_strings',
    parameterValue: 'off',
  });
  t.false(conn.standardConformingStrings);
  conn.noteQuery(String.raw`SELECT 'it\'s hidden' FROM t`);
  (client as unknown as { connection: EventEmitter }).connection.emit('parameterStatus', {
    parameterName: 'standard_conforming_strings',
    parameterValue: 'on',
  });
  t.is(conn.lastQuery!.sanitized, 'SELECT ? FROM t');
});

test.serial('a 10 MB statement through db.query, accepted or rejected, runs in a 128 MB heap', async (t) => {
  const src = new URL('../../src/index.ts', import.meta.url).href;
  const code = `
    const { DatabasePool } = await import(${JSON.stringify(src)});
    const db = new DatabasePool({ pools: { big: { connection: { connectionString: process.env.DATABASE_URL }, max: 1, min: 0, slowQueryThresholdMs: 1, acquireTimeoutMs: 60000 } }, logger: null });
    const list = '12345,'.repeat(1_700_000) + '0';
    const out = {};
    try {
      const r = await db.query('big', 'SELECT 1 AS one WHERE 0 IN (' + list + ')');
      out.rows = r.rows.length;
      try { await db.query('big', 'SELEC 1 WHERE 0 IN (' + list + ')'); } catch (e) { out.rejected = e.code; }
      out.lastQuery = db.getConnectionDetails('big').map((c) => c.lastQuery);
      out.top = db.getQueryMetrics('big').topStatements.map((s) => s.text.length);
      out.slow = db.getSlowQueries('big').map((q) => q.text.length);
      global.gc?.();
      out.heapMb = process.memoryUsage().heapUsed / 1048576;
    } finally {
      await db.close();
    }
    console.log(JSON.stringify(out));
  `;
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const { stdout, stderr, exitCode } = await new Promise<{ stdout: string; stderr: string; exitCode: number | null }>((resolve) => {
    const child = execFile(
      process.execPath,
      ['--max-old-space-size=128', '--expose-gc', '--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: root, env: { ...process.env, DATABASE_URL: databaseUrl() }, maxBuffer: 16 * MB, timeout: 100_000 },
      (_err, out, err) => resolve({ stdout: String(out), stderr: String(err), exitCode: child.exitCode }),
    );
  });
  t.false(/heap out of memory|Allocation failed/i.test(stderr), stderr.slice(-2_000));
  t.is(exitCode, 0, stderr.slice(-2_000));
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as {
    rows: number;
    rejected: string;
    lastQuery: string[];
    top: number[];
    slow: number[];
    heapMb: number;
  };
  t.log(`child: heap after ${out.heapMb.toFixed(1)} MB, texts kept ${JSON.stringify(out.top)} chars`);
  t.is(out.rows, 1);
  t.is(out.rejected, '42601');
  // (t.true, not t.regex: a failure would print 16 KiB)
  const last = out.lastQuery[0]!;
  t.true(last.startsWith('SELEC ? WHERE ? IN (?,?,?,') && last.endsWith(' ...[truncated, 10200022 chars]'), `${last.slice(0, 80)} … ${last.slice(-80)}`);
  t.is(out.top.length, 2);
  for (const n of [...out.top, ...out.slow]) t.true(n <= DESCRIBE_MAX_CHARS + 48, String(n));
});

test.serial('40 distinct 1 MB statements through a pool leave its stats holding a bounded amount', async (t) => {
  if (!gc) return t.fail('run with --expose-gc');
  const db = newDb(t, { wide: { max: 1, min: 0, slowQueryThresholdMs: 1 } });
  await db.query('wide', 'SELECT 1');
  const before = heapAfterGc();
  for (let k = 0; k < 40; k++) {
    // Rejected by the server at once (syntax error at the first word); described here in full.
    await t.throwsAsync(db.query('wide', wideSelect(k, MB, 'SELEC')), { code: '42601' });
  }
  const retained = heapAfterGc() - before;
  t.log(`pool after 40 × 1 MB statements: ${(retained / MB).toFixed(2)} MB retained`);
  t.true(retained < 3 * MB, `${retained} bytes`);
  const top = db.getQueryMetrics('wide', { limit: 100 }).topStatements.filter((s) => s.text.startsWith('SELEC c'));
  t.is(top.length, 40);
  for (const s of top) t.regex(s.text, MARKER);
});
