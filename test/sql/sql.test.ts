import test from 'ava';
import fc from 'fast-check';
import { describeQuery, sanitizeSql, fingerprintSql } from '../../src/sql/describe.js';

const HEX16 = /^[0-9a-f]{16}$/;

// ---------------------------------------------------------------------------
// Literals are removed
// ---------------------------------------------------------------------------

const literalCases: Array<[kind: string, literal: string]> = [
  ['single-quoted string', "'secret-value'"],
  ["string with '' escape", "'o''brien-secret'"],
  ['E string with backslash escape', "E'it\\'s-secret'"],
  ['lower-case e string', "e'tab\\tsecret'"],
  ['bit string B', "B'101101'"],
  ['hex bit string X', "X'DEADBEEF'"],
  ['national string N', "N'nat-secret'"],
  ['unicode string U&', "U&'d\\0061t\\+000061-secret'"],
  ['dollar-quoted $$', '$$dollar secret$$'],
  ['tagged dollar-quoted', "$fn$ body with $$ and 'quote' secret $fn$"],
  ['integer', '987654321'],
  ['decimal', '31415.9265'],
  ['leading-dot decimal', '.98765'],
  ['exponent', '6.022e23'],
  ['negative exponent', '1.5E-300'],
  ['hex integer', '0xCAFEBABE'],
  ['underscored integer', '1_000_000'],
];

for (const [kind, literal] of literalCases) {
  test(`removes ${kind}`, (t) => {
    const sql = `SELECT col_a FROM tbl WHERE col_b = ${literal} AND col_c = 1`;
    const { sanitized } = describeQuery(sql);
    t.is(sanitized, 'SELECT col_a FROM tbl WHERE col_b = ? AND col_c = ?');
    t.false(sanitized.includes(literal));
  });
}

test('string continued across a newline is one literal', (t) => {
  t.is(sanitizeSql("SELECT 'abc'\n  'def' AS x"), 'SELECT ? AS x');
});

test('signed numbers fold the sign only in unary position', (t) => {
  t.is(sanitizeSql('SELECT a=-1, b<>-2.5, c - 7, d*-3 FROM t LIMIT -1'), 'SELECT a=?, b<>?, c - ?, d*? FROM t LIMIT ?');
});

test('casts and typed literals keep their type names', (t) => {
  t.is(sanitizeSql("SELECT '2024-01-01'::date, interval '1 day', x::int8"), 'SELECT ?::date, interval ?, x::int8');
});

// ---------------------------------------------------------------------------
// Placeholders, identifiers, comments, whitespace
// ---------------------------------------------------------------------------

test('keeps placeholders and digits inside identifiers', (t) => {
  const sql = 'SELECT t1.col_2, "quoted 1", a$1 FROM t1 WHERE id = $1 AND x = $12';
  t.is(sanitizeSql(sql), sql);
});

test('keeps quoted identifiers including escaped quotes', (t) => {
  const sql = 'SELECT "weird ""col"" 42", "it\'s" FROM "My Table"';
  t.is(sanitizeSql(sql), sql);
});

test('keeps keyword case as written and collapses whitespace', (t) => {
  t.is(sanitizeSql('  select\t*\n\n  FROM   Users  where  Id = 5  '), 'select * FROM Users where Id = ?');
});

test('removes line comments, block comments and nested block comments', (t) => {
  const sql = [
    "-- leading comment with 123 and 'x'",
    'SELECT a, /* inline 42 */ b -- trailing',
    'FROM t /* outer /* nested */ still comment */ WHERE c = 1',
  ].join('\n');
  const s = sanitizeSql(sql);
  t.is(s, 'SELECT a, b FROM t WHERE c = ?');
  t.false(s.includes('comment'));
  t.false(s.includes('nested'));
});

test('a comment separates tokens like whitespace', (t) => {
  t.is(sanitizeSql('SELECT a/**/FROM t'), 'SELECT a FROM t');
});

test('jsonb ? operators survive', (t) => {
  t.is(sanitizeSql("SELECT * FROM t WHERE data ? 'k' AND data ?| array['a']"), 'SELECT * FROM t WHERE data ? ? AND data ?| array[?]');
});

// ---------------------------------------------------------------------------
// Unterminated input
// ---------------------------------------------------------------------------

