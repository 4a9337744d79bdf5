// Audit events (SPEC 7) this gateway's self-service and token code owns: `logout`,
// `session.revoked`, `token.created`, `token.revoked`, `jwt.family_revoked` (CLI token creation
// too). Each action writes its event exactly once, to `audit.destination` when configured (else
// the main log), with who/where/how, and no line ever holds the password, a cookie or a token.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { stringify } from 'yaml';
import { main, type CliIO } from '../../src/cli.js';
import { makeTempDir, startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { call, cookieValue, jsonLogin, PASSWORDS, usersFile } from '../sessions/_browser.js';

type Line = Record<string, unknown>;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const stdin = new PassThrough();
  stdin.end();
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stdin, env: { ...process.env, AUTHGATE_CONFIG: '' } };
  return { code: await main(args, io), stdout, stderr };
}

const json = { 'content-type': 'application/json' };

async function start(t: Parameters<typeof startTestGateway>[0], audit?: Record<string, unknown>) {
  const echo = await startTestEcho(t);
  return startTestGateway(t, {
    store: { driver: 'sqlite', sqlite: { path: './data/gw.db' } },
    users: { file: './users.yaml' },
    authenticators: { web: { type: 'session' }, 'api-token': { type: 'token' } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'api-token'] }],
    ...(audit ? { audit } : {}),
  }, { files: { 'users.yaml': await usersFile() } });
}

/** Every secret a run handled, to be found in no log line. */
const secrets: string[] = [PASSWORDS.alice];

t.test('each owned event once per action, to audit.destination, never a secret', async (t) => {
  const gw = await start(t, { destination: './audit/audit.log' });
  const origin = { origin: gw.url };
  const login = await jsonLogin(gw.url, 'alice', PASSWORDS.alice);
  const cookie = cookieValue(login) as string;
  secrets.push(cookie, cookie.slice(0, 43), cookie.slice(44));
  const asAlice = { cookie: `authgate_session=${cookie}` };

  // token.created, token.revoked
  const made = await call(`${gw.url}/.auth/tokens`, { method: 'POST', headers: { ...json, ...asAlice, ...origin }, body: JSON.stringify({ name: 'ci', ttl: '1d' }) });
  t.equal(made.status, 201);
  const token = made.json<{ id: string; token: string }>();
  secrets.push(token.token);
  t.equal((await call(`${gw.url}/.auth/tokens/${token.id}`, { method: 'DELETE', headers: { ...asAlice, ...origin } })).status, 204);
  t.equal((await call(`${gw.url}/.auth/tokens/${token.id}`, { method: 'DELETE', headers: { ...asAlice, ...origin } })).status, 404, 'a second revocation is no event');

  // session.revoked
  const other = cookieValue(await jsonLogin(gw.url, 'alice', PASSWORDS.alice)) as string;
  secrets.push(other);
  const sessions = (await call(`${gw.url}/.auth/sessions`, { headers: asAlice })).json<{ sessions: { id: string; current: boolean }[] }>().sessions;
  const otherId = sessions.find((s) => !s.current)?.id as string;
  t.equal((await call(`${gw.url}/.auth/sessions/${otherId}`, { method: 'DELETE', headers: { ...asAlice, ...origin } })).status, 204);

  // The same three through the account page's forms.
  const page = await call(`${gw.url}/.auth/account`, { headers: asAlice });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] as string;
  const form = (path: string, fields: Record<string, string>) => call(`${gw.url}/.auth/account${path}`, { method: 'POST', headers: { ...asAlice, ...origin, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, ...fields }).toString() });
  const third = cookieValue(await jsonLogin(gw.url, 'alice', PASSWORDS.alice)) as string;
  secrets.push(third);
  t.equal((await form('/sessions/end-others', {})).status, 303);
  const shown = await form('/tokens', { name: 'from-page' });
  const pageToken = /id="new-token" type="text" readonly value="([^"]+)"/.exec(shown.body)?.[1] as string;
  secrets.push(pageToken);
  const pageTokenId = (await call(`${gw.url}/.auth/tokens`, { headers: asAlice })).json<{ tokens: { id: string }[] }>().tokens[0]?.id as string;
  t.equal((await form('/tokens/revoke', { id: pageTokenId })).status, 303);

  // jwt.family_revoked by /jwt/revoke, then by logout (with the session's logout event)
  const pair1 = (await call(`${gw.url}/.auth/jwt/token`, { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORDS.alice }) })).json<{ access: string; refresh: string }>();
  secrets.push(pair1.access, pair1.refresh);
  t.equal((await call(`${gw.url}/.auth/jwt/revoke`, { method: 'POST', headers: json, body: JSON.stringify({ refresh: pair1.refresh }) })).status, 200);
  const pair2 = (await call(`${gw.url}/.auth/jwt/token`, { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORDS.alice }) })).json<{ access: string; refresh: string }>();
  secrets.push(pair2.access, pair2.refresh);
  t.equal((await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { ...asAlice, ...origin } })).status, 204);
  t.equal((await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { ...asAlice, ...origin } })).status, 204, 'a replayed logout is no new event');

  // The CLI writes its token.created to the same destination.
  const byCli = await cli(['token', 'create', '--config', gw.configFile, '--user', 'alice', '--name', 'nightly']);
  t.equal(byCli.code, 0, byCli.stderr);
  secrets.push(byCli.stdout.trim());

  const raw = readFileSync(join(gw.dir, 'audit', 'audit.log'), 'utf8');
  const lines = raw.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
  const events = (name: string) => lines.filter((l) => l.event === name);
  t.ok(lines.every((l) => l.audit === true), 'every line is an audit line');

  t.equal(events('token.created').length, 3, 'one per created token: /tokens, the account page, the CLI');
  t.match(events('token.created')[0], { user: 'alice', id: token.id, ip: '127.0.0.1', route: '/.auth/tokens', method: 'session' });
  t.match(events('token.created')[1], { user: 'alice', id: pageTokenId, route: '/.auth/account/tokens' });
  t.match(events('token.created')[2], { user: 'alice', method: 'admin-cli' });
  t.equal(events('token.revoked').length, 2);
  t.match(events('token.revoked')[0], { user: 'alice', id: token.id, route: '/.auth/tokens/:id', reason: 'user_request' });
  t.match(events('token.revoked')[1], { user: 'alice', id: pageTokenId, route: '/.auth/account/tokens/revoke' });
  t.equal(events('session.revoked').length, 2, 'one per ended session: DELETE /sessions/:id, then "end all others" (one other left)');
  t.match(events('session.revoked')[0], { user: 'alice', id: otherId, ip: '127.0.0.1', route: '/.auth/sessions/:id', reason: 'user_request' });
  t.match(events('session.revoked')[1], { user: 'alice', route: '/.auth/account/sessions/end-others' });
  t.equal(events('logout').length, 1);
  t.match(events('logout')[0], { user: 'alice', ip: '127.0.0.1', route: '/.auth/logout' });
  const families = events('jwt.family_revoked');
  t.equal(families.length, 2, 'one per family: the revoked one, and the one logout ended');
  t.match(families[0], { user: 'alice', reason: 'user_request', route: '/.auth/jwt/revoke' });
  t.match(families[1], { user: 'alice', reason: 'logout', route: '/.auth/logout' });
  t.not(families[0]?.id, families[1]?.id);

  t.notOk(gw.logs.some((l) => l.audit === true), 'with a destination, the main log has no audit lines');
  for (const s of secrets) {
    t.notOk(raw.includes(s), 'no secret in the audit file');
    t.notOk(gw.rawLogs.some((l) => l.includes(s)), 'nor in the main log');
  }
});

