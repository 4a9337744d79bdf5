import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { verify } from '@node-rs/argon2';
import t from 'tap';

const root = fileURLToPath(new URL('../../', import.meta.url));
const validDir = path.join(root, 'test/config/fixtures/valid');
const VALID_ENV = { PUBLIC_URL: 'https://gw.example.com', UPSTREAM_TIMEOUT: '45', AS_SECRET: 'as-secret', WEBSOCKET: 'true', COUNT: '3' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source in a child process: real exit codes and streams. */
function cli(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    delete env.NODE_OPTIONS;
    if (!opts.env?.AUTHGATE_CONFIG) delete env.AUTHGATE_CONFIG;
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/cli/fixtures/run-cli.ts'), ...args], { cwd: root, env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

t.test('usage: no command, unknown command, --help', async (t) => {
  const none = await cli([]);
  t.equal(none.code, 2);
  t.match(none.stderr, /Usage:/);
  const unknown = await cli(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  const help = await cli(['--help']);
  t.equal(help.code, 0);
  for (const cmd of ['start [--config FILE]', 'validate [--config FILE]', 'hash-password', 'gen-key [--alg EdDSA|ES256|RS256]']) t.match(help.stdout, cmd);
  const sub = await cli(['validate', '--help']);
  t.equal(sub.code, 0);
  t.match(sub.stdout, 'Usage: authgate validate [--config FILE]');
  const badFlag = await cli(['validate', '--nope']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /Unknown option '--nope'/);
});

t.test('validate: ok', async (t) => {
  const run = await cli(['validate', '--config', path.join(validDir, 'authgate.yaml')], { env: VALID_ENV });
  t.equal(run.stderr, '');
  t.equal(run.stdout, 'ok\n');
  t.equal(run.code, 0);
  const viaEnv = await cli(['validate'], { env: { ...VALID_ENV, AUTHGATE_CONFIG: path.join(validDir, 'authgate.yaml') } });
  t.equal(viaEnv.stdout, 'ok\n', '$AUTHGATE_CONFIG is the default file');
});

t.test('validate: every error, exit 1, no stack trace', async (t) => {
  const dir = t.testdir({
    'bad.yaml': 'server:\n  listen: { port: http }\n  extra: 1\nroutes:\n  - { name: a, match: { path: /a }, upstream: http://h, auth: [nobody] }\n',
  });
  const file = path.join(dir, 'bad.yaml');
  const run = await cli(['validate', '--config', file]);
  t.equal(run.code, 1);
  t.equal(run.stdout, '');
  t.same(run.stderr.trimEnd().split('\n'), [
    `${file}:2:19: server.listen.port: must be an integer, not a string`,
    `${file}:3:3: server.extra: unknown key 'extra'`,
    `${file}:5:64: routes.0.auth.0: unknown authenticator 'nobody' (no authenticators are defined)`,
  ]);
  const missing = await cli(['validate', '--config', path.join(dir, 'none.yaml')]);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, `${path.join(dir, 'none.yaml')}:1:1: (root): file does not exist\n`);
});

t.test('start: an invalid config is refused with every error and exit 1', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'routes:\n  - { name: a, match: { path: /a }, upstream: http://h, auth: [nobody] }\nstore: { driver: mongo }\n' });
  const file = path.join(dir, 'bad.yaml');
  const run = await cli(['start', '--config', file]);
  t.equal(run.code, 1);
  t.same(run.stderr.trimEnd().split('\n'), [
    `${file}:2:64: routes.0.auth.0: unknown authenticator 'nobody' (no authenticators are defined)`,
    `${file}:3:18: store.driver: must be one of: memory, sqlite, redis`,
  ]);
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
});

t.test('hash-password: argon2id (m=19456,t=2,p=1) of stdin minus one trailing newline', async (t) => {
  const run = await cli(['hash-password'], { stdin: 'correct horse battery\n' });
  t.equal(run.code, 0, run.stderr);
  const hash = run.stdout.trimEnd();
  t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  t.equal(run.stdout, `${hash}\n`);
  t.ok(await verify(hash, 'correct horse battery'));
  t.notOk(await verify(hash, 'correct horse battery\n'));

  const kept = await cli(['hash-password'], { stdin: 'pw with newline\n\n' });
  t.ok(await verify(kept.stdout.trimEnd(), 'pw with newline\n'), 'only one newline is stripped');
  const crlf = await cli(['hash-password'], { stdin: 'windows\r\n' });
  t.ok(await verify(crlf.stdout.trimEnd(), 'windows'));
});

t.test('hash-password: an empty password is refused', async (t) => {
  for (const stdin of ['', '\n']) {
    const run = await cli(['hash-password'], { stdin });
    t.equal(run.code, 1);
    t.equal(run.stdout, '');
    t.match(run.stderr, /empty password/);
  }
});

t.test('gen-key: a PKCS#8 PEM private key for each algorithm', async (t) => {
  const expected: Record<string, { type: string; curve?: string }> = {
    EdDSA: { type: 'ed25519' },
    ES256: { type: 'ec', curve: 'prime256v1' },
    RS256: { type: 'rsa' },
  };
  for (const [alg, want] of Object.entries(expected)) {
    const run = await cli(['gen-key', '--alg', alg]);
    t.equal(run.code, 0, run.stderr);
    t.match(run.stdout, /^-----BEGIN PRIVATE KEY-----\n[^]+\n-----END PRIVATE KEY-----\n$/);
    const key = createPrivateKey(run.stdout);
    t.equal(key.asymmetricKeyType, want.type, alg);
    if (want.curve) t.equal(key.asymmetricKeyDetails?.namedCurve, want.curve);
  }
  const dflt = await cli(['gen-key']);
  t.equal(createPrivateKey(dflt.stdout).asymmetricKeyType, 'ed25519', 'EdDSA by default');
  const hs = await cli(['gen-key', '--alg', 'HS256']);
  t.equal(hs.code, 2);
  t.equal(hs.stdout, '');
  t.match(hs.stderr, /unknown --alg 'HS256'/);
});
