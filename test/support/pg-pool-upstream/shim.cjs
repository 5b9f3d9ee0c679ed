'use strict';
/**
 * Loaded with `--require` (through NODE_OPTIONS, so the child processes the suite forks load it too)
 * before node-postgres's own pg-pool test suite, which runs unmodified from
 * node_modules/pg-pool-suite (the npm package pg-pool@3.8.0, MIT, which ships its mocha tests).
 *
 * The suite's `require('../')` (and `require('../index')`) is pg-pool itself; here it returns
 * `Pool`, whose `new Pool(options)` is a DatabasePool with one pool built from pg.Pool's options,
 * seen through its `pg.Pool` face (`pgPool`). `end()` ends the face and closes that DatabasePool.
 *
 * pg.Pool option → PoolConfig: max / poolSize → max; min → min; idleTimeoutMillis (default 10000,
 * 0 never) → idleTimeoutMs; connectionTimeoutMillis (0: wait for ever) → acquireTimeoutMs (an hour
 * for 0); maxLifetimeSeconds → maxLifetimeMs; maxUses → maxUses; allowExitOnIdle → allowExitOnIdle;
 * onConnect → onConnect; connectionString / host / port / user / password / database / ssl →
 * connection (host defaults to PGHOST, as pg's does); application_name → applicationName; Client
 * and every other option → the PoolConfig's `Client` (see below). pg.Pool has no statement timeout,
 * so queryTimeoutMs is 0. The face's own options: Promise, verify, log.
 */
const Module = require('node:module');
const path = require('node:path');
// The library's TypeScript sources, compiled on load (tsx's require hook).
require('tsx/cjs');
const { DatabasePool, pgPool } = require('../../../src/index.ts');

const suiteDir = path.dirname(require.resolve('pg-pool-suite/package.json'));
const suiteTests = path.join(suiteDir, 'test') + path.sep;
const pgPoolModule = path.join(suiteDir, 'index.js');

const HOUR = 3_600_000;
const POOL_ID = 'pg';

/** A PoolConfig from pg.Pool's options (see above). */
function poolConfig(o) {
  const connection = {};
  if (o.connectionString) connection.connectionString = o.connectionString;
  for (const key of ['host', 'user', 'password', 'database', 'ssl']) if (o[key] !== undefined) connection[key] = o[key];
  if (o.port !== undefined) connection.port = Number(o.port);
  if (!connection.connectionString && !connection.host) connection.host = process.env.PGHOST || 'localhost';
  const config = {
    connection,
    max: o.max || o.poolSize || 10,
    min: o.min || 0,
    idleTimeoutMs: o.idleTimeoutMillis === undefined ? 10_000 : o.idleTimeoutMillis,
    acquireTimeoutMs: o.connectionTimeoutMillis || HOUR,
    maxLifetimeMs: (o.maxLifetimeSeconds || 0) * 1000,
    maxUses: Number.isFinite(o.maxUses) ? o.maxUses : 0,
    allowExitOnIdle: Boolean(o.allowExitOnIdle),
    queryTimeoutMs: 0,
  };
  // As pg.Pool does (`new Client(options)`): every pg.Pool option reaches the client (binary,
  // types, statement_timeout...), made with the `Client` option's class or pg's (read at each
  // connect: a test patches pg.Client.prototype.connect).
  config.Client = function PoolClient(settings) {
    const own = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
    const Client = o.Client || require('pg').Client;
    return new Client({ ...o, ...own });
  };
  if (o.onConnect) config.onConnect = o.onConnect;
  if (o.application_name) config.applicationName = o.application_name;
  return config;
}

/** `new Pool(options)`: our pool behind a pg.Pool face. */
function Pool(options) {
  const o = options || {};
  const db = new DatabasePool({ pools: { [POOL_ID]: poolConfig(o) }, logger: null, recovery: { enabled: false } });
  const face = pgPool(db, POOL_ID, { Promise: o.Promise, verify: o.verify, log: o.log });
  const endFace = face.end.bind(face);
  // pg.Pool's end(): refused the second time; the first ends the face, then closes the pool.
  face.end = function end(callback) {
    if (face.ending) return endFace(callback);
    const closing = endFace().then(() => db.close());
    if (typeof callback === 'function') {
      closing.then(
        () => process.nextTick(callback),
        (err) => process.nextTick(callback, err),
      );
      return undefined;
    }
    const P = o.Promise || Promise;
    return new P((resolve, reject) => closing.then(resolve, reject));
  };
  return face;
}

const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (parent && typeof parent.filename === 'string' && parent.filename.startsWith(suiteTests) && (request.startsWith('.') || request.startsWith('/'))) {
    let resolved;
    try {
      resolved = Module._resolveFilename(request, parent, isMain);
    } catch {
      resolved = undefined;
    }
    if (resolved === pgPoolModule) return Pool;
  }
  return load.apply(this, arguments);
};

module.exports = { Pool, poolConfig };
