// The `authgate` command line (SPEC 2). Each subcommand is one entry in COMMANDS.
// Exit codes: 0 success, 1 failure (invalid config, bad input), 2 usage error.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, defaultConfigFile, loadConfig } from './config/load.js';
import { hashPassword } from './credentials/passwords.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

export interface CliCommand {
  name: string;
  /** Synopsis after `authgate `, e.g. `validate [--config FILE]`. */
  usage: string;
  summary: string;
  run(args: string[], io: CliIO): Promise<number>;
}

/** Wrong arguments: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/** A failure with a message for the user (no stack trace), exit code 1 unless given. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const processIO = (): CliIO => ({
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  stdin: process.stdin,
  env: process.env,
});

/** node:util parseArgs, with its errors turned into usage errors and no positionals allowed. */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.split('\n')[0] : String(err));
  }
}

const configOption = { config: { type: 'string', short: 'c' } } as const;

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads one line from a terminal without echoing it. */
function readHidden(io: CliIO, prompt: string): Promise<string> {
  const { stdin } = io;
  io.stderr(prompt);
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = (err?: Error): void => {
      stdin.removeListener('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new CliError('interrupted', 130));
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else if (ch >= ' ') text += ch;
      }
    };
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

async function readPassword(io: CliIO): Promise<string> {
  if (io.stdin.isTTY) {
    const first = await readHidden(io, 'Password: ');
    const second = await readHidden(io, 'Repeat password: ');
    if (first !== second) throw new CliError('the passwords do not match');
    return first;
  }
  // Piped: everything on stdin, minus the one newline `echo` adds.
  return (await readAll(io.stdin)).replace(/\r?\n$/, '');
}

const KEY_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'] as const;
type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

/** A new PKCS#8 PEM private key for a signing algorithm. */
export function generatePrivateKeyPem(alg: KeyAlgorithm): string {
  const { privateKey } =
    alg === 'EdDSA' ? generateKeyPairSync('ed25519') : alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 3072 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export const COMMANDS: CliCommand[] = [
  {
    name: 'start',
    usage: 'start [--config FILE] [--demo-upstream HOST:PORT]',
    summary: 'run the gateway (config: $AUTHGATE_CONFIG, else config/authgate.yaml); --demo-upstream also serves the header-echo demo upstream',
    async run(args, io) {
      const opts = parseOptions(args, { ...configOption, 'demo-upstream': { type: 'string' } });
      const configFile = opts.config ?? defaultConfigFile(io.env);
      const demo = opts['demo-upstream'];
      if (demo !== undefined) {
        const m = /^([^:]+|\[[0-9a-fA-F:]+\]):([0-9]{1,5})$/.exec(demo);
        if (!m) throw new UsageError('--demo-upstream takes HOST:PORT, e.g. 127.0.0.1:8081');
        const { startEcho } = await import('./demo/echo.js');
        const echo = await startEcho((m[1] as string).replace(/^\[|\]$/g, ''), Number(m[2]), { record: false });
        io.stdout(`demo upstream (echoes request headers) on ${echo.url}\n`);
      }
      const { runGateway } = await import('./gateway.js');
      await runGateway({ configFile });
      return 0;
    },
  },
  {
    name: 'validate',
    usage: 'validate [--config FILE]',
    summary: 'check a config file; prints ok or every error',
    async run(args, io) {
      const opts = parseOptions(args, configOption);
      await loadConfig(opts.config ?? defaultConfigFile(io.env), io.env);
      io.stdout('ok\n');
      return 0;
    },
  },
  {
    name: 'hash-password',
    usage: 'hash-password < password.txt',
    summary: 'read a password from stdin, print its argon2id hash (for the users file)',
    async run(args, io) {
      parseOptions(args, {});
      const password = await readPassword(io);
      if (password.length === 0) throw new CliError('refusing to hash an empty password');
      try {
        io.stdout(`${await hashPassword(password)}\n`);
      } catch (err) {
        throw new CliError(err instanceof Error ? err.message : String(err));
      }
      return 0;
    },
  },
  {
    name: 'gen-key',
    usage: 'gen-key [--alg EdDSA|ES256|RS256]',
    summary: 'print a new PEM private key for signing.keys',
    async run(args, io) {
      const opts = parseOptions(args, { alg: { type: 'string', short: 'a', default: 'EdDSA' } });
      const alg = KEY_ALGORITHMS.find((a) => a.toLowerCase() === opts.alg?.toLowerCase());
      if (!alg) throw new UsageError(`unknown --alg '${opts.alg ?? ''}' (expected ${KEY_ALGORITHMS.join(', ')})`);
      io.stdout(generatePrivateKeyPem(alg));
      return 0;
    },
  },
  {
    name: 'token',
    usage: 'token create --user NAME [--name LABEL] [--ttl 30d] [--scopes a,b] [--config FILE]',
    summary: 'create an API token for a user in the configured store; prints it once',
    async run(args, io) {
      const [sub, ...rest] = args;
      if (sub !== 'create') throw new UsageError(sub === undefined ? 'missing subcommand (create)' : `unknown subcommand '${sub}'`);
      const opts = parseOptions(rest, { ...configOption, user: { type: 'string', short: 'u' }, name: { type: 'string', short: 'n' }, ttl: { type: 'string' }, scopes: { type: 'string' } });
      if (opts.user === undefined || opts.user === '') throw new UsageError('--user is required');
      const { createTokenFromCli } = await import('./tokens/cli-token.js');
      const created = await createTokenFromCli({ configFile: opts.config ?? defaultConfigFile(io.env), env: io.env, user: opts.user, name: opts.name, ttl: opts.ttl, scopes: opts.scopes, warn: (m) => io.stderr(`${m}\n`) });
      io.stdout(`${created.token}\n`);
      io.stderr(`token ${created.id} for ${opts.user} expires ${new Date(created.expiresAt * 1000).toISOString()}; it is shown only this once\n`);
      return 0;
    },
  },
  {
    name: 'mfa',
    usage: 'mfa reset --user NAME [--config FILE]',
    summary: "remove a user's second factors (lost device) and end their sessions; audited",
    async run(args, io) {
      const [sub, ...rest] = args;
      if (sub !== 'reset') throw new UsageError(sub === undefined ? 'missing subcommand (reset)' : `unknown subcommand '${sub}'`);
      const opts = parseOptions(rest, { ...configOption, user: { type: 'string', short: 'u' } });
      if (opts.user === undefined || opts.user === '') throw new UsageError('--user is required');
      const { resetMfaFromCli } = await import('./mfa/cli-reset.js');
      const r = await resetMfaFromCli({ configFile: opts.config ?? defaultConfigFile(io.env), env: io.env, user: opts.user, warn: (m) => io.stderr(`${m}\n`), audit: { write: (line) => io.stderr(line) } });
      io.stdout(`removed for ${opts.user}: totp ${r.totp ? 'yes' : 'no'}, ${r.webauthn} WebAuthn credential(s), ${r.recoveryCodes} recovery code(s); ${r.sessions} session(s) ended\n`);
      return 0;
    },
  },
];

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length));
  const lines = COMMANDS.map((c) => `  authgate ${c.usage.padEnd(width)}  ${c.summary}`);
  return `Usage:\n${lines.join('\n')}\n  authgate --help | --version\n`;
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.stderr(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    io.stdout(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`authgate: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(`Usage: authgate ${command.usage}\n  ${command.summary}\n`);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`${err.errors.join('\n')}\n`);
      return 1;
    }
    if (err instanceof UsageError) {
      io.stderr(`authgate ${command.name}: ${err.message}\nUsage: authgate ${command.usage}\n`);
      return 2;
    }
    if (err instanceof CliError) {
      io.stderr(`authgate ${command.name}: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`authgate ${command.name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
