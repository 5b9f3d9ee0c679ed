/**
 * `db-pool`: the command line of the admin endpoint (`db.startAdminServer()`). Human-readable
 * tables by default, `--json` for scripts. Exit codes: 0 ok, 1 unhealthy or failed operation,
 * 2 usage error, 3 admin endpoint unreachable or unauthorized.
 *
 * @example
 * // from code (tests, wrappers): same as the shell command, output through `io`
 * const code = await run(['pools', '--json'], { env: { DB_POOL_ADMIN_URL: admin.url, DB_POOL_ADMIN_TOKEN: token } });
 */
import { writeFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_ADMIN_URL,
  isLoopback,
  type ConfigChange,
  type HealthReport,
  type LeakDiagnosis,
  type PerformanceDiagnosis,
  type PoolSummary,
} from '../admin/protocol.js';
import { CliError, EXIT, displayUrl, request, type Endpoint } from './client.js';
import { grafanaText, writeGrafanaCopies, type GrafanaCommandOptions } from './grafana-command.js';
import { DEFAULT_RUNBOOK_BASE, METRIC_NAMINGS } from './grafana-render.js';
import {
  age,
  clip,
  duration,
  escapeControls,
  human,
  joined,
  jsonText,
  keyValues,
  metricsFileName,
  ms,
  num,
  pct,
  table,
  terminalSafe,
  type Rendered,
} from './format.js';

/** Where `run` reads its environment and writes its output (defaults: the process's). */
export interface CliIo {
  env?: Record<string, string | undefined>;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Directory `metrics --out` resolves relative names against. */
  cwd?: string;
  now?: () => Date;
}

interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  timeout: number;
}

type Json = Record<string, unknown>;

const HELP_FOOTER = `
Environment:
  DB_POOL_ADMIN_URL    admin endpoint, default ${DEFAULT_ADMIN_URL} (--url wins)
  DB_POOL_ADMIN_TOKEN  bearer token (--token wins; prefer the variable: arguments show in ps)

Exit codes: 0 ok, 1 unhealthy or failed operation, 2 usage error,
            3 admin endpoint unreachable or unauthorized`;

/**
 * Runs the CLI on `argv` (the arguments after the program name) and resolves with its exit code.
 * Never calls `process.exit`.
 */
