/**
 * A fleet of app processes against one PostgreSQL, watched the way production would watch it:
 * each process (fleet-app.ts) serves its metrics with startPrometheusExporter; a real Prometheus
 * scrapes them (targets from a file it re-reads every second, so instances can come and go) with
 * grafana/prometheus-alerts.yml loaded; a real Alertmanager with grafana/alertmanager.yml sends to
 * a webhook receiver on 127.0.0.1. Used by test/ops/fleet-budget.test.ts and the reliability scenario
 * (scenarios/fleet.ts).
 *
 * Documented substitutions, to keep a run within seconds: scrape and evaluation every second, the
 * rules are a copy with every `for:` set to FLEET_FOR, and Alertmanager's group_wait and
 * group_interval are 1 s with the receivers' URLs on the local receiver (paths kept). Everything
 * started here is stopped through the given teardown scope (ava's `t`, or {@link Teardowns}).
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startAlertmanager,
  startPrometheus,
  startWebhookReceiver,
  tempDir,
  type RunningAlertmanager,
  type RunningPrometheus,
  type WebhookAlert,
  type WebhookDelivery,
  type WebhookReceiver,
} from './prometheus-tools.js';

/** What the helpers need of a test context: somewhere to register clean-up. */
export interface TeardownScope {
  teardown(fn: () => unknown): void;
}

/** A teardown scope outside ava (the reliability runner): `run()` undoes everything, last first. */
export class Teardowns implements TeardownScope {
  readonly #fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    while (this.#fns.length > 0) {
      try {
        await this.#fns.pop()!();
      } catch {
        // keep undoing the rest
      }
    }
  }
}

/** The prometheus-tools helpers take ava's context only for its teardown. */
const asContext = (scope: TeardownScope) => scope as unknown as ExecutionContext;

const ROOT = new URL('../../', import.meta.url);
const APP_SCRIPT = fileURLToPath(new URL('fleet-app.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

/** The `for:` of every alert in the fleet runs' copy of the rules. */
export const FLEET_FOR = '1s';
export const FLEET_JOB = 'fleet';
export const BUDGET_ALERT = 'FleetConnectionBudgetExceeded';
export const NEAR_LIMIT_ALERT = 'FleetConnectionsNearLimit';

/** grafana/prometheus-alerts.yml with every `for:` replaced by FLEET_FOR. */
export function fleetRules(): string {
  const text = readFileSync(new URL('grafana/prometheus-alerts.yml', ROOT), 'utf8');
  const out = text.replace(/^(\s+for:\s+)\S+\s*$/gm, `$1${FLEET_FOR}`);
  if (!/alert: FleetConnectionBudgetExceeded[\s\S]*?for: 1s/.test(out)) throw new Error('the fleet alerts are not in grafana/prometheus-alerts.yml');
  return out;
}

/** grafana/alertmanager.yml with the receivers on the local webhook and 1 s grouping. */
export function fleetAlertmanagerConfig(hookUrl: string): string {
  const text = readFileSync(new URL('grafana/alertmanager.yml', ROOT), 'utf8');
  const out = text
    .replace(/url: http:\/\/127\.0\.0\.1:5001(\/\S*)/g, (_m, path: string) => `url: ${hookUrl}${path}`)
    .replace(/^(\s+group_wait:\s+)\S+$/m, '$11s')
    .replace(/^(\s+group_interval:\s+)\S+$/m, '$11s');
  if (!out.includes(hookUrl)) throw new Error('no receiver URL in grafana/alertmanager.yml');
  return out;
}

// ---------------------------------------------------------------- the app processes

/** A line the app printed, with when the parent received it (Date.now()). */
export interface FleetEvent {
  event: string;
  receivedAt: number;
  [key: string]: unknown;
}

/** The app's calls, as its `stats` line reports them. */
export interface FleetStats {
  requests: number;
  served: number;
  rejected: Record<string, number>;
  hung: number;
  slowestMs: number;
  deadlineMs: number;
  /** Open connections (being opened not counted), lent, idle, callers waiting, max. */
  pool: { open: number; active: number; idle: number; waiting: number; max: number };
}

export interface FleetAppOptions {
  url: string;
  name: string;
  max: number;
  min?: number;
  acquireTimeoutMs?: number;
  /** How long each call holds its connection. Default 50 ms. */
  queryMs?: number;
}

export interface FleetApp {
  readonly name: string;
  /** Where its metrics are served (127.0.0.1). */
  readonly port: number;
  readonly pid: number;
  readonly events: readonly FleetEvent[];
  /** The first line matching `match` (already printed or to come). */
  waitFor(match: (e: FleetEvent) => boolean, timeoutMs: number): Promise<FleetEvent>;
  /** Sets the number of callers (0 stops them). */
  load(callers: number): Promise<void>;
  stats(): Promise<FleetStats>;
  /** SIGTERM (the app closes its pool and exporter and prints its last stats), SIGKILL after a grace period. */
  stop(): Promise<FleetStats | undefined>;
  readonly exited: boolean;
  output(): string;
}

/** Starts one app process; resolves once its pool has read the server's budget and its metrics are served. */
export async function startFleetApp(scope: TeardownScope, o: FleetAppOptions): Promise<FleetApp> {
  const child: ChildProcess = spawn(process.execPath, ['--import', TSX, APP_SCRIPT], {
    cwd: fileURLToPath(ROOT),
    env: {
      ...process.env,
      FLEET_DATABASE_URL: o.url,
      FLEET_NAME: o.name,
      FLEET_MAX: String(o.max),
      FLEET_MIN: String(o.min ?? 1),
      FLEET_ACQUIRE_TIMEOUT_MS: String(o.acquireTimeoutMs ?? 2_000),
      FLEET_QUERY_MS: String(o.queryMs ?? 50),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const events: FleetEvent[] = [];
  const waiters = new Set<() => void>();
  let output = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      output += `${line}\n`;
      try {
        events.push({ ...(JSON.parse(line) as Record<string, unknown>), receivedAt: Date.now() } as FleetEvent);
      } catch {
        // not one of ours
      }
    }
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  });
  child.stdin!.on('error', () => {});
  let exited = child.exitCode !== null;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      for (const w of [...waiters]) w();
      resolve();
    });
  });

  const waitFor = (match: (e: FleetEvent) => boolean, timeoutMs: number, from = 0): Promise<FleetEvent> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = events.slice(from).find(match);
        if (found === undefined && !exited) return;
        clearTimeout(timer);
        waiters.delete(check);
        if (found !== undefined) resolve(found);
        else reject(new Error(`${o.name} exited (${child.exitCode ?? child.signalCode}) before printing what was waited for:\n${output.slice(-3_000)}`));
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${o.name}: nothing matching in ${timeoutMs} ms:\n${output.slice(-3_000)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  let stopping: Promise<FleetStats | undefined> | undefined;
  const stop = (): Promise<FleetStats | undefined> => {
    stopping ??= (async () => {
      const from = events.length;
      if (!exited) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
      const last = events
        .slice(from)
        .filter((e) => e.event === 'stats')
        .at(-1);
      return last as unknown as FleetStats | undefined;
    })();
    return stopping;
  };
  scope.teardown(() => stop());

  const ready = await waitFor((e) => e.event === 'ready', 60_000);
  const send = (line: string) => {
    if (!exited) child.stdin!.write(`${line}\n`);
  };
  return {
    name: o.name,
    port: Number(ready.port),
    pid: Number(ready.pid),
    events,
    waitFor: (match, timeoutMs) => waitFor(match, timeoutMs),
    async load(callers) {
      const from = events.length;
      send(`load ${callers}`);
      await waitFor((e) => e.event === 'load' && e.callers === callers, 15_000, from);
    },
    async stats() {
      const from = events.length;
      send('stats');
      return (await waitFor((e) => e.event === 'stats', 15_000, from)) as unknown as FleetStats;
    },
    stop,
    get exited() {
      return exited;
    },
    output: () => output,
  };
}

