/**
 * One contender in its own process (forked by bench/run.ts with --expose-gc), so that each has a
 * clean heap and RSS, module set and OpenTelemetry globals. It sets up when told, then runs the
 * segments the runner asks for, one at a time, answering each over IPC.
 */
import { CONTENDERS, type Contender, type OpParams, type SetupOptions } from './contenders.js';
import { memoryAfterGc, runLoad, type LoadOptions } from './measure.js';

export type WorkerRequest =
  | { t: 'setup'; name: string; options: SetupOptions }
  | { t: 'run'; params: OpParams; load: LoadOptions }
  | { t: 'heap'; params: OpParams; callers: number; first: number; total: number }
  | { t: 'scrape'; times: number }
  | { t: 'memory' }
  | { t: 'close' };

let contender: Contender | undefined;
let totalOps = 0;

async function handle(m: WorkerRequest): Promise<unknown> {
  switch (m.t) {
    case 'setup': {
      const factory = CONTENDERS[m.name];
      if (!factory) throw new Error(`no contender "${m.name}"`);
      contender = await factory(m.options);
      return { pid: process.pid };
    }
    case 'run': {
      const r = await runLoad(contender!.op(m.params), m.load);
      totalOps += r.ops;
      return r;
    }
    case 'heap': {
      const op = contender!.op(m.params);
      const first = await runLoad(op, { callers: m.callers, maxOps: m.first, yieldEvery: 100 });
      const atFirst = memoryAfterGc();
      const rest = await runLoad(op, { callers: m.callers, maxOps: m.total - m.first, yieldEvery: 100 });
      const atTotal = memoryAfterGc();
      totalOps += first.ops + rest.ops;
      return {
        atFirst,
        atTotal,
        ops: first.ops + rest.ops,
        errors: first.errors + rest.errors,
        firstError: first.firstError ?? rest.firstError,
        seconds: (first.elapsedMs + rest.elapsedMs) / 1000,
      };
    }
    case 'scrape': {
      const samples = [];
      for (let i = 0; i < m.times; i++) samples.push(await contender!.scrape!());
      return samples;
    }
    case 'memory':
      return { ...memoryAfterGc(), facts: contender?.facts?.() };
    case 'close': {
      const spans = contender?.spans?.();
      await contender?.close();
      // Spans exported by the batch processor on shutdown are counted too.
      const after = contender?.spans?.() ?? spans;
      return { totalOps, spans: after };
    }
  }
}

process.on('message', (m: WorkerRequest) => {
  handle(m).then(
    (value) => {
      // After close, exit explicitly (also writes a --cpu-prof profile).
      process.send!({ ok: true, value }, () => {
        if (m.t === 'close') process.exit(0);
      });
    },
    (err: unknown) => process.send!({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  );
});