t.test('without audit.destination the events go to the main log', async (t) => {
  const gw = await start(t);
  const cookie = cookieValue(await jsonLogin(gw.url, 'alice', PASSWORDS.alice)) as string;
  t.equal((await call(`${gw.url}/.auth/logout`, { method: 'POST', headers: { cookie: `authgate_session=${cookie}`, origin: gw.url } })).status, 204);
  const logouts = gw.logs.filter((l) => l.audit === true && l.event === 'logout');
  t.equal(logouts.length, 1);
  t.match(logouts[0], { level: 30, user: 'alice', msg: 'logout' });
  t.notOk(gw.rawLogs.some((l) => l.includes(cookie)));
});

t.test('the CLI without a destination: token.created on stderr, stdout only the token', async (t) => {
  const gw = await start(t);
  const made = await cli(['token', 'create', '--config', gw.configFile, '--user', 'alice', '--name', 'nightly']);
  t.equal(made.code, 0, made.stderr);
  const token = made.stdout.trim();
  t.match(token, /^agt_[0-9A-Za-z]{49}$/, 'stdout is the token alone');
  const lines = made.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  t.equal(lines.filter((l) => l.event === 'token.created').length, 1);
  t.match(lines[0], { audit: true, user: 'alice', method: 'admin-cli' });
  t.notOk(made.stderr.includes(token), 'the token is not in the audit line');
});

t.test('audit.destination is checked by the schema: an empty or unknown key is refused', async (t) => {
  const dir = makeTempDir(t);
  const write = (audit: unknown): string => {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify({ store: { driver: 'memory' }, routes: [], audit }));
    return file;
  };
  t.equal((await cli(['validate', '--config', write({ destination: 'stderr' })])).code, 0);
  const empty = await cli(['validate', '--config', write({ destination: '' })]);
  t.equal(empty.code, 1);
  t.match(empty.stdout + empty.stderr, /audit\.destination/);
  const unknown = await cli(['validate', '--config', write({ destination: 'stdout', level: 'debug' })]);
  t.equal(unknown.code, 1);
  t.match(unknown.stdout + unknown.stderr, /audit/);
});
