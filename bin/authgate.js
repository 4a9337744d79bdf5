#!/usr/bin/env node
// Entry point for `npx authgate` and `npm start`: runs the compiled CLI (built by `prepare`).
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.message : String(err)); process.exitCode = 1; },
);