test('unterminated constructs run to the end and never throw', (t) => {
  t.is(sanitizeSql("SELECT 'never closed AND secret"), 'SELECT ?');
  t.is(sanitizeSql("SELECT E'never closed \\' still"), 'SELECT ?');
  t.is(sanitizeSql('SELECT $tag$ never closed'), 'SELECT ?');
  t.is(sanitizeSql('SELECT $$ never closed'), 'SELECT ?');
  t.is(sanitizeSql('SELECT 1 /* never closed /* nested */'), 'SELECT ?');
  t.is(sanitizeSql('SELECT 1 -- trailing'), 'SELECT ?');
  t.is(sanitizeSql('SELECT "never closed'), 'SELECT "never closed');
  t.is(describeQuery('SELECT * FROM "open').collection, 'open');
  for (const s of ["'", '"', '$', '$a', '$a$', '/*', '--', 'E', "E'", "E'\\", "U&'", 'U&"', '-', '.', '0x', '1e', '1e+']) {
    t.notThrows(() => describeQuery(s), JSON.stringify(s));
  }
});

// ---------------------------------------------------------------------------
// Operation, collection and summary
// ---------------------------------------------------------------------------

const statementCases: Array<[sql: string, operation: string | undefined, collection: string | undefined]> = [
  ['SELECT * FROM users WHERE id = 1', 'SELECT', 'users'],
  ['select id from public.users u join orders o on o.uid = u.id', 'SELECT', 'public.users'],
  ['SELECT * FROM "MySchema"."Order Items"', 'SELECT', 'MySchema.Order Items'],
  ['SELECT * FROM ONLY parent', 'SELECT', 'parent'],
  ['SELECT 1', 'SELECT', undefined],
  ['SELECT now()', 'SELECT', undefined],
  ['SELECT * FROM (SELECT 1) AS sub', 'SELECT', undefined],
  ['SELECT * FROM generate_series(1, 3)', 'SELECT', undefined],
  ['SELECT extract(year FROM d), (SELECT max(x) FROM y) FROM z', 'SELECT', 'z'],
  ['SELECT a IS DISTINCT FROM b FROM t', 'SELECT', 't'],
  ['(SELECT * FROM a) UNION ALL (SELECT * FROM b)', 'SELECT', 'a'],
  ['INSERT INTO events (a, b) VALUES ($1, $2)', 'INSERT', 'events'],
  ['insert into app.events as e select * from staging', 'INSERT', 'app.events'],
  ['UPDATE accounts SET balance = balance - 10 WHERE id = 3', 'UPDATE', 'accounts'],
  ['UPDATE ONLY accounts SET x = 1', 'UPDATE', 'accounts'],
  ['DELETE FROM sessions WHERE expires < now()', 'DELETE', 'sessions'],
  ['MERGE INTO target t USING source s ON t.id = s.id WHEN MATCHED THEN DELETE', 'MERGE', 'target'],
  ['WITH recent AS (SELECT * FROM orders WHERE ts > now()) SELECT count(*) FROM recent', 'SELECT', 'recent'],
  [
    'WITH RECURSIVE a (n) AS (SELECT 1 UNION SELECT n + 1 FROM a), b AS MATERIALIZED (DELETE FROM x RETURNING *) INSERT INTO archive SELECT * FROM b',
    'INSERT',
    'archive',
  ],
  ['WITH a AS (SELECT 1) UPDATE t SET v = 1', 'UPDATE', 't'],
  ['WITH broken AS (SELECT 1', 'WITH', undefined],
  ['BEGIN', 'BEGIN', undefined],
  ['begin isolation level serializable', 'BEGIN', undefined],
  ['COMMIT', 'COMMIT', undefined],
  ['ROLLBACK', 'ROLLBACK', undefined],
  ['CREATE TABLE things (id int)', 'CREATE', 'things'],
  ['CREATE TEMP TABLE IF NOT EXISTS s.tmp (id int)', 'CREATE', 's.tmp'],
  ['CREATE UNLOGGED TABLE cache_t (k text)', 'CREATE', 'cache_t'],
  ['CREATE INDEX idx ON things (id)', 'CREATE', undefined],
  ['DROP TABLE things', 'DROP', 'things'],
  ['DROP TABLE IF EXISTS "Things" CASCADE', 'DROP', 'Things'],
  ['DROP INDEX idx', 'DROP', undefined],
  ['ALTER TABLE things ADD COLUMN c int', 'ALTER', 'things'],
  ['ALTER TABLE IF EXISTS ONLY things DROP COLUMN c', 'ALTER', 'things'],
  ['TRUNCATE logs', 'TRUNCATE', 'logs'],
  ['TRUNCATE TABLE ONLY public.logs RESTART IDENTITY', 'TRUNCATE', 'public.logs'],
  ['SET search_path = public', 'SET', undefined],
  ['SHOW work_mem', 'SHOW', undefined],
  ['COPY items (a, b) FROM STDIN', 'COPY', 'items'],
  ['COPY (SELECT * FROM items) TO STDOUT', 'COPY', undefined],
  ['CALL refresh_stats(1)', 'CALL', undefined],
  ['EXPLAIN ANALYZE SELECT * FROM t', 'EXPLAIN', undefined],
  ['VACUUM ANALYZE t', 'VACUUM', undefined],
  ['ANALYZE t', 'ANALYZE', undefined],
  ['LISTEN channel', 'LISTEN', undefined],
  ["NOTIFY channel, 'payload'", 'NOTIFY', undefined],
  ['DO $$ BEGIN PERFORM 1; END $$', 'DO', undefined],
  ['/* hint */ -- c\n  select 1', 'SELECT', undefined],
  ['', undefined, undefined],
  ['   \n\t', undefined, undefined],
  ['-- just a comment', undefined, undefined],
  ['42', undefined, undefined],
];

