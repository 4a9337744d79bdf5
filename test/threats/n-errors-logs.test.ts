// THREATS N (96-97): error bodies leak nothing; no secret reaches a log line even at the most
// verbose level. One gateway carries every kind of credential the build supports.
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { generate } from 'otplib';
import t from 'tap';
import { hashPassword } from '../../src/credentials/passwords.js';
import { startTestEcho, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { basic, KEY_ADMIN, KEY_ALICE, PASSWORD, threatConfig } from './_fixtures.js';

const HMAC = fileURLToPath(new URL('../../plugins/hmac-signature.js', import.meta.url));
const rnd = (): string => randomBytes(18).toString('base64url');

const HOOK_SECRET = 'hook-' + rnd();
const AS_CLIENT_SECRET = 'as-client-' + rnd();
const OAUTH_CLIENT_SECRET = 'oauth-client-' + rnd();
const GOOD_OPAQUE = 'opaque-good-' + rnd();
const LEAK = 'db-primary.internal.corp:5432 password=hunter2 at Object.<anonymous> (/srv/as/app.js:12:3)';

/** A stub RFC 7662 server: one good token; anything else gets a 500 full of internals. */
async function startIntrospectionStub(t: Tap): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      bodies.push(body);
      const token = new URLSearchParams(body).get('token');
      if (token === GOOD_OPAQUE) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ active: true, username: 'alice', scope: 'orders:read', exp: Math.floor(Date.now() / 1000) + 300 }));
        return;
      }
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end(`<h1>Internal Server Error</h1><pre>${LEAK} token=${token ?? ''}</pre>`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`, bodies };
}

type Tap = { teardown(fn: () => unknown): void };

async function startSecretGateway(t: Tap, logLevel: string): Promise<{ gw: TestGateway; echo: Awaited<ReturnType<typeof startTestEcho>> }> {
  const echo = await startTestEcho(t);
  const as = await startIntrospectionStub(t);
  const config = threatConfig(echo.url, {
    authenticators: {
      tok: { type: 'token' },
      selfjwt: { type: 'jwt', issuer: 'self' },
      as: { type: 'introspection', endpoint: as.url, clientId: 'gw', clientSecret: AS_CLIENT_SECRET, timeout: '2s' },
      web: { type: 'session' },
      hook: { type: 'plugin', module: HMAC, options: { secret: HOOK_SECRET } },
    },
    routes: [
      { name: 'bearer', match: { path: '/bearer/**' }, upstream: echo.url, auth: ['selfjwt', 'tok', 'as'] },
      { name: 'web', match: { path: '/web/**' }, upstream: echo.url, auth: ['web'] },
      { name: 'hooks', match: { path: '/hooks/**' }, upstream: echo.url, auth: ['hook'] },
      { name: 'down', match: { path: '/down/**' }, upstream: 'http://127.0.0.1:9', auth: ['keys', 'staff'] },
    ],
  });
  config.oauth = { clients: [{ id: 'billing', secretHash: await hashPassword(OAUTH_CLIENT_SECRET), scopes: ['invoices:read'] }] };
  const users = `users:\n  alice: { email: alice@example.test, password: "${await hashPassword(PASSWORD)}", groups: [staff] }\n`;
  const gw = await startTestGateway(t, config, { files: { 'users.yaml': users }, logLevel });
  return { gw, echo };
}

const INTERNALS = [/stack/i, /at [A-Za-z.<>]+ \(/, /\.(js|ts):\d+/, /ECONN/, /ENOTFOUND/, /internal\.corp/, /hunter2/, /127\.0\.0\.1:9\b/, /process\.env|AUTHGATE_|HOOK_SECRET/, /<h1>|<pre>/i];

t.test('96 error bodies say what failed, never how: no internals, no echoed credentials', async (t) => {
  const { gw, echo } = await startSecretGateway(t, 'info');
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const badJwt = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.' + rnd();
  const opaque = 'opaque-bad-' + rnd();
  const triggers: [string, () => Promise<{ status: number; body: string }>, string[]][] = [
    ['malformed JWT', () => send(gw.url, '/bearer/x', { headers: { authorization: `Bearer ${badJwt}` } }), [badJwt]],
    ['JWT with a bad signature', () => send(gw.url, '/bearer/x', { headers: { authorization: 'Bearer eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.' + rnd() } }), []],
    ['introspection 500', () => send(gw.url, '/bearer/x', { headers: { authorization: `Bearer ${opaque}` } }), [opaque]],
    ['bad API key', () => send(gw.url, '/api/x', { headers: { 'x-api-key': KEY_ALICE + 'x' } }), [KEY_ALICE]],
    ['wrong Basic password', () => send(gw.url, '/basic/x', { headers: { authorization: basic('alice', PASSWORD + '!') } }), [PASSWORD]],
    ['upstream down', () => send(gw.url, '/down/x', { headers: { 'x-api-key': KEY_ALICE } }), [KEY_ALICE]],
    ['bad client_secret', () => send(gw.url, '/.auth/oauth/token', { method: 'POST', headers: { ...form, authorization: basic('billing', 'wrong-' + OAUTH_CLIENT_SECRET) }, body: 'grant_type=client_credentials' }), [OAUTH_CLIENT_SECRET]],
    ['unknown grant type', () => send(gw.url, '/.auth/oauth/token', { method: 'POST', headers: { ...form, authorization: basic('billing', OAUTH_CLIENT_SECRET) }, body: 'grant_type=password&username=alice&password=' + encodeURIComponent(PASSWORD) }), [PASSWORD, OAUTH_CLIENT_SECRET]],
    ['unsupported token_type_hint', () => send(gw.url, '/.auth/oauth/revoke', { method: 'POST', headers: { ...form, authorization: basic('billing', OAUTH_CLIENT_SECRET) }, body: `token=${opaque}&token_type_hint=weird_hint` }), [opaque, OAUTH_CLIENT_SECRET]],
    ['jwt verify of garbage', () => send(gw.url, '/.auth/jwt/verify', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: badJwt }) }), [badJwt]],
    ['bad JSON to the login API', () => send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"username":"alice","password":"${PASSWORD}"` }), [PASSWORD]],
    ['stale hook signature', () => send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-signature-timestamp': '1', 'x-hub-signature-256': 'sha256=' + createHmac('sha256', HOOK_SECRET).update('1.x').digest('hex') }, body: 'x' }), [HOOK_SECRET]],
    ['forged session cookie', () => send(gw.url, '/web/x', { headers: { cookie: 'authgate_session=' + rnd() + '.' + rnd() } }), []],
    ['bad path', () => send(gw.url, '/api/%2e%2e/%00'), []],
  ];
  for (const [what, run, secrets] of triggers) {
    const r = await run();
    // RFC 7009 2.2: revocation answers 200 whatever the token (an unknown hint is ignored).
    if (what === 'unsupported token_type_hint') t.ok(r.status === 200 || r.status === 400, `${what}: ${r.status}`);
    else t.ok(r.status >= 400 && r.status !== 500, `${what}: ${r.status}`);
    let parsed: Record<string, unknown> | undefined;
    try { parsed = r.body === '' ? {} : (JSON.parse(r.body) as Record<string, unknown>); } catch { parsed = undefined; }
    t.ok(parsed, `${what}: a JSON body (or none)`);
    const keys = Object.keys(parsed ?? {}).sort();
    t.ok(keys.every((k) => ['code', 'detail', 'status', 'title', 'type', 'error', 'error_description'].includes(k)), `${what}: only the problem/OAuth fields (${keys.join(',')})`);
    for (const re of INTERNALS) t.notMatch(r.body, re, `${what}: nothing like ${re}`);
    for (const s of secrets) t.notOk(r.body.includes(s), `${what}: the presented credential is not echoed`);
  }
  t.equal(echo.received.length, 0, 'NF');
});

