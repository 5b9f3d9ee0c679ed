/**
 * Entry point of the `db-pool` command (`bin/db-pool.js` loads the built copy of this file).
 * Sets the exit code instead of calling `process.exit`, so output on pipes is never cut short.
 */
import { escapeControls } from './format.js';
import { run } from './main.js';

// `db-pool pools | head -1`: the reader left; stop quietly instead of crashing on EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`db-pool: internal error: ${escapeControls(err instanceof Error ? err.message : String(err))}\n`);
    process.exitCode = 1;
  },
);
