/**
 * Real Prometheus tools for the grafana/ tests: promtool, amtool, and throw-away Prometheus and
 * Alertmanager servers on 127.0.0.1 (free ports, temporary directories), stopped on every path via
 * t.teardown (SIGTERM, then SIGKILL). A missing binary fails the test with what to install in CI;
 * elsewhere the tests that need it are skipped with a notice ({@link withTools}).
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from './server.js';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const INSTALL_HINT: Record<string, string> = {
  promtool: "Debian's `prometheus` package (apt-get install --no-install-recommends prometheus; .ci/run does it)",
  prometheus: "Debian's `prometheus` package (apt-get install --no-install-recommends prometheus; .ci/run does it)",
  amtool: "Debian's `prometheus-alertmanager` package (.ci/run installs it)",
  'prometheus-alertmanager': "Debian's `prometheus-alertmanager` package (.ci/run installs it)",
  pgbouncer: "Debian's `pgbouncer` package (.ci/run installs it)",
};

/** The path of the first of `names` found on PATH (or in /usr/bin, /usr/sbin, /usr/local/bin), if any. */
export function findTool(...names: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'].filter(Boolean);
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // next
      }
    }
  }
  return undefined;
}

/** The path of the first of `names` found; throws with what to install when none is. */
export function requireTool(...names: string[]): string {
  const found = findTool(...names);
  if (found !== undefined) return found;
  const hint = INSTALL_HINT[names[0]!] ?? 'it';
  throw new Error(`${names.join(' / ')} not found on PATH: install ${hint}.`);
}

/**
 * `register` (ava's test or test.serial) when every tool group has a binary on this machine. When
 * one is missing: in CI (CI=true) still `register`, so the test fails saying what to install;
 * elsewhere (not root, no apt-get: scripts/system-packages.sh could not install it) the skip
 * variant, with a notice on stderr naming the package. Each group lists alternative names.
 */
export function withTools<T extends { skip: unknown }>(register: T, ...groups: string[][]): T {
  const missing = groups.filter((names) => findTool(...names) === undefined).map((names) => names[0]!);
  if (missing.length === 0 || process.env.CI === 'true') return register;
  process.stderr.write(`skipping tests that need ${missing.join(', ')}: install ${missing.map((m) => INSTALL_HINT[m] ?? m).join('; ')}\n`);
  return register.skip as T;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell). */
export function run(command: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A temporary directory removed when the test ends. */
export function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a long-running process that t.teardown stops (SIGTERM, then SIGKILL). */
export function startProcess(t: ExecutionContext, command: string, args: string[], cwd?: string): ManagedProcess {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.once('error', (err) => (output += `\nspawn error: ${err.message}\n`));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 3_000): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
  t.teardown(() => stop());
  return { child, output: () => output, stop };
}

/** Polls `url` until it answers 200, the process exits, or `timeoutMs` passes. */
export async function waitForReady(proc: ManagedProcess, url: string, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${what} exited (${proc.child.exitCode ?? proc.child.signalCode}) before it was ready:\n${proc.output().slice(-3_000)}`);
    }
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready at ${url} after ${timeoutMs} ms:\n${proc.output().slice(-3_000)}`);
}

export interface RunningPrometheus {
  readonly url: string;
  readonly process: ManagedProcess;
  /** GET /api/v1/<path>; throws on an error status. */
  api<T = unknown>(path: string, params?: Record<string, string | string[]>): Promise<T>;
  /** Instant query; the result vector. */
  query(expr: string): Promise<PromSample[]>;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/**
 * Starts `prometheus` on 127.0.0.1 with the given prometheus.yml text (rule files referenced by it
 * must be absolute paths or live in `dir`), a fresh TSDB directory, and waits until it is ready.
 */
export async function startPrometheus(t: ExecutionContext, config: string, dir: string): Promise<RunningPrometheus> {
  const bin = requireTool('prometheus');
  const port = await freePort();
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const proc = startProcess(
    t,
    bin,
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForReady(proc, `${url}/-/ready`, 'prometheus');
  const api = async <T>(path: string, params: Record<string, string | string[]> = {}): Promise<T> => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) qs.append(k, one);
    const res = await fetch(`${url}/api/v1/${path}${qs.size > 0 ? `?${qs}` : ''}`);
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`prometheus /api/v1/${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  return {
    url,
    process: proc,
    api,
    async query(expr: string): Promise<PromSample[]> {
      const data = await api<{ resultType: string; result: PromSample[] }>('query', { query: expr });
      if (data.resultType !== 'vector') throw new Error(`expected a vector from ${expr}, got ${data.resultType}`);
      return data.result;
    },
  };
}

export interface RunningAlertmanager {
  readonly url: string;
  /** host:port for Prometheus' alerting config. */
  readonly address: string;
  readonly process: ManagedProcess;
}

/** Starts Alertmanager on 127.0.0.1 without a cluster listener, with the given alertmanager.yml text. */
export async function startAlertmanager(t: ExecutionContext, config: string, dir: string): Promise<RunningAlertmanager> {
  const bin = requireTool('prometheus-alertmanager', 'alertmanager');
  const port = await freePort();
  const configFile = join(dir, 'alertmanager.yml');
  writeFileSync(configFile, config);
  const proc = startProcess(
    t,
    bin,
    [
      `--config.file=${configFile}`,
      `--storage.path=${join(dir, 'am-data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForReady(proc, `${url}/-/ready`, 'alertmanager');
  return { url, address: `127.0.0.1:${port}`, process: proc };
}

export interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
}

export interface WebhookDelivery {
  /** The request path: which receiver URL was called. */
  path: string;
  receivedAt: number;
  headers: IncomingHttpHeaders;
  body: { receiver: string; status: string; alerts: WebhookAlert[]; groupLabels: Record<string, string>; commonLabels: Record<string, string> };
}

export interface WebhookReceiver {
  /** Base URL, e.g. http://127.0.0.1:PORT (any path is accepted). */
  readonly url: string;
  readonly deliveries: WebhookDelivery[];
  /** Resolves with the first delivery `match` accepts (already received or arriving later). */
  waitFor(match: (d: WebhookDelivery) => boolean, timeoutMs: number): Promise<WebhookDelivery>;
}

/** An HTTP receiver on 127.0.0.1 for Alertmanager's webhook notifications, closed when the test ends. */
export async function startWebhookReceiver(t: ExecutionContext): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        deliveries.push({
          path: req.url ?? '/',
          receivedAt: Date.now(),
          headers: req.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as WebhookDelivery['body'],
        });
      } catch {
        // not JSON: ignore
      }
      res.statusCode = 200;
      res.end('ok');
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    deliveries,
    waitFor(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = deliveries.find(match);
          if (found === undefined) return false;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no matching webhook delivery in ${timeoutMs} ms; received: ${JSON.stringify(deliveries.map((d) => ({ path: d.path, status: d.body.status, alerts: d.body.alerts.map((a) => a.labels) })))}`,
            ),
          );
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
  };
}
