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
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { DEFAULT_ADMIN_URL, isLoopback, type ConfigChange, type PoolSummary } from '../admin/protocol.js';
import type { LeakDiagnosis, PerformanceDiagnosis } from '../diagnosis.js';
import type { HealthReport } from '../health.js';
import { CliError, EXIT, displayUrl, request, type Endpoint } from './client.js';
import { age, clip, duration, keyValues, metricsFileName, ms, num, pct, table } from './format.js';

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
  const out = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = io.stderr ?? ((s: string) => void process.stderr.write(s));
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
      throw new CliError(EXIT.usage, `invalid admin endpoint URL (not shown, it may hold credentials): expected e.g. ${DEFAULT_ADMIN_URL} (--url or DB_POOL_ADMIN_URL)`);
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
    <A extends unknown[]>(fn: (ctx: { endpoint: Endpoint; json: boolean }, ...args: A) => Promise<number | void>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const ctx = endpointOf(cmd);
      const code = await fn(ctx, ...(args.slice(0, -1) as A));
      exitCode = code ?? EXIT.ok;
    };
  const emit = (json: boolean, data: unknown, human: () => string) => print(json ? JSON.stringify(data, null, 2) : human());

  command('health', 'probe every pool with SELECT 1 (exit 1 unless all answer)').action(
    act(async ({ endpoint, json }) => {
      const { body } = await request<HealthReport>(endpoint, 'GET', '/health');
      emit(json, body, () => {
        const total = body.healthyPools.length + body.unhealthyPools.length;
        const rows = [...body.healthyPools.map((p) => [p, 'healthy', '']), ...body.unhealthyPools.map((p) => [p.poolId, 'unhealthy', clip(p.error, 100)])];
        return `status: ${body.status} (${body.healthyPools.length} of ${total} pools answered SELECT 1)\n` + (rows.length ? `\n${table(['POOL', 'STATUS', 'ERROR'], rows)}` : '');
      });
      return body.status === 'healthy' ? EXIT.ok : EXIT.failed;
    }),
  );

  command('pools', 'list the pools with their connection counts').action(
    act(async ({ endpoint, json }) => {
      const { body } = await request<{ pools: PoolSummary[] }>(endpoint, 'GET', '/pools');
      emit(json, body, () =>
        body.pools.length === 0
          ? 'no pools'
          : table(
              ['POOL', 'TOTAL', 'ACTIVE', 'IDLE', 'WAITING', 'MIN', 'MAX', 'UTIL', 'LAST CONNECT ERROR'],
              body.pools.map((p) => [p.poolId, p.total, p.active, p.idle, p.waiting, p.min, p.max, pct(p.utilization), p.lastConnectError ? clip(p.lastConnectError, 60) : '']),
            ),
      );
    }),
  );

  command('config <pool>', "a pool's settings (secrets redacted) and live status").action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<{ poolId: string; config: Json; status: Json }>(endpoint, 'GET', `/pools/${enc(pool)}`);
      emit(json, body, () => {
        const pairs: [string, string][] = Object.entries(body.config).map(([k, v]) => [k, k === 'connection' ? connectionText(v as Json) : typeof v === 'object' ? JSON.stringify(v) : String(v)]);
        return `${keyValues(pairs)}\n\nnow: ${statusLine(body.status)}`;
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
          emit(json, { poolId: pool, file }, () => `wrote metrics of pool ${pool} to ${file}`);
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
            ? `no slow queries kept for pool ${pool}`
            : table(
                ['DURATION', 'AT', 'CONN', 'SQLSTATE', 'FINGERPRINT', 'QUERY'],
                body.slowQueries.map((q) => [ms(q.durationMs), String(q.at), Number(q.connectionId), q.sqlState as string | undefined, String(q.fingerprint), clip(q.text, 100)]),
              ),
        );
      }),
    );

  command('connections <pool>', "a pool's connections: state, age, use count, last query").action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<{ connections: Json[] }>(endpoint, 'GET', `/pools/${enc(pool)}/connections`);
      emit(json, body, () =>
        body.connections.length === 0
          ? `pool ${pool} has no open connections`
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
        const { body } = await request<Json & { status: Json }>(endpoint, 'POST', `/pools/${enc(pool)}/restart`, opts.drainTimeout === undefined ? {} : { drainTimeoutMs: opts.drainTimeout });
        emit(json, body, () => `restarted pool ${pool} in ${ms(body.durationMs)}; now ${statusLine(body.status)}`);
      }),
    );

  command('cleanup <pool>', 'close idle connections, reclaim leaked loans, clear transient errors').action(
    act(async ({ endpoint, json }, pool: string) => {
      const { body } = await request<Json & { status: Json }>(endpoint, 'POST', `/pools/${enc(pool)}/cleanup`, {});
      emit(
        json,
        body,
        () =>
          `cleaned pool ${pool}: closed ${num(body.idleClosed)} idle connection(s), reclaimed ${num(body.leaksReclaimed)} leaked loan(s)` +
          `${body.errorsCleared ? ', cleared transient errors' : ''}; now ${statusLine(body.status)}`,
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

  async function patchConfig(endpoint: Endpoint, json: boolean, pool: string, patch: Json): Promise<number> {
    const { body } = await request<{ changed: Record<string, ConfigChange>; status: Json }>(endpoint, 'PATCH', `/pools/${enc(pool)}/config`, patch);
    emit(json, body, () => {
      const changes = Object.entries(body.changed).map(([k, c]) => `${k} ${String(c.from)} → ${String(c.to)}`);
      return `pool ${pool}: ${changes.length ? changes.join(', ') : 'no change (already set)'}; now ${statusLine(body.status)}`;
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
    err(`db-pool: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    return EXIT.failed;
  }

  async function poolHint(cmd: Command): Promise<string> {
    try {
      const { body } = await request<{ pools: PoolSummary[] }>(endpointOf(cmd).endpoint, 'GET', '/pools');
      return ` (pools: ${body.pools.map((p) => p.poolId).join(', ') || 'none'}) — run "db-pool pools"`;
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

function metricsText(m: Json): string {
  const totals = (m.totals ?? {}) as Record<string, unknown>;
  const lines: [string, string][] = [
    ['pool', `${String(m.poolId)}  (last ${num(m.windowSeconds)} s, ${String(m.timestamp)})`],
    ['connections', `total ${num(m.totalConnections)}, active ${num(m.activeConnections)}, idle ${num(m.idleConnections)}, opening ${num(m.pendingCreates)} (min ${num(m.minConnections)}, max ${num(m.maxConnections)})`],
    ['utilization', pct(m.connectionUtilization)],
    ['waiting', `${num(m.waitingQueueLength)} callers`],
    ['acquire', `P50 ${ms(m.acquireLatencyP50)}, P95 ${ms(m.acquireLatencyP95)}, P99 ${ms(m.acquireLatencyP99)}, max ${ms(m.acquireLatencyMax)}; ${num(m.acquireTimeouts)} timeouts`],
    ['queries', `${num(m.queriesPerSecond, 1)}/s, ${num(m.queriesInWindow)} in the window`],
    ['query latency', `P50 ${ms(m.latencyP50)}, P95 ${ms(m.latencyP95)}, P99 ${ms(m.latencyP99)}, mean ${ms(m.latencyMean)}, max ${ms(m.latencyMax)}`],
    ['errors', `${pct(m.errorRate)} (${num(m.errorsInWindow)} in the window)`],
    ['slow queries', `${num(m.slowQueriesCount)} in the window`],
    ['leaks', `${num(m.leakedConnections)} loans held past the threshold`],
    ['last connect error', m.lastConnectError ? clip(m.lastConnectError, 120) : '-'],
    ['since start', Object.entries(totals).map(([k, v]) => `${k} ${String(v)}`).join(', ')],
  ];
  return keyValues(lines);
}

function diagnosisText(d: Diagnosis): string {
  const p = d.performance;
  const out: string[] = [`pool ${d.poolId}: ${p.overallHealth}${p.issues.length === 0 ? ' (no issues found)' : ''}`];
  for (const i of p.issues) {
    out.push(`  [${i.severity}] ${i.type}: ${i.description}`);
    for (const r of i.recommendations) out.push(`      - ${r}`);
  }
  if (p.slowQueries.length > 0) {
    out.push('', 'slowest recent queries:');
    for (const q of p.slowQueries.slice(0, 5)) out.push(`  ${ms(q.durationMs).padStart(10)}  ${clip(q.text, 100)}`);
  }
  const l = d.leaks;
  out.push('', `leaks: ${l.suspiciousConnections.length} of ${l.totalConnections} connections held longer than ${num(l.thresholdMs)} ms`);
  for (const c of l.suspiciousConnections) {
    out.push(`  connection ${String(c.id)} held ${duration(Number(c.activeDurationMs))}${c.loanId === undefined ? '' : ` (loan ${String(c.loanId)})`}${c.stackTrace ? ', acquired at:' : ''}`);
    if (typeof c.stackTrace === 'string') for (const line of c.stackTrace.split('\n').slice(0, 8)) out.push(`      ${line.trim()}`);
  }
  for (const r of l.recommendations) out.push(`  - ${r}`);
  return out.join('\n');
}
