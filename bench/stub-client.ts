/**
 * A stand-in for `pg.Client` with no server behind it, for the cases that measure the pools
 * themselves (connection cycle, waiters, many pools, many statements). It has what pg-pool and our
 * ConnectionFactory use: `connect`, `end`, `query` (callback or promise), the `error` / `end`
 * events, `getTransactionStatus()`, `processID` and pg-pool's `_queryable` / `_ending` flags.
 *
 * A query answers on the next turn of the event loop (`setImmediate`), as socket I/O would, so
 * timers (span export, metric collection) still run during a load loop.
 */
import { EventEmitter } from 'node:events';

let nextPid = 1;

const RESULT = Object.freeze({ command: 'SELECT', rowCount: 1, oid: 0, fields: [], rows: [{ n: 1 }] });

type Callback = (err: Error | undefined, res?: unknown) => void;

export class StubClient extends EventEmitter {
  readonly processID = nextPid++;
  _queryable = true;
  _ending = false;
  /** Statements "sent"; with no server there is nothing else to observe. */
  queries = 0;

  constructor(_config?: unknown) {
    super();
  }

  connect(cb?: (err?: Error) => void): Promise<void> | undefined {
    if (cb) {
      process.nextTick(cb);
      return undefined;
    }
    return Promise.resolve();
  }

  end(cb?: () => void): Promise<void> | undefined {
    this._ending = true;
    this._queryable = false;
    process.nextTick(() => this.emit('end'));
    if (cb) {
      process.nextTick(cb);
      return undefined;
    }
    return Promise.resolve();
  }

  query(_config: unknown, values?: unknown, cb?: Callback): Promise<unknown> | undefined {
    this.queries++;
    if (typeof values === 'function') cb = values as Callback;
    if (cb) {
      const done = cb;
      setImmediate(() => done(undefined, RESULT));
      return undefined;
    }
    return new Promise((resolve) => setImmediate(resolve, RESULT));
  }

  getTransactionStatus(): string {
    return 'I';
  }

  ref(): void {}
  unref(): void {}
}