// ---------------------------------------------------------------- Prometheus, Alertmanager, receiver

export interface FleetMonitoring {
  prom: RunningPrometheus;
  am: RunningAlertmanager;
  hook: WebhookReceiver;
  /** Replaces the scraped targets (Prometheus re-reads the file every second). */
  setTargets(ports: number[]): void;
  /** The first delivery with `alertname` for the server `port` in `status` (already received or to come). */
  waitForAlert(
    alertname: string,
    serverPort: number,
    status: 'firing' | 'resolved',
    timeoutMs: number,
  ): Promise<{ delivery: WebhookDelivery; alert: WebhookAlert }>;
}

export async function startFleetMonitoring(scope: TeardownScope): Promise<FleetMonitoring> {
  const t = asContext(scope);
  const dir = tempDir(t, 'db-pool-fleet-');
  const targetsFile = join(dir, 'targets.json');
  const setTargets = (ports: number[]) => {
    writeFileSync(`${targetsFile}.tmp`, JSON.stringify([{ targets: ports.map((p) => `127.0.0.1:${p}`), labels: {} }]));
    renameSync(`${targetsFile}.tmp`, targetsFile);
  };
  setTargets([]);
  const hook = await startWebhookReceiver(t);
  const am = await startAlertmanager(t, fleetAlertmanagerConfig(hook.url), dir);
  writeFileSync(join(dir, 'prometheus-alerts.yml'), fleetRules());
  const prom = await startPrometheus(
    t,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files: [prometheus-alerts.yml]',
      'alerting:',
      '  alertmanagers:',
      `    - static_configs: [{ targets: ['${am.address}'] }]`,
      'scrape_configs:',
      `  - job_name: ${FLEET_JOB}`,
      `    file_sd_configs: [{ files: ['${targetsFile}'], refresh_interval: 1s }]`,
      '',
    ].join('\n'),
    dir,
  );
  return {
    prom,
    am,
    hook,
    setTargets,
    async waitForAlert(alertname, serverPort, status, timeoutMs) {
      const match = (a: WebhookAlert) => a.labels.alertname === alertname && a.labels.server_port === String(serverPort) && a.status === status;
      const delivery = await hook.waitFor((d) => d.body.alerts.some(match), timeoutMs);
      return { delivery, alert: delivery.body.alerts.find(match)! };
    },
  };
}