for (const [sql, operation, collection] of statementCases) {
  test(`operation/collection: ${JSON.stringify(sql)}`, (t) => {
    const d = describeQuery(sql);
    t.is(d.operation, operation);
    t.is(d.collection, collection);
    const summary = operation === undefined ? 'unknown' : collection === undefined ? operation : `${operation} ${collection}`;
    t.is(d.summary, summary);
  });
}

test('summary is capped at 255 chars', (t) => {
  const d = describeQuery(`SELECT * FROM ${'x'.repeat(1000)}`);
  t.is(d.collection, 'x'.repeat(1000));
  t.is(d.summary.length, 255);
  t.true(d.summary.startsWith('SELECT xxx'));
});

test('only the first statement is described', (t) => {
  const d = describeQuery('SELECT 1; DELETE FROM t');
  t.is(d.operation, 'SELECT');
  t.is(d.collection, undefined);
  t.is(d.sanitized, 'SELECT ?; DELETE FROM t');
});

// ---------------------------------------------------------------------------
// Fingerprints
// ---------------------------------------------------------------------------

test('fingerprint is 16 hex chars and stable', (t) => {
  const f = fingerprintSql('SELECT * FROM t WHERE a = 1');
  t.regex(f, HEX16);
  t.is(fingerprintSql('SELECT * FROM t WHERE a = 1'), f);
  t.is(fingerprintSql(''), 'cbf29ce484222325'); // FNV-1a 64 offset basis: hash of no bytes
});

test('fingerprint ignores literal values, whitespace, case and comments', (t) => {
  const base = fingerprintSql("SELECT * FROM users WHERE id = 1 AND name = 'a'");
  t.is(fingerprintSql("select *\n  from USERS where ID=99999 and NAME = E'other\\n' -- c"), base);
  t.is(fingerprintSql('SELECT * FROM users WHERE id = -5 AND name = $$x$$'), base);
  t.is(fingerprintSql('SELECT * FROM users WHERE id = $1 AND name = $2'), base);
  t.is(fingerprintSql('SELECT * FROM "users" WHERE id = 1 AND name = \'a\''), base);
});

test('fingerprint collapses IN, VALUES and ARRAY lists of values', (t) => {
  const inOne = fingerprintSql('SELECT * FROM t WHERE id IN (1)');
  t.is(fingerprintSql('SELECT * FROM t WHERE id IN (1, 2, 3)'), inOne);
  t.is(fingerprintSql('select * from t where id in ($1, $2, $3, $4, $5)'), inOne);
  t.is(fingerprintSql("SELECT * FROM t WHERE id IN ('a','b')"), inOne);

  const values = fingerprintSql('INSERT INTO t (a, b) VALUES (1, 2)');
  t.is(fingerprintSql("INSERT INTO t (a, b) VALUES (1, 2), (3, 4), ('x', $1)"), values);

  t.is(fingerprintSql('SELECT * FROM t WHERE id = ANY(ARRAY[1, 2, 3])'), fingerprintSql('SELECT * FROM t WHERE id = ANY(ARRAY[7])'));
  // A list that is not only values is not collapsed.
  t.not(fingerprintSql('SELECT * FROM t WHERE id IN (1, x)'), inOne);
});

test('fingerprint differs for different tables, columns and operators', (t) => {
  const a = fingerprintSql('SELECT * FROM users WHERE id = 1');
  t.not(fingerprintSql('SELECT * FROM orders WHERE id = 1'), a);
  t.not(fingerprintSql('SELECT * FROM users WHERE uid = 1'), a);
  t.not(fingerprintSql('SELECT * FROM users WHERE id > 1'), a);
  t.not(fingerprintSql('SELECT * FROM "Users" WHERE id = 1'), a);
  t.not(fingerprintSql('DELETE FROM users WHERE id = 1'), a);
});

// ---------------------------------------------------------------------------
// Memoisation and scale
// ---------------------------------------------------------------------------

