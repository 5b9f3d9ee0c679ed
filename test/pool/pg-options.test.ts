/** pg's connection options a pg / HikariCP user expects to pass, passed through and validated. */
import test from 'ava';
import net from 'node:net';
import pg from 'pg';
import { InvalidConfigError } from '../../src/index.js';
import { databaseUrl, newDb } from '../support/helpers.js';

const show = async (db: ReturnType<typeof newDb>, setting: string) =>
  (await db.query<{ v: string }>('main', `SELECT current_setting('${setting}') AS v`)).rows[0]!.v;

test('statement_timeout, lock_timeout, idle_in_transaction_session_timeout and options reach the session', async (t) => {
  const db = newDb(t, {
    main: {
      min: 0,
      connection: {
        connectionString: databaseUrl(),
        statement_timeout: 1_500,
        lock_timeout: 700,
        idle_in_transaction_session_timeout: 60_000,
        options: '-c search_path=pg_catalog,public -c work_mem=8MB',
      },
    },
  });
  t.is(await show(db, 'statement_timeout'), '1500ms');
  t.is(await show(db, 'lock_timeout'), '700ms');
  t.is(await show(db, 'idle_in_transaction_session_timeout'), '1min');
  t.is(await show(db, 'search_path'), 'pg_catalog,public');
  t.is(await show(db, 'work_mem'), '8MB');
  // The server enforces it: a statement past statement_timeout fails with 57014.
  const err = await t.throwsAsync(db.query('main', 'SELECT pg_sleep(3)'));
  t.is((err as { code?: string }).code, '57014');
});

test('password as an async function is called for each new connection (short-lived tokens)', async (t) => {
  const url = new URL(databaseUrl());
  const password = decodeURIComponent(url.password);
  let calls = 0;
  const db = newDb(t, {
    main: {
      min: 0,
      max: 2,
      connection: {
        host: url.hostname,
        port: Number(url.port || 5432),
        user: decodeURIComponent(url.username) || 'postgres',
        database: url.pathname.slice(1),
        password: async () => {
          calls++;
          return password;
        },
      },
    },
  });
  const held = await Promise.all([db.acquire('main'), db.acquire('main')]);
  // pg calls the function when the server asks for a password (and keeps its answer), else holds it as given.
  const given = typeof (held[0]!.client as unknown as { password: unknown }).password;
  for (const c of held) c.release();
  const bad = new URL(databaseUrl());
  bad.password = 'wrong-password';
  const wrong = new pg.Client({ connectionString: bad.href });
  const asks = await wrong.connect().then(
    () => wrong.end().then(() => false),
    () => true,
  );
  if (asks) t.is(calls, 2, 'one call per new connection');
  else {
    t.is(calls, 0, 'this server trusts the connection and never asks for the password');
    t.is(given, 'function', 'handed to pg as given');
  }
  t.log(asks ? 'the server asked for the password on each connection' : 'trust authentication: the function is passed to pg but never called');
  // Shown nowhere: the config dump has no function to leak, and no token.
  t.false(JSON.stringify(db.getPoolConfig('main')).includes(password || '\u0000'));
});

test('stream: connections go over the socket the function returns', async (t) => {
  const url = new URL(databaseUrl());
  let opened = 0;
  const db = newDb(t, {
    main: {
      min: 0,
      connection: {
        connectionString: databaseUrl(),
        stream: () => {
          opened++;
          // pg connects the returned socket to host:port itself.
          return new net.Socket();
        },
      },
    },
  });
  const { rows } = await db.query<{ n: number }>('main', 'SELECT 1 AS n');
  t.is(rows[0]!.n, 1);
  t.is(opened, 1);
  t.truthy(url.hostname);
});

test('keepAlive defaults to on and can be turned off; bad values are INVALID_CONFIG naming the field', async (t) => {
  const db = newDb(t, { main: { min: 0 } });
  const conn = await db.acquire('main');
  const socket = (conn.client as unknown as { connection: { stream: net.Socket } }).connection.stream;
  t.true(socket instanceof net.Socket);
  conn.release();
  t.is(db.getPoolConfig('main').connection.keepAlive, undefined, 'unset: pg gets true (the default)');
  for (const [connection, path] of [
    [{ connectionString: databaseUrl(), keepAlive: 'yes' }, 'keepAlive'],
    [{ connectionString: databaseUrl(), statement_timeout: -1 }, 'statement_timeout'],
    [{ connectionString: databaseUrl(), password: 42 }, 'password'],
    [{ connectionString: databaseUrl(), stream: {} }, 'stream'],
  ] as const) {
    const err = await t.throwsAsync(db.createPool(`bad_${path}`, { connection: connection as never }));
    t.true(err instanceof InvalidConfigError);
    t.true(
      (err as InvalidConfigError).issues.some((i) => i.path.endsWith(`connection.${path}`)),
      JSON.stringify((err as InvalidConfigError).issues),
    );
  }
  t.false(
    (await t.throwsAsync(db.createPool('bad_pw', { connection: { connectionString: databaseUrl(), password: 424242 as never } })))!.message.includes('424242'),
  );
});