export async function run(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const env = io.env ?? process.env;
  const rawOut = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const rawErr = io.stderr ?? ((s: string) => void process.stderr.write(s));
  // Every write goes through here: whatever the path, no control character but the line feed
  // reaches the terminal (human output is escaped field by field before, see format.ts).
  const out = (s: string) => rawOut(terminalSafe(s));
  const err = (s: string) => rawErr(terminalSafe(s));
  const now = io.now ?? (() => new Date());
  const cwd = io.cwd ?? process.cwd();
  const print = (s: string) => out(s.endsWith('\n') ? s : `${s}\n`);
  let exitCode: number = EXIT.ok;

  const program = new Command('db-pool')
    .description('Operate the PostgreSQL pools of a running app through its admin endpoint (db.startAdminServer()).')
    .option('--url <url>', `admin endpoint URL (env DB_POOL_ADMIN_URL; default ${DEFAULT_ADMIN_URL})`)
    .option('--token <token>', 'bearer token (env DB_POOL_ADMIN_TOKEN)')
    .option('--json', 'print JSON for scripts instead of tables')
    .option('--timeout <ms>', 'request timeout in milliseconds', wholeNumber('--timeout', 1), 60_000)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out(s),
      writeErr: (s) => err(s),
      outputError: (s, write) => write(`db-pool: ${s}`),
    })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(add --help for usage)')
    .helpCommand('help [command]', 'help for a command')
    .addHelpText('after', HELP_FOOTER);

  /** The endpoint from --url / --token or the environment. */
  const endpointOf = (cmd: Command): { endpoint: Endpoint; json: boolean } => {
    const o = cmd.optsWithGlobals<GlobalOptions>();
    const raw = o.url ?? nonEmpty(env.DB_POOL_ADMIN_URL) ?? DEFAULT_ADMIN_URL;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      // Not echoed: an unparsable URL may hold credentials in a place no pattern reliably strips.
      throw new CliError(
        EXIT.usage,
        `invalid admin endpoint URL (not shown, it may hold credentials): expected e.g. ${DEFAULT_ADMIN_URL} (--url or DB_POOL_ADMIN_URL)`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CliError(EXIT.usage, `invalid admin endpoint URL ${displayUrl(url)}: must start with http:// or https://`);
    }
    const token = o.token ?? nonEmpty(env.DB_POOL_ADMIN_TOKEN);
    if (token !== undefined && url.protocol === 'http:' && !isLoopback(url.hostname)) {
      err(`db-pool: warning: sending the token over plain HTTP to ${url.host}; prefer an SSH tunnel or a TLS proxy\n`);
    }
    return { endpoint: { url, token, timeoutMs: o.timeout }, json: o.json === true };
  };

  /** Adds a command whose action gets the endpoint; what the action returns is the exit code. */
  const command = (nameAndArgs: string, description: string) => program.command(nameAndArgs).description(description);
  const act =
    // biome-ignore lint/suspicious/noConfusingVoidType: actions that print and return nothing are the common case
      <A extends unknown[]>(fn: (ctx: { endpoint: Endpoint; json: boolean }, ...args: A) => Promise<number | void>) =>
      async (...args: unknown[]) => {
        const cmd = args[args.length - 1] as Command;
        const ctx = endpointOf(cmd);
        const code = await fn(ctx, ...(args.slice(0, -1) as A));
        exitCode = code ?? EXIT.ok;
      };
  const emit = (json: boolean, data: unknown, text: () => Rendered) => print(json ? jsonText(data) : text().text);

  command('health', 'probe every pool with SELECT 1 (exit 1 unless all answer)').action(
    act(async ({ endpoint, json }) => {
      const { body } = await request<HealthReport>(endpoint, 'GET', '/health');
      emit(json, body, () => {
        const total = body.healthyPools.length + body.unhealthyPools.length;
        const rows = [...body.healthyPools.map((p) => [p, 'healthy', '']), ...body.unhealthyPools.map((p) => [p.poolId, 'unhealthy', clip(p.error, 100)])];
        const head = human`status: ${body.status} (${body.healthyPools.length} of ${total} pools answered SELECT 1)\n${rows.length ? human`\n${table(['POOL', 'STATUS', 'ERROR'], rows)}` : ''}`;
        const warnings = Array.isArray(body.warnings) ? body.warnings : [];
        return warnings.length === 0 ? head : joined([head, human``, ...warnings.map((w) => human`warning: ${clip(w?.message, 400)}`)]);
      });
      return body.status === 'healthy' ? EXIT.ok : EXIT.failed;
    }),
  );

  command(
    'budget',
    "each server's connection budget (max_connections, reserved slots, backends now) and what this app's pools may open of it (exit 1 when over)",
  ).action(
    act(async ({ endpoint, json }) => {
      const { body } = await request<{ pools: PoolSummary[] }>(endpoint, 'GET', '/pools');
      const metrics = await Promise.all(
        body.pools.map((p) =>
          request<Json>(endpoint, 'GET', `/pools/${encodeURIComponent(String(p.poolId))}/metrics`).then(
            (r) => r.body,
            () => undefined,
          ),
        ),
      );
      const report = budgetReport(body.pools.map((p, i) => [String(p.poolId), metrics[i]] as const));
      emit(json, report, () => budgetText(report));
      return report.servers.some((s) => s.overBudget) ? EXIT.failed : EXIT.ok;
    }),
  );

  command('pools', 'list the pools with their connection counts').action(
    act(async ({ endpoint, json }) => {
      const { body } = await request<{ pools: PoolSummary[] }>(endpoint, 'GET', '/pools');
      emit(json, body, () =>
        body.pools.length === 0
          ? human`no pools`
          : table(
              ['POOL', 'TOTAL', 'ACTIVE', 'IDLE', 'WAITING', 'MIN', 'MAX', 'UTIL', 'LAST CONNECT ERROR'],
              body.pools.map((p) => [
                p.poolId,
                p.total,
                p.active,
                p.idle,
                p.waiting,
                p.min,
                p.max,
                pct(p.utilization),
                p.lastConnectError ? clip(p.lastConnectError, 60) : '',
              ]),
            ),
      );
    }),
  );

  command('config <pool>', "a pool's settings (secrets redacted) and live status").action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<{ poolId: string; config: Json; status: Json }>(endpoint, 'GET', `/pools/${enc(pool)}`);
      emit(json, body, () => {
        const pairs: [string, string][] = Object.entries(body.config).map(([k, v]) => [
          k,
          k === 'connection' ? connectionText(v as Json) : typeof v === 'object' ? JSON.stringify(v) : String(v),
        ]);
        return human`${keyValues(pairs)}\n\nnow: ${statusLine(body.status)}`;
      });
    }),
  );

  command('metrics <pool>', 'detailed metrics of a pool (getDetailedMetrics); --out exports them to a JSON file')
    .option('--out [file]', 'write the metrics JSON to a file (default name metrics_YYYYmmdd_HHMMSS.json)')
    .action(
      act(async ({ endpoint, json }, pool: string, opts: { out?: string | true }) => {
        const { body } = await request<Json>(endpoint, 'GET', `/pools/${enc(pool)}/metrics`);
        if (opts.out !== undefined) {
          const file = resolvePath(cwd, opts.out === true ? metricsFileName(now()) : opts.out);
          try {
            await writeFile(file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644 });
          } catch (e) {
            throw new CliError(EXIT.failed, `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
          }
          emit(json, { poolId: pool, file }, () => human`wrote metrics of pool ${pool} to ${file}`);
          return;
        }
        emit(json, body, () => metricsText(body));
      }),
    );

  command('slow-queries <pool>', 'the slowest recent queries of a pool, literals removed')
    .option('--limit <n>', 'how many (1-100)', wholeNumber('--limit', 1), 10)
    .action(
      act(async ({ endpoint, json }, pool: string, opts: { limit: number }) => {
        const { body } = await request<{ slowQueries: Json[] }>(endpoint, 'GET', `/pools/${enc(pool)}/slow-queries?limit=${opts.limit}`);
        emit(json, body, () =>
          body.slowQueries.length === 0
            ? human`no slow queries kept for pool ${pool}`
            : table(
                ['DURATION', 'AT', 'CONN', 'SQLSTATE', 'FINGERPRINT', 'QUERY'],
                body.slowQueries.map((q) => [
                  ms(q.durationMs),
                  String(q.at),
                  Number(q.connectionId),
                  q.sqlState as string | undefined,
                  String(q.fingerprint),
                  clip(q.text, 100),
                ]),
              ),
        );
      }),
    );

  command('connections <pool>', "a pool's connections: state, age, use count, last query").action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<{ connections: Json[] }>(endpoint, 'GET', `/pools/${enc(pool)}/connections`);
      emit(json, body, () =>
        body.connections.length === 0
          ? human`pool ${pool} has no open connections`
          : table(
              ['ID', 'STATE', 'PID', 'AGE', 'HELD FOR', 'USES', 'LAST QUERY'],
              body.connections.map((c) => [
                Number(c.id),
                String(c.state),
                c.processId as number | undefined,
                age(c.createdAt),
                c.state === 'active' ? duration(Number(c.activeDurationMs)) : '',
                Number(c.useCount),
                clip(c.lastQuery ?? '', 80),
              ]),
            ),
      );
    }),
  );

  command('diagnose <pool>', 'performance issues and suspected leaks, with what to do (exit 1 when critical)').action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<Diagnosis>(endpoint, 'GET', `/pools/${enc(pool)}/diagnosis`);
      emit(json, body, () => diagnosisText(body));
      return body.performance.overallHealth === 'critical' ? EXIT.failed : EXIT.ok;
    }),
  );

  command('restart <pool>', 'replace every connection of a pool; waiting callers move over, running work finishes')
    .option('--drain-timeout <ms>', 'how long running work may take before its loans are revoked (default 30000)', wholeNumber('--drain-timeout', 0))
    .action(
      act(async ({ endpoint, json }, pool: string, opts: { drainTimeout?: number }) => {
        const { body } = await request<Json & { status: Json }>(
          endpoint,
          'POST',
          `/pools/${enc(pool)}/restart`,
          opts.drainTimeout === undefined ? {} : { drainTimeoutMs: opts.drainTimeout },
        );
        emit(json, body, () => human`restarted pool ${pool} in ${ms(body.durationMs)}; now ${statusLine(body.status)}`);
      }),
    );

  command('cleanup <pool>', 'close idle connections, reclaim leaked loans, clear transient errors').action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<Json & { status: Json }>(endpoint, 'POST', `/pools/${enc(pool)}/cleanup`, {});
      emit(
        json,
        body,
        () =>
          human`cleaned pool ${pool}: closed ${num(body.idleClosed)} idle connection(s), reclaimed ${num(body.leaksReclaimed)} leaked loan(s)${
            body.errorsCleared ? ', cleared transient errors' : ''
          }; now ${statusLine(body.status)}`,
      );
    }),
  );

  command('resize <pool>', 'change max (and min) connections of a running pool')
    .requiredOption('--max <n>', 'most connections open at once', wholeNumber('--max', 0))
    .option('--min <n>', 'connections kept open when idle', wholeNumber('--min', 0))
    .action(
      act(async ({ endpoint, json }, pool: string, opts: { max: number; min?: number }) => {
        const patch: Json = { max: opts.max };
        if (opts.min !== undefined) patch.min = opts.min;
        return patchConfig(endpoint, json, pool, patch);
      }),
    );

  command('timeouts <pool>', 'change the query and / or acquire timeout of a running pool')
    .option('--query <ms>', 'queryTimeoutMs: longest a query may run (0 disables)', wholeNumber('--query', 0))
    .option('--acquire <ms>', 'acquireTimeoutMs: longest a caller waits for a connection', wholeNumber('--acquire', 0))
    .action(
      act(async ({ endpoint, json }, pool: string, opts: { query?: number; acquire?: number }) => {
        if (opts.query === undefined && opts.acquire === undefined) {
          throw new CliError(EXIT.usage, 'timeouts: give --query MS and / or --acquire MS');
        }
        const patch: Json = {};
        if (opts.query !== undefined) patch.queryTimeoutMs = opts.query;
        if (opts.acquire !== undefined) patch.acquireTimeoutMs = opts.acquire;
        return patchConfig(endpoint, json, pool, patch);
      }),
    );

  // No admin endpoint: renders the dashboard and rules shipped in the package (grafana-command.ts).
  command(
    'grafana',
    'write the Grafana dashboard, the Prometheus rules and their promtool tests for your metric names and runbook URL (no admin endpoint needed)',
  )
    .requiredOption('--out <dir>', 'directory to write db-pool-dashboard.json, prometheus-alerts.yml and prometheus-alerts.test.yml to (replaced if there)')
    .option('--prefix <prefix>', "metric name prefix: startPrometheusExporter's prefix or the Collector's namespace (myapp: myapp_db_client_...)")
    .option('--runbook-base <url>', `where docs/runbooks.md is published: links go to <url>/docs/runbooks.md#runbook-<alert> (default ${DEFAULT_RUNBOOK_BASE})`)
    .addOption(
      new Option('--naming <naming>', 'series names as the JS Prometheus exporter writes them, or as Prometheus names OTLP metrics (unit suffixes: _seconds)')
        .choices(METRIC_NAMINGS)
        .default('prometheus'),
    )
    .action(async (opts: GrafanaCommandOptions, cmd: Command) => {
      const result = await writeGrafanaCopies(opts, cwd);
      emit(cmd.optsWithGlobals<GlobalOptions>().json === true, result, () => grafanaText(result));
      exitCode = EXIT.ok;
    });

  async function patchConfig(endpoint: Endpoint, json: boolean, pool: string, patch: Json): Promise<number> {
    const { body } = await request<{ changed: Record<string, ConfigChange>; status: Json }>(endpoint, 'PATCH', `/pools/${enc(pool)}/config`, patch);
    emit(json, body, () => {
      const changes = Object.entries(body.changed).map(([k, c]) => human`${k} ${String(c.from)} → ${String(c.to)}`);
      return human`pool ${pool}: ${changes.length ? joined(changes, ', ') : 'no change (already set)'}; now ${statusLine(body.status)}`;
    });
    return EXIT.ok;
  }

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (e instanceof CliError) {
      let message = e.message;
      if (e.code === 'POOL_NOT_FOUND') message += await poolHint(program);
      err(`db-pool: error: ${message}\n`);
      return e.exitCode;
    }
    err(`db-pool: internal error: ${escapeControls(String((e as Error)?.message ?? e))}\n`);
    return EXIT.failed;
  }

  async function poolHint(cmd: Command): Promise<string> {
    try {
      const { body } = await request<{ pools: PoolSummary[] }>(endpointOf(cmd).endpoint, 'GET', '/pools');
      return ` (pools: ${body.pools.map((p) => escapeControls(String(p.poolId))).join(', ') || 'none'}) — run "db-pool pools"`;
    } catch {
      return ' — run "db-pool pools" to list them';
    }
  }
}

// ------------------------------------------------------------------ helpers

/** `GET /pools/:id/diagnosis`. */
interface Diagnosis {
  poolId: string;
  performance: PerformanceDiagnosis;
  leaks: LeakDiagnosis;
}

function wholeNumber(flag: string, min: number) {
  return (value: string): number => {
    if (!/^\d{1,9}$/.test(value.trim()) || Number(value) < min) {
      throw new InvalidArgumentError(`${flag} needs a whole number${min > 0 ? ` of at least ${min}` : ''}, got ${JSON.stringify(clip(value, 40))}`);
    }
    return Number(value);
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** The pool id as a path segment; an empty one is a usage error (it would name no pool). */
function enc(pool: string): string {
  if (pool.trim() === '') throw new CliError(EXIT.usage, 'the pool id is empty: give one (db-pool pools lists them)');
  return encodeURIComponent(pool);
}

function statusLine(s: Json | undefined): string {
  if (!s) return '';
  return `total ${num(s.total)}, active ${num(s.active)}, idle ${num(s.idle)}, waiting ${num(s.waiting)} (min ${num(s.min)}, max ${num(s.max)})`;
}

function connectionText(c: Json): string {
  if (typeof c.connectionString === 'string') return c.connectionString;
  const where = `${String(c.host ?? '?')}${c.port === undefined ? '' : `:${String(c.port)}`}/${String(c.database ?? '')}`;
  return `${c.user === undefined ? '' : `${String(c.user)}@`}${where}${c.ssl ? ' (TLS)' : ''}`;
}

function metricsText(m: Json): Rendered {
  const totals = (m.totals ?? {}) as Record<string, unknown>;
  const lines: [string, string][] = [
    ['pool', `${String(m.poolId)}  (last ${num(m.windowSeconds)} s, ${String(m.timestamp)})`],
    [
      'connections',
      `total ${num(m.totalConnections)}, active ${num(m.activeConnections)}, idle ${num(m.idleConnections)}, opening ${num(m.pendingCreates)} (min ${num(m.minConnections)}, max ${num(m.maxConnections)})`,
    ],
    ['utilization', pct(m.connectionUtilization)],
    ['waiting', `${num(m.waitingQueueLength)} callers`],
    [
      'acquire',
      `P50 ${ms(m.acquireLatencyP50)}, P95 ${ms(m.acquireLatencyP95)}, P99 ${ms(m.acquireLatencyP99)}, max ${ms(m.acquireLatencyMax)}; ${num(m.acquireTimeouts)} timeouts`,
    ],
    ['queries', `${num(m.queriesPerSecond, 1)}/s, ${num(m.queriesInWindow)} in the window`],
    ['query latency', `P50 ${ms(m.latencyP50)}, P95 ${ms(m.latencyP95)}, P99 ${ms(m.latencyP99)}, mean ${ms(m.latencyMean)}, max ${ms(m.latencyMax)}`],
    ['errors', `${pct(m.errorRate)} (${num(m.errorsInWindow)} in the window)`],
    ['slow queries', `${num(m.slowQueriesCount)} in the window`],
    ['leaks', `${num(m.leakedConnections)} loans held past the threshold`],
    ['last connect error', m.lastConnectError ? clip(m.lastConnectError, 120) : '-'],
    ['server budget', budgetLine(m.serverBudget)],
    [
      'since start',
      Object.entries(totals)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', '),
    ],
  ];
  return keyValues(lines);
}

/** One server of `db-pool budget`: its budget as the most recent pool read it, and this app's claims. */
interface BudgetRow {
  server: string;
  via: string;
  maxConnections: number;
  reservedConnections: number;
  usableConnections: number;
  backends: number | null;
  backendsMeasuredAt: string | null;
  instanceMax: number;
  instanceOpen: number;
  /** instanceMax / usableConnections. */
  share: number;
  overBudget: boolean;
  poolIds: string[];
}

/** Per server, from each pool's `serverBudget` (pools whose budget is not read yet are listed apart). */
function budgetReport(pools: ReadonlyArray<readonly [string, Json | undefined]>): { servers: BudgetRow[]; notReadYet: string[] } {
  const servers = new Map<string, BudgetRow>();
  const notReadYet: string[] = [];
  for (const [poolId, m] of pools) {
    const b = m?.serverBudget as Json | null | undefined;
    if (b === null || typeof b !== 'object' || typeof b.usableConnections !== 'number') {
      notReadYet.push(poolId);
      continue;
    }
    const key = `${String(b.via)} ${String(b.serverAddress)}:${String(b.serverPort)}`;
    const instance = (b.instance ?? {}) as Json;
    const prev = servers.get(key);
    const row: BudgetRow = {
      server: `${String(b.serverAddress)}:${String(b.serverPort)}`,
      via: String(b.via),
      maxConnections: Number(b.maxConnections),
      reservedConnections: Number(b.superuserReservedConnections) + Number(b.reservedConnections ?? 0),
      usableConnections: b.usableConnections,
      backends: typeof b.backends === 'number' ? b.backends : null,
      backendsMeasuredAt: typeof b.backendsMeasuredAt === 'string' ? b.backendsMeasuredAt : null,
      instanceMax: Number(instance.max),
      instanceOpen: Number(instance.open),
      share: b.usableConnections > 0 ? Number(instance.max) / b.usableConnections : 0,
      overBudget: b.overBudget === true,
      poolIds: Array.isArray(instance.poolIds) ? instance.poolIds.map(String) : [poolId],
    };
    // The most recent reading of the backends wins.
    if (prev === undefined || String(row.backendsMeasuredAt) > String(prev.backendsMeasuredAt)) servers.set(key, row);
  }
  return { servers: [...servers.values()], notReadYet };
}

function budgetText(r: { servers: BudgetRow[]; notReadYet: string[] }): Rendered {
  const out: Rendered[] = [];
  if (r.servers.length === 0) out.push(human`no server budget read yet`);
  else {
    out.push(
      table(
        ['SERVER', 'VIA', 'MAX_CONN', 'RESERVED', 'USABLE', 'BACKENDS', 'APP MAX', 'APP OPEN', 'SHARE', 'POOLS'],
        r.servers.map((s) => [
          s.server,
          s.via,
          s.maxConnections,
          s.reservedConnections,
          s.usableConnections,
          s.backends ?? '-',
          s.instanceMax,
          s.instanceOpen,
          pct(s.share),
          clip(s.poolIds.join(','), 60),
        ]),
      ),
    );
    for (const s of r.servers.filter((x) => x.overBudget)) {
      out.push(
        human`warning: the pools of this app may open ${s.instanceMax} connections to ${s.server}, which has ${s.usableConnections} usable slots: lower their max (db-pool resize <pool> --max N)`,
      );
    }
    if (r.servers.some((s) => s.via === 'pooler'))
      out.push(human`via pooler: read through a transaction pooler; the pools' connections go to the pooler, not the server, and are not counted against it`);
  }
  if (r.notReadYet.length > 0) out.push(human`not read yet (no connection so far): ${clip(r.notReadYet.join(', '), 200)}`);
  return joined(out);
}

/** The `server budget` line of `db-pool metrics`. */
function budgetLine(value: unknown): string {
  if (value === null || typeof value !== 'object') return 'not read yet (read on the first connection)';
  const b = value as Json;
  const instance = (b.instance ?? {}) as Json;
  const reserved = Number(b.superuserReservedConnections) + Number(b.reservedConnections ?? 0);
  const via = b.via === 'pooler' ? " [through a pooler: the pool's connections go to the pooler]" : '';
  return (
    `${num(b.usableConnections)} usable of max_connections ${num(b.maxConnections)} (${num(reserved)} reserved), ${b.backends === null ? '?' : num(b.backends)} backends now; ` +
    `this process's pools may open ${num(instance.max)} (${num(instance.open)} open)${b.overBudget === true ? ' - OVER BUDGET' : ''}${via}`
  );
}

function diagnosisText(d: Diagnosis): Rendered {
  const p = d.performance;
  const out: Rendered[] = [human`pool ${d.poolId}: ${p.overallHealth}${p.issues.length === 0 ? ' (no issues found)' : ''}`];
  for (const i of p.issues) {
    out.push(human`  [${i.severity}] ${i.type}: ${i.description}`);
    for (const r of i.recommendations) out.push(human`      - ${r}`);
  }
  if (p.slowQueries.length > 0) {
    out.push(human``, human`slowest recent queries:`);
    for (const q of p.slowQueries.slice(0, 5)) out.push(human`  ${ms(q.durationMs).padStart(10)}  ${clip(q.text, 100)}`);
  }
  const l = d.leaks;
  out.push(human``, human`leaks: ${l.suspiciousConnections.length} of ${l.totalConnections} connections held longer than ${num(l.thresholdMs)} ms`);
  for (const c of l.suspiciousConnections) {
    const loan = c.loanId === undefined ? '' : human` (loan ${c.loanId})`;
    out.push(human`  connection ${c.id} held ${duration(Number(c.activeDurationMs))}${loan}${c.stackTrace ? ', acquired at:' : ''}`);
    // The stack's own lines are layout; each is escaped.
    if (typeof c.stackTrace === 'string') for (const line of c.stackTrace.split('\n').slice(0, 8)) out.push(human`      ${line.trim()}`);
  }
  for (const r of l.recommendations) out.push(human`  - ${r}`);
  return joined(out);
}
