// Runs the CLI from source in a child process (`node --import tsx test/cli/run-cli.ts ...`),
// so tests see real exit codes and output streams.
import { main } from '../../src/cli.js';

process.exitCode = await main(process.argv.slice(2));