test('results are memoised and frozen', (t) => {
  const sql = 'SELECT * FROM memo_test WHERE a = 1';
  const a = describeQuery(sql);
  t.is(describeQuery(sql), a);
  t.true(Object.isFrozen(a));
  t.is(sanitizeSql(sql), a.sanitized);
  t.is(fingerprintSql(sql), a.fingerprint);
});

test('the cache is bounded and evicts the oldest entry', (t) => {
  const first = describeQuery('SELECT evict_me');
  for (let i = 0; i < 1100; i++) describeQuery(`SELECT filler_${i}`);
  const again = describeQuery('SELECT evict_me');
  t.not(again, first);
  t.deepEqual(again, first);
});

test('frequently used entries survive eviction', (t) => {
  const hot = describeQuery('SELECT hot_entry');
  for (let i = 0; i < 3000; i++) {
    describeQuery(`SELECT churn_${i}`);
    if (i % 100 === 0) t.is(describeQuery('SELECT hot_entry'), hot);
  }
  t.is(describeQuery('SELECT hot_entry'), hot);
});

test('long texts are described but not cached', (t) => {
  const sql = `SELECT * FROM big WHERE v IN (${Array.from({ length: 3000 }, (_, i) => i).join(', ')})`;
  t.true(sql.length > 10_000);
  const a = describeQuery(sql);
  const b = describeQuery(sql);
  t.not(a, b);
  t.deepEqual(a, b);
  t.is(a.collection, 'big');
  t.is(a.fingerprint, fingerprintSql('SELECT * FROM big WHERE v IN (1)'));
});

// Quadratic scanning would take minutes on these; ava's test timeout catches that (no timing assert here).
test('pathological inputs are scanned without blowing up', (t) => {
  const inputs = [
    "'".repeat(200_000),
    '/*'.repeat(100_000),
    '$a'.repeat(100_000),
    "E'\\".repeat(70_000),
    '-'.repeat(200_000),
    `${'('.repeat(100_000)}SELECT * FROM t`,
    'WITH '.repeat(40_000),
    'SELECT 1.e1.'.repeat(20_000),
  ];
  for (const s of inputs) t.regex(describeQuery(s).fingerprint, HEX16);
});

// ---------------------------------------------------------------------------
// Property-based tests
// ---------------------------------------------------------------------------

/** Strings biased towards the characters the scanner cares about. */
const sqlish = fc.string({
  unit: fc.constantFrom(...`'"$-/*\\\n\t eEbBxXuUnN&0123456789._()[],;:=<>+?aZ`.split('')),
  maxLength: 60,
});

test('property: never throws and always returns a 16-hex fingerprint', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), sqlish), (s) => {
      const d = describeQuery(s);
      return HEX16.test(d.fingerprint) && typeof d.sanitized === 'string' && d.summary.length > 0 && d.summary.length <= 255;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: sanitizing is idempotent and preserves the fingerprint', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), sqlish), (s) => {
      const d = describeQuery(s);
      const again = describeQuery(d.sanitized);
      return again.sanitized === d.sanitized && again.fingerprint === d.fingerprint;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

const TEMPLATE_PREFIX = "SELECT * FROM t WHERE a = '";
const TEMPLATE_MIDDLE = "' AND b = ";
const template = (s: string, n: number): string => `${TEMPLATE_PREFIX}${s.replaceAll("'", "''")}${TEMPLATE_MIDDLE}${n}`;
const literalString = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), sqlish);

test('property: template literals are always replaced', (t) => {
  const expected = 'SELECT * FROM t WHERE a = ? AND b = ?';
  fc.assert(
    fc.property(literalString, fc.integer(), (s, n) => {
      const sql = template(s, n);
      const { sanitized } = describeQuery(sql);
      if (sanitized !== expected) return false;
      if (s.length >= 3 && !`${TEMPLATE_PREFIX}${TEMPLATE_MIDDLE}`.includes(s) && !expected.includes(s)) {
        return !sanitized.includes(s);
      }
      return true;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: fingerprint is identical across literal values', (t) => {
  const reference = fingerprintSql(template('x', 0));
  fc.assert(
    fc.property(literalString, fc.oneof(fc.integer(), fc.maxSafeInteger()), (s, n) => fingerprintSql(template(s, n)) === reference),
    { numRuns: 1000 },
  );
  const inReference = fingerprintSql('SELECT * FROM t WHERE id IN (1) AND s = $1');
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true, min: 0 })), { minLength: 1, maxLength: 50 }),
      fc.string(),
      (items, s) => {
        const sql = `SELECT * FROM t WHERE id IN (${items.join(', ')}) AND s = '${s.replaceAll("'", "''")}'`;
        return fingerprintSql(sql) === inReference;
      },
    ),
    { numRuns: 1000 },
  );
  t.pass();
});
