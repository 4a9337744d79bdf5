// Redis Sentinel through running gateways (SPEC 8: store.redis.sentinels + name). This test
// starts its own primary, replica and three sentinels on free ports, signs in and issues tokens,
// kills the primary, and checks: a write during the switch fails closed (503 store_unavailable),
// writes succeed again on the promoted replica without a restart, and sessions, tokens and
// revocations made before the failover still hold, also on an instance started afterwards.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { makeTempDir, startTestEcho, startTestGateway, waitFor } from '../helpers/gateway.js';
import { redisCommand, startSentinelGroup } from '../helpers/redis.js';
import { call, cookieValue, jsonLogin, me, PASSWORDS, usersFile } from '../sessions/_browser.js';

const json = { 'content-type': 'application/json' };

t.test('sentinel failover: fail closed during the switch, then sessions, tokens and revocations carry on', async (t) => {
  const dir = makeTempDir(t, 'authgate-sentinel-');
  const group = await startSentinelGroup(t, dir);
  const echo = await startTestEcho(t);
  const config = {
    users: { file: './users.yaml' },
    store: { driver: 'redis', redis: { sentinels: group.sentinels.map((s) => `127.0.0.1:${s.port}`), name: group.name, keyPrefix: `test:${randomUUID()}:` } },
    authenticators: { web: { type: 'session' }, 'api-token': { type: 'token' } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'api-token'] }],
  };
  const files = { 'users.yaml': await usersFile() };
  const a = await startTestGateway(t, config, { files, logLevel: 'warn' });
  const asCookie = (c: string) => ({ cookie: `authgate_session=${c}` });
  const asToken = (tok: string) => ({ authorization: `Token ${tok}` });
  const login = () => jsonLogin(a.url, 'alice', PASSWORDS.alice);
  const newToken = async (): Promise<string> => {
    const r = await call(`${a.url}/.auth/token`, { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORDS.alice }) });
    if (r.status !== 200) throw new Error(`token: ${r.status} ${r.body}`);
    return r.json<{ token: string }>().token;
  };

  // Before: a session, a token, a logged-out session and a revoked token.
  const session = cookieValue(await login())!;
  const ended = cookieValue(await login())!;
  t.equal((await call(`${a.url}/.auth/logout`, { method: 'POST', headers: asCookie(ended) })).status, 204);
  const token = await newToken();
  const made = await call(`${a.url}/.auth/tokens`, { method: 'POST', headers: { ...json, ...asCookie(session), origin: a.url }, body: JSON.stringify({ name: 'to-revoke' }) });
  t.equal(made.status, 201, 'a token made through the session');
  const { id: revokedId, token: revoked } = made.json<{ id: string; token: string }>();
  const del = await call(`${a.url}/.auth/tokens/${revokedId}`, { method: 'DELETE', headers: { ...asCookie(session), origin: a.url } });
  t.equal(del.status, 204, 'token revoked');
  t.equal((await call(`${a.url}/app/x`, { headers: asToken(revoked) })).status, 401, 'the revoked token is refused before the failover');
  t.equal((await call(`${a.url}/app/x`, { headers: asToken(token) })).status, 200);
  // Everything written so far is on the replica before the primary dies.
  t.equal(Number(await redisCommand(group.primary.port, 'WAIT', 1, 5000)), 1, 'replicated');

  await group.primary.kill();
  const killedAt = Date.now();
  // During the switch, a write fails closed and quickly; nothing hangs.
  let during = await login();
  t.equal(during.status, 503, 'a login during the switch fails closed');
  t.match(during.json(), { code: 'store_unavailable' });
  t.notOk(cookieValue(during), 'and sets no session');
  // The sentinels promote the replica; the same gateway carries on, no restart.
  t.ok(
    await waitFor(async () => {
      during = await login();
      return during.status === 200;
    }, 30_000, 100),
    'logins succeed again after the failover',
  );
  t.equal(await group.primaryPort(), group.replica.port, 'the sentinels report the replica as the primary');
  t.comment(`failover to writable in ${Date.now() - killedAt} ms`);

  // A second instance started after the failover reads everything from the new primary.
  const b = await startTestGateway(t, config, { files, logLevel: 'warn' });
  for (const gw of [a, b]) {
    t.equal((await me(gw.url, session)).json().user, 'alice', 'the session from before the failover is still valid');
    t.equal((await me(gw.url, ended)).status, 401, 'the logged-out session stays ended');
    t.equal((await call(`${gw.url}/app/x`, { headers: asToken(token) })).status, 200, 'the token from before works');
    t.equal((await call(`${gw.url}/app/x`, { headers: asToken(revoked) })).status, 401, 'the revoked token stays revoked');
  }
  // New writes and a revocation after the failover reach the other instance.
  const fresh = cookieValue(during)!;
  t.equal((await me(b.url, fresh)).json().user, 'alice', 'a session made after the failover is seen by the other instance');
  t.equal((await call(`${b.url}/.auth/logout`, { method: 'POST', headers: asCookie(fresh) })).status, 204);
  t.ok(await waitFor(async () => (await me(a.url, fresh)).status === 401, 1000, 10), 'a logout on B is honoured by A within 1 s');
  const later = await newToken();
  t.equal((await call(`${b.url}/app/x`, { headers: asToken(later) })).status, 200, 'a token issued after the failover works everywhere');
});
