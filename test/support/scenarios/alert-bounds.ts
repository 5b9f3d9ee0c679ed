/**
 * Alerts behind a hung receiver (issue 14, item 8): a real pool's ConnectionExhaustion flaps for a
 * few seconds while the webhook receiver on 127.0.0.1 takes requests and never answers. The
 * evaluator must hold at most two handler calls for the key (one running, one waiting: the latest
 * state), deliver the final state once the receiver answers again, and `stop()` must end within
 * its bound while the receiver hangs again.
 */
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import { AlertEvaluator, AlertHandler, DatabasePool, type AlertContext, type ResolvedAlert } from '../../../src/index.js';
import { Checks, eventually, type ScenarioContext, type ScenarioResult } from '../outcomes.js';

/** How long the condition flaps while the receiver hangs. */
const FLAP_MS = 3_000;
/** The evaluator's stop bound in this scenario, and the margin allowed over it. */
const STOP_TIMEOUT_MS = 2_000;
const STOP_MARGIN_MS = 1_000;
/** Handler calls the evaluator may hold for one (handler, pool, condition). */
const QUEUE_BOUND = 2;

interface Arrival {
  status: string;
  at: number;
}

/** A webhook receiver that records every alert and, while hung, never answers. */
async function hangingReceiver(): Promise<{ url: string; arrivals: Arrival[]; hang(): void; recover(): void; close(): Promise<void> }> {
  const arrivals: Arrival[] = [];
  const held = new Set<ServerResponse>();
  let hung = true;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let status = '?';
      try {
        status = String((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status?: unknown }).status);
      } catch {
        // recorded as '?'
      }
      arrivals.push({ status, at: performance.now() });
      if (!hung) {
        res.writeHead(200).end('ok');
        return;
      }
      held.add(res);
      res.on('close', () => held.delete(res));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/alerts`,
    arrivals,
    hang: () => void (hung = true),
    recover: () => {
      hung = false;
      for (const res of held) res.writeHead(200).end('ok');
      held.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The bundled handler, counting the calls the evaluator makes (each one is a webhook delivery). */
class CountingHandler extends AlertHandler {
  started = 0;
  override async handleConnectionExhaustion(poolId: string, context?: AlertContext): Promise<void> {
    this.started++;
    await super.handleConnectionExhaustion(poolId, context);
  }
  override async handleResolved(alert: ResolvedAlert): Promise<void> {
    this.started++;
    await super.handleResolved(alert);
  }
}

export async function alertBoundsScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const checks = new Checks();
  const figures: Record<string, string | number> = {};
  const receiver = await hangingReceiver();
  const db = new DatabasePool({
    pools: { alerts: { connection: { connectionString: ctx.databaseUrl }, min: 0, max: 1, acquireTimeoutMs: 10_000 } },
    logger: null,
  });
  // Per-attempt timeout 1 s, 3 attempts: a call to the hung receiver takes about 3.6 s by itself.
  const handler = new CountingHandler({
    logger: null,
    timeoutMs: 1_000,
    retry: { attempts: 3, baseDelayMs: 200 },
    channels: { hook: { type: 'webhook', url: receiver.url } },
  });
  const only = {
    connectionExhaustion: { forMs: 0 },
    poolDown: { enabled: false },
    leakSuspected: { enabled: false },
    highQueryLatency: { enabled: false },
    highErrorRate: { enabled: false },
  };
  const ev = new AlertEvaluator(db, handler, { intervalMs: 20, probe: false, logger: null, stopTimeoutMs: STOP_TIMEOUT_MS, rules: only });
  let maxHeld = 0;
  const sampler = setInterval(() => {
    const s = ev.callStats();
    maxHeld = Math.max(maxHeld, s.inFlight + s.pending);
  }, 5);
  const firing = () => ev.activeAlerts().length > 0;
  /** Starts an episode: the only connection lent and a caller waiting, until the evaluator sees it. Resolves with its end. */
  const startEpisode = async (): Promise<{ fired: boolean; end(): Promise<boolean> }> => {
    const holder = await db.acquire('alerts');
    const waiter = db.acquire('alerts');
    const fired = await eventually(firing, 5_000, 5);
    return {
      fired,
      async end() {
        holder.release();
        (await waiter).release();
        return eventually(() => !firing(), 5_000, 5);
      },
    };
  };
  try {
    // 1. The receiver hangs; the condition flaps.
    let episodes = 0;
    const flapEnd = performance.now() + FLAP_MS;
    while (performance.now() < flapEnd) {
      const e = await startEpisode();
      if (!(await e.end()) || !e.fired) break;
      episodes++;
    }
    const afterFlap = ev.callStats();
    const arrivedWhileHung = receiver.arrivals.length;
    figures['episodes while hung'] = episodes;
    figures['state changes decided'] = 2 * episodes;
    figures['handler calls held, max'] = maxHeld;
    figures['handler calls replaced (superseded)'] = afterFlap.superseded;
    checks.add(`flapping (${episodes} episodes in ${FLAP_MS} ms)`, episodes >= 10, `${episodes} episodes`);
    checks.add(`handler calls held for the key ≤ ${QUEUE_BOUND}`, maxHeld <= QUEUE_BOUND, `max ${maxHeld} (running + waiting)`);

    // 2. The receiver answers again: the final state (resolved) arrives, and the backlog does not.
    const startedBefore = handler.started;
    const recoveredAt = performance.now();
    receiver.recover();
    const settled = await eventually(() => {
      const s = ev.callStats();
      return s.inFlight === 0 && s.pending === 0;
    }, 20_000);
    const last = receiver.arrivals.at(-1);
    figures['handler calls after recovery'] = handler.started - startedBefore;
    figures['webhook requests while hung / in all'] = `${arrivedWhileHung} / ${receiver.arrivals.length}`;
    figures['recovery → final state delivered (ms)'] = last && last.at >= recoveredAt ? Math.round(last.at - recoveredAt) : '-';
    checks.add('evaluator idle after the receiver recovered', settled, JSON.stringify(ev.callStats()));
    checks.add('the final state (resolved) is the last alert delivered', last?.status === 'resolved', `last: ${last?.status ?? 'none'}`);
    checks.add(`handler calls after recovery ≤ ${QUEUE_BOUND}`, handler.started - startedBefore <= QUEUE_BOUND, `${handler.started - startedBefore}`);

    // 3. The receiver hangs again with a trigger running and a resolve waiting: stop() is bounded.
    receiver.hang();
    const arrivalsBefore = receiver.arrivals.length;
    const e = await startEpisode();
    await eventually(() => receiver.arrivals.length > arrivalsBefore, 5_000); // the trigger hangs
    await e.end(); // the resolve waits behind it
    const t0 = performance.now();
    await ev.stop();
    const stopMs = performance.now() - t0;
    const stopStats = ev.callStats();
    figures['stop() with the receiver hung (ms)'] = Math.round(stopMs);
    checks.add(
      `stop() ≤ ${STOP_TIMEOUT_MS + STOP_MARGIN_MS} ms with the receiver hung`,
      stopMs <= STOP_TIMEOUT_MS + STOP_MARGIN_MS,
      `${Math.round(stopMs)} ms (stopTimeoutMs ${STOP_TIMEOUT_MS})`,
    );
    checks.add('nothing running or waiting after stop()', stopStats.inFlight === 0 && stopStats.pending === 0, JSON.stringify(stopStats));
    ctx.log(`alert bounds: ${episodes} episodes, max held ${maxHeld}, superseded ${afterFlap.superseded}, stop ${Math.round(stopMs)} ms`);
  } finally {
    clearInterval(sampler);
    await ev.stop();
    const c0 = performance.now();
    await db.close({ drainTimeoutMs: 500 });
    figures['db.close() (ms)'] = Math.round(performance.now() - c0);
    await receiver.close();
  }
  return {
    name: 'alerts: hung receiver, flapping condition',
    requests: receiver.arrivals.length,
    served: receiver.arrivals.length,
    rejected: {},
    hung: 0,
    leaked: 0,
    figures,
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