t.test('97 no secret in any log line, at trace level, across every credential kind and failure', async (t) => {
  const { gw, echo } = await startSecretGateway(t, 'trace');
  const json = { 'content-type': 'application/json' };
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const creds = JSON.stringify({ username: 'alice', password: PASSWORD });
  const secrets: Record<string, string> = {
    password: PASSWORD,
    basic: basic('alice', PASSWORD).slice(6),
    'api key': KEY_ALICE,
    'admin api key': KEY_ADMIN,
    'hook secret': HOOK_SECRET,
    'AS client secret': AS_CLIENT_SECRET,
    'oauth client secret': OAUTH_CLIENT_SECRET,
    'opaque token': GOOD_OPAQUE,
  };
  const ok = (what: string, r: { status: number; body: string }, status = 200) => t.equal(r.status, status, `${what}: ${r.body.slice(0, 200)}`);

  ok('basic', await send(gw.url, '/basic/x', { headers: { authorization: basic('alice', PASSWORD) } }));
  ok('basic wrong', await send(gw.url, '/basic/x', { headers: { authorization: basic('alice', PASSWORD + 'x') } }), 401);
  ok('api key', await send(gw.url, '/api/x', { headers: { 'x-api-key': KEY_ALICE } }));
  ok('api key wrong', await send(gw.url, '/admin/x', { headers: { 'x-api-key': KEY_ADMIN + 'x' } }), 401);
  ok('opaque token', await send(gw.url, '/bearer/x', { headers: { authorization: `Bearer ${GOOD_OPAQUE}` } }));
  const failing = 'opaque-failing-' + rnd();
  secrets['failing opaque token'] = failing;
  ok('opaque token, AS error', await send(gw.url, '/bearer/x', { headers: { authorization: `Bearer ${failing}` } }), 503);

  const jwt = await send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: json, body: creds });
  ok('jwt issue', jwt);
  const pair = jwt.json<{ access: string; refresh: string }>();
  secrets['access token'] = pair.access;
  secrets['refresh token'] = pair.refresh;
  ok('jwt use', await send(gw.url, '/bearer/x', { headers: { authorization: `Bearer ${pair.access}` } }));
  const refreshed = await send(gw.url, '/.auth/jwt/refresh', { method: 'POST', headers: json, body: JSON.stringify({ refresh: pair.refresh }) });
  ok('jwt refresh', refreshed);
  secrets['refreshed access'] = refreshed.json<{ access: string }>().access;
  ok('refresh reuse', await send(gw.url, '/.auth/jwt/refresh', { method: 'POST', headers: json, body: JSON.stringify({ refresh: pair.refresh + 'x' }) }), 401);

  const tok = await send(gw.url, '/.auth/token', { method: 'POST', headers: json, body: creds });
  ok('api token issue', tok);
  secrets['api token'] = tok.json<{ token: string }>().token;
  ok('api token use', await send(gw.url, '/bearer/x', { headers: { authorization: `Token ${secrets['api token']}` } }));

  const cc = await send(gw.url, '/.auth/oauth/token', { method: 'POST', headers: { ...form, authorization: basic('billing', OAUTH_CLIENT_SECRET) }, body: 'grant_type=client_credentials' });
  ok('client credentials', cc);
  secrets['client credentials token'] = cc.json<{ access_token: string }>().access_token;
  ok('client secret in the form', await send(gw.url, '/.auth/oauth/token', { method: 'POST', headers: form, body: `grant_type=client_credentials&client_id=billing&client_secret=${OAUTH_CLIENT_SECRET}x` }), 401);

  const login = await send(gw.url, '/.auth/login', { method: 'POST', headers: json, body: creds });
  if (login.status === 200) {
    const cookie = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';
    secrets['session cookie'] = cookie.slice(cookie.indexOf('=') + 1);
    ok('session use', await send(gw.url, '/web/x', { headers: { cookie } }));
  } else t.comment(`session: /.auth/login answered ${login.status}; session cookies not covered here`);

  const ts = Math.floor(Date.now() / 1000);
  ok('hook', await send(gw.url, '/hooks/x', { method: 'POST', headers: { 'content-type': 'text/plain', 'x-signature-timestamp': String(ts), 'x-hub-signature-256': 'sha256=' + createHmac('sha256', HOOK_SECRET).update(`${ts}.body`).digest('hex') }, body: 'body' }));

  // MFA (issue 11): the TOTP secret, the enrolment and login codes, recovery codes.
  const codes: string[] = [];
  if (secrets['session cookie'] !== undefined) {
    const withCookie = { ...json, cookie: `authgate_session=${secrets['session cookie']}` };
    const enrol = await send(gw.url, '/.auth/mfa/totp/enroll', { method: 'POST', headers: withCookie, body: '{}' });
    ok('mfa enroll', enrol);
    const totpSecret = enrol.json<{ secret: string }>().secret;
    secrets['TOTP secret'] = totpSecret;
    const confirmCode = await generate({ secret: totpSecret });
    const confirmed = await send(gw.url, '/.auth/mfa/totp/confirm', { method: 'POST', headers: withCookie, body: JSON.stringify({ code: confirmCode }) });
    ok('mfa confirm', confirmed);
    const recovery = confirmed.json<{ recoveryCodes: string[] }>().recoveryCodes;
    const nextCode = await generate({ secret: totpSecret, epoch: Math.floor(Date.now() / 1000) + 30 });
    ok('jwt with a wrong otp', await send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORD, otp: '000000' }) }), 401);
    ok('jwt with otp', await send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORD, otp: nextCode }) }));
    ok('jwt with a recovery code', await send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORD, otp: recovery[0] }) }));
    ok('jwt with a spent recovery code', await send(gw.url, '/.auth/jwt/token', { method: 'POST', headers: json, body: JSON.stringify({ username: 'alice', password: PASSWORD, otp: recovery[0] }) }), 401);
    codes.push(confirmCode, nextCode, ...recovery);
  }

  const queryToken = 'qtoken-' + rnd();
  const queryKey = 'qkey-' + rnd();
  secrets['?access_token='] = queryToken;
  secrets['?api_key='] = queryKey;
  ok('query credentials on a public route', await send(gw.url, `/public/x?access_token=${queryToken}&api_key=${queryKey}`));
  ok('query credentials on a refused route', await send(gw.url, `/api/x?access_token=${queryToken}&api_key=${queryKey}`), 401);
  ok('upstream down with a key', await send(gw.url, `/down/x?access_token=${queryToken}`, { headers: { 'x-api-key': KEY_ALICE } }), 502);
  ok('upstream down with Basic', await send(gw.url, '/down/x', { headers: { authorization: basic('alice', PASSWORD) } }), 502);
  ok('Basic next to a query token', await send(gw.url, `/api/x?access_token=${queryToken}`, { headers: { authorization: basic('alice', PASSWORD) } }), 400);
  ok('bad path with a token', await send(gw.url, `/api/%2e%2e/x?access_token=${queryToken}`, { headers: { authorization: `Bearer ${pair.access}` } }), 400);
  t.ok(echo.received.length >= 6, 'the allowed requests were forwarded');

  t.ok(gw.rawLogs.length > 20, `${gw.rawLogs.length} log lines captured`);
  const all = gw.rawLogs.join('\n');
  t.ok(gw.logs.some((l) => l.msg === 'request' && l.route === 'hooks' && l.status === 200), 'request lines are there to search');
  t.notOk(all.includes('hunter2') || all.includes('internal.corp'), 'the AS error body is not logged');
  for (const code of codes) {
    // Short codes: searched as a logged value would appear, quoted or after '='.
    t.notOk(all.includes(`"${code}"`) || all.includes(`=${code}`) || (code.includes('-') && all.includes(code)), 'no one-time or recovery code in the logs');
  }
  for (const [what, secret] of Object.entries(secrets)) {
    t.ok(secret.length >= 16, `${what} fixture is long enough to search for`);
    t.notOk(all.includes(secret), `${what}: not in the logs`);
    // Not even a prefix or a piece: any 12 characters from the random part.
    const tail = secret.slice(-24);
    for (let i = 0; i + 12 <= tail.length; i += 6) t.notOk(all.includes(tail.slice(i, i + 12)), `${what}: no fragment at ${i}`);
  }
});
