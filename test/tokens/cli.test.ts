// `authgate token create`: a token made by the CLI in the configured store works at a running
// gateway sharing that store.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { main, type CliIO } from '../../src/cli.js';
import { hashPassword } from '../../src/credentials/passwords.js';
import { makeTempDir, startTestEcho, startTestGateway } from '../helpers/gateway.js';

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const stdin = new PassThrough();
  stdin.end();
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stdin, env: { ...process.env, AUTHGATE_CONFIG: '' } };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

t.test('token create', async (t) => {
  const echo = await startTestEcho(t);
  const users = { users: { svc: { password: await hashPassword('x-very-long-password') }, off: { disabled: true } } };
  const gw = await startTestGateway(
    t,
    {
      store: { driver: 'sqlite', sqlite: { path: './data/gw.db' } },
      users: { file: './users.yaml' },
      authenticators: { 'api-token': { type: 'token' } },
      routes: [{ name: 'orders', match: { path: '/orders/**' }, upstream: echo.url, auth: ['api-token'], require: { scopes: ['orders:read'] } }],
    },
    { files: { 'users.yaml': stringify(users) } },
  );

  const made = await run(['token', 'create', '--config', gw.configFile, '--user', 'svc', '--name', 'nightly', '--ttl', '30d', '--scopes', 'orders:read, orders:write']);
  t.equal(made.code, 0, made.stderr);
  const token = made.stdout.trim();
  t.match(token, /^agt_[0-9A-Za-z]{49}$/, 'stdout is the token alone');
  t.match(made.stderr, /shown only this once/);
  t.notOk(made.stderr.includes(token));

  const res = await request(`${gw.url}/orders/1`, { headers: { authorization: `Token ${token}` } });
  t.equal(res.statusCode, 200, 'the running gateway accepts it');
  const seen = (await res.body.json()) as { headers: Record<string, string> };
  t.equal(seen.headers['x-auth-user'], 'svc');
  t.equal(seen.headers['x-auth-scopes'], 'orders:read orders:write');

  const listed = await request(`${gw.url}/.auth/tokens`, { headers: { authorization: `Token ${token}` } });
  const { tokens } = (await listed.body.json()) as { tokens: { name: string; expiresAt: number; createdAt: number }[] };
  t.equal(tokens[0]?.name, 'nightly');
  t.equal(tokens[0]!.expiresAt - tokens[0]!.createdAt, 30 * 86400);

  const unknown = await run(['token', 'create', '--config', gw.configFile, '--user', 'ghost']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no user 'ghost'/);
  t.equal(unknown.stdout, '');
  const disabled = await run(['token', 'create', '--config', gw.configFile, '--user', 'off']);
  t.equal(disabled.code, 1);
  for (const [args, code] of [
    [['token', 'create', '--config', gw.configFile, '--user', 'svc', '--ttl', '400d'], 1],
    [['token', 'create', '--config', gw.configFile, '--user', 'svc', '--ttl', 'soon'], 1],
    [['token', 'create', '--config', gw.configFile, '--user', 'svc', '--scopes', 'a b'], 1],
    [['token', 'create', '--config', gw.configFile], 2],
    [['token', 'create', '--config', gw.configFile, '--user', 'svc', 'extra'], 2],
    [['token'], 2],
    [['token', 'delete', '--user', 'svc'], 2],
  ] as const) {
    const r = await run([...args]);
    t.equal(r.code, code, args.slice(2).join(' '));
    t.equal(r.stdout, '');
  }

  const dir = makeTempDir(t);
  const memoryConfig = join(dir, 'memory.yaml');
  writeFileSync(memoryConfig, stringify({ store: { driver: 'memory' }, routes: [] }));
  const memory = await run(['token', 'create', '--config', memoryConfig, '--user', 'svc']);
  t.equal(memory.code, 1);
  t.match(memory.stderr, /memory store/);
});
