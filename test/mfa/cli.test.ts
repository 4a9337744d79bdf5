// `authgate mfa reset --user NAME` (issue 11): removes a user's factors in the configured store
// (lost phone), ends their sessions, and writes an `mfa.removed` audit line.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { main, type CliIO } from '../../src/cli.js';
import { waitFor } from '../helpers/gateway.js';
import { SoftAuthenticator } from '../helpers/webauthn.js';
import { call, enrolTotp, freePort, json, login, passwordSession, startMfaGateway } from './_mfa.js';

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const stdin = new PassThrough();
  stdin.end();
  const io: CliIO = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stdin, env: { ...process.env, AUTHGATE_CONFIG: '' } };
  return { code: await main(args, io), stdout, stderr };
}

t.test('mfa reset removes TOTP, recovery codes and passkeys, ends sessions, and is audited', async (t) => {
  const port = await freePort();
  const { gw } = await startMfaGateway(t, { store: { driver: 'sqlite', sqlite: { path: './data/gw.db' } }, server: { listen: { host: '127.0.0.1', port }, publicUrl: `http://localhost:${port}` } });
  const { cookie } = await enrolTotp(gw.url, await passwordSession(gw.url, 'bob'));
  const auth = new SoftAuthenticator({ origin: `http://localhost:${port}`, rpId: 'localhost' });
  const options = (await call(`${gw.url}/.auth/mfa/webauthn/register/options`, json(cookie, {}))).json<{ challenge: string; user: { id: string } }>();
  t.equal((await call(`${gw.url}/.auth/mfa/webauthn/register/verify`, json(cookie, { response: auth.register(options) }))).status, 201);
  t.same((await login(gw.url, 'bob')).json(), { mfaRequired: true, methods: ['totp', 'webauthn', 'recovery'] });

  const usage = await run(['mfa', 'reset', '--config', gw.configFile]);
  t.equal(usage.code, 2, 'a missing --user is a usage error');

  const r = await run(['mfa', 'reset', '--config', gw.configFile, '--user', 'bob']);
  t.equal(r.code, 0, r.stderr);
  // Two sessions: the signed-in one and the pending one the login above left.
  t.equal(r.stdout, 'removed for bob: totp yes, 1 WebAuthn credential(s), 10 recovery code(s); 2 session(s) ended\n');
  const auditLine = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.audit === true);
  t.match(auditLine, { audit: true, event: 'mfa.removed', user: 'bob', method: 'admin-cli', reason: 'reset' });

  const after = await login(gw.url, 'bob');
  t.equal(after.status, 200);
  t.match(after.json(), { user: { user: 'bob', mfa: false } }, 'the password alone signs in again (to enrol anew)');
  t.ok(await waitFor(async () => (await call(`${gw.url}/.auth/me`, { headers: { cookie: `authgate_session=${cookie}` } })).status === 401, 10_000), 'the session that passed the old factors ended');
});
