// The account page (SPEC 6 `GET /account`) through a running gateway: session only; every form
// post needs the same origin AND the session's form token, and an attack that lacks either
// changes nothing (no token created, no session ended, the upstream unaffected); what the page
// ends or revokes stops working at once; user-supplied text is escaped.
import { createHash } from 'node:crypto';
import t from 'tap';
import { renderMfaSection } from '../../src/endpoints/account-page.js';
import { startTestEcho, startTestGateway } from '../helpers/gateway.js';
import { call, cookieValue, jsonLogin, PASSWORDS, signIn, usersFile, type Answer } from './_browser.js';

async function setup(t: Parameters<typeof startTestGateway>[0]) {
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    users: { file: './users.yaml' },
    authenticators: { web: { type: 'session' }, 'api-token': { type: 'token' } },
    tokens: { grantableScopes: { staff: ['orders:read', 'orders:write'] } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'api-token'] }],
  }, { files: { 'users.yaml': await usersFile() } });
  return { gw, echo };
}

const jar = (cookie: string) => ({ cookie: `authgate_session=${cookie}` });
const formToken = (page: Answer): string => /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] as string;

function post(base: string, path: string, cookie: string, fields: Record<string, string>, headers: Record<string, string> = { origin: base }): Promise<Answer> {
  return call(`${base}/.auth${path}`, { method: 'POST', headers: { ...jar(cookie), 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(fields).toString() });
}

async function tokenCount(base: string, cookie: string): Promise<number> {
  return (await call(`${base}/.auth/tokens`, { headers: jar(cookie) })).json<{ tokens: unknown[] }>().tokens.length;
}

t.test('only a browser session opens the page; its CSP allows exactly its own style and script', async (t) => {
  const { gw } = await setup(t);
  const anon = await call(`${gw.url}/.auth/account`);
  t.equal(anon.status, 302);
  t.equal(anon.headers.location, '/.auth/login?rd=%2F.auth%2Faccount');
  const cookie = await signIn(gw.url);
  const made = await call(`${gw.url}/.auth/tokens`, { method: 'POST', headers: { ...jar(cookie), origin: gw.url, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ci' }) });
  const token = made.json<{ token: string }>().token;
  const byToken = await call(`${gw.url}/.auth/account`, { headers: { authorization: `Token ${token}` } });
  t.equal(byToken.status, 302, 'an API token does not open the account page');
  t.notOk(byToken.body.includes('Your account'));

  const page = await call(`${gw.url}/.auth/account`, { headers: { ...jar(cookie), 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0' } });
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], /text\/html/);
  t.equal(page.headers['cache-control'], 'no-store');
  t.equal(page.headers['x-frame-options'], 'DENY');
  const csp = page.headers['content-security-policy'] as string;
  const style = /<style>([\s\S]*?)<\/style>/.exec(page.body)?.[1] as string;
  const script = /<script>([\s\S]*?)<\/script>/.exec(page.body)?.[1] as string;
  const hash = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;
  t.ok(csp.includes(`style-src ${hash(style)}`), 'style hash');
  t.ok(csp.includes(`script-src ${hash(script)}`), 'script hash');
  t.match(csp, /default-src 'none'/);
  t.match(page.body, /Signed in as <strong>alice<\/strong>/);
  t.match(page.body, /This session/);
  t.match(page.body, />ci</, 'the token is listed by name');
  t.notOk(page.body.includes(token), 'never its secret');
  t.notOk(page.body.includes(cookie), 'nor the cookie');
});

t.test('create a token on the page: shown once, works; revoke it: it stops at once', async (t) => {
  const { gw, echo } = await setup(t);
  const cookie = await signIn(gw.url);
  const csrf = formToken(await call(`${gw.url}/.auth/account`, { headers: jar(cookie) }));
  const created = await post(gw.url, '/account/tokens', cookie, { _csrf: csrf, name: 'deploys', ttl: '7d', scopes: 'orders:read orders:write' });
  t.equal(created.status, 200);
  const secret = /id="new-token" type="text" readonly value="([^"]+)"/.exec(created.body)?.[1] as string;
  t.match(secret, /^agt_/);
  t.equal(created.body.split(secret).length - 1, 1, 'the secret appears exactly once');
  t.match(created.body, /data-copy="new-token" hidden>Copy</, 'the copy button exists only for script to reveal');
  const used = await call(`${gw.url}/app/x`, { headers: { authorization: `Token ${secret}` } });
  t.equal(used.status, 200);
  t.equal(JSON.parse(used.body).headers['x-auth-scopes'], 'orders:read orders:write');
  const again = await call(`${gw.url}/.auth/account`, { headers: jar(cookie) });
  t.notOk(again.body.includes(secret), 'never shown again');

  const id = (await call(`${gw.url}/.auth/tokens`, { headers: jar(cookie) })).json<{ tokens: { id: string }[] }>().tokens[0]?.id as string;
  const revoked = await post(gw.url, '/account/tokens/revoke', cookie, { _csrf: csrf, id });
  t.equal(revoked.status, 303);
  t.equal(revoked.headers.location, '/.auth/account?done=token-revoked');
  const seen = echo.received.length;
  t.equal((await call(`${gw.url}/app/x`, { headers: { authorization: `Token ${secret}` } })).status, 401);
  t.equal(echo.received.length, seen, 'the upstream never saw the revoked token');
  t.match((await call(`${gw.url}/.auth/account?done=token-revoked`, { headers: jar(cookie) })).body, /role="status"><p>The token was revoked/);

  const bad = await post(gw.url, '/account/tokens', cookie, { _csrf: csrf, name: '', ttl: '7d', scopes: 'a b' });
  t.equal(bad.status, 400);
  t.match(bad.body, /role="alert" id="token-error"/);
  t.match(bad.body, /aria-invalid="true"/);
  t.equal(await tokenCount(gw.url, cookie), 0);
});

t.test('the page grants no scope the user\'s groups may not grant (tokens.grantableScopes)', async (t) => {
  const { gw } = await setup(t);
  const cookie = await signIn(gw.url);
  const csrf = formToken(await call(`${gw.url}/.auth/account`, { headers: jar(cookie) }));
  const refused = await post(gw.url, '/account/tokens', cookie, { _csrf: csrf, name: 'wide', ttl: '7d', scopes: 'orders:read admin:all' });
  t.equal(refused.status, 403);
  t.notMatch(refused.body, /agt_/, 'no secret shown');
  t.equal(await tokenCount(gw.url, cookie), 0, 'no token was created');
});

t.test('CSRF: without the form token, with another session\'s, cross-site or without origin: nothing happens', async (t) => {
  const { gw } = await setup(t);
  const cookie = await signIn(gw.url);
  const victimPhone = await signIn(gw.url);
  const csrf = formToken(await call(`${gw.url}/.auth/account`, { headers: jar(cookie) }));
  const otherSessionCsrf = formToken(await call(`${gw.url}/.auth/account`, { headers: jar(victimPhone) }));
  const mallory = await signIn(gw.url, 'mallory');
  const mallorysCsrf = formToken(await call(`${gw.url}/.auth/account`, { headers: jar(mallory) }));
  t.not(csrf, otherSessionCsrf, 'one token per session');

  const attacks: [string, Record<string, string>, Record<string, string>][] = [
    ['no form token', { name: 'x' }, { origin: gw.url }],
    ['a forged form token', { name: 'x', _csrf: 'A'.repeat(43) }, { origin: gw.url }],
    ['another session\'s form token', { name: 'x', _csrf: otherSessionCsrf }, { origin: gw.url }],
    ['another user\'s form token', { name: 'x', _csrf: mallorysCsrf }, { origin: gw.url }],
    ['cross-site origin', { name: 'x', _csrf: csrf }, { origin: 'https://evil.test' }],
    ['Sec-Fetch-Site: cross-site', { name: 'x', _csrf: csrf }, { origin: gw.url, 'sec-fetch-site': 'cross-site' }],
    ['no Origin or Referer', { name: 'x', _csrf: csrf }, {}],
  ];
  for (const [what, fields, headers] of attacks) {
    const r = await post(gw.url, '/account/tokens', cookie, fields, headers);
    t.equal(r.status, 403, what);
    t.match(r.json(), { code: 'csrf' }, what);
  }
  const asJson = await call(`${gw.url}/.auth/account/tokens`, { method: 'POST', headers: { ...jar(cookie), origin: gw.url, 'content-type': 'text/plain' }, body: `name=x&_csrf=${csrf}` });
  t.equal(asJson.status, 415, 'text/plain is no form');
  t.equal(await tokenCount(gw.url, cookie), 0, 'no token was created');

  const sessionsBefore = (await call(`${gw.url}/.auth/sessions`, { headers: jar(cookie) })).json<{ sessions: unknown[] }>().sessions.length;
  const endOthers = await post(gw.url, '/account/sessions/end-others', cookie, { _csrf: otherSessionCsrf });
  t.equal(endOthers.status, 403);
  t.equal((await call(`${gw.url}/.auth/sessions`, { headers: jar(cookie) })).json<{ sessions: unknown[] }>().sessions.length, sessionsBefore, 'no session ended');
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(victimPhone) })).status, 200);
});

t.test('end one session, then all others: they stop at once; a foreign id ends nothing', async (t) => {
  const { gw, echo } = await setup(t);
  const login = await jsonLogin(gw.url, 'alice', PASSWORDS.alice, { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36' });
  const cookie = cookieValue(login) as string;
  const tablet = cookieValue(await jsonLogin(gw.url, 'alice', PASSWORDS.alice, { 'user-agent': '<script>alert(1)</script> (iPad)' })) as string;
  const laptop = await signIn(gw.url);
  const mallory = await signIn(gw.url, 'mallory');
  const page = await call(`${gw.url}/.auth/account`, { headers: jar(cookie) });
  t.notOk(page.body.includes('<script>alert(1)'), 'a User-Agent is escaped');
  t.match(page.body, /Chrome on Linux<span class="badge">This session/);
  const csrf = formToken(page);
  const sessions = (await call(`${gw.url}/.auth/sessions`, { headers: jar(cookie) })).json<{ sessions: { id: string; userAgent: string | null }[] }>().sessions;
  const tabletId = sessions.find((s) => s.userAgent?.includes('iPad'))?.id as string;
  const mallorysId = (await call(`${gw.url}/.auth/sessions`, { headers: jar(mallory) })).json<{ sessions: { id: string }[] }>().sessions[0]?.id as string;

  t.equal((await post(gw.url, '/account/sessions/end', cookie, { _csrf: csrf, id: mallorysId })).status, 404, 'another user\'s session');
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(mallory) })).status, 200, 'is untouched');

  const ended = await post(gw.url, '/account/sessions/end', cookie, { _csrf: csrf, id: tabletId });
  t.equal(ended.status, 303);
  t.equal(ended.headers.location, '/.auth/account?done=session-ended');
  const seen = echo.received.length;
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(tablet) })).status, 401);
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(laptop) })).status, 200);

  const others = await post(gw.url, '/account/sessions/end-others', cookie, { _csrf: csrf });
  t.equal(others.status, 303);
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(laptop) })).status, 401);
  t.equal(echo.received.length, seen + 1, 'only the laptop\'s request before its end reached the upstream');
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(cookie) })).status, 200, 'this session goes on');
  t.equal((await call(`${gw.url}/app/x`, { headers: jar(mallory) })).status, 200, 'other users are untouched');
  const after = await call(`${gw.url}/.auth/account?done=others-ended`, { headers: jar(cookie) });
  t.notOk(after.body.includes('End all other sessions'), 'nothing left to end');
  t.match(after.body, /All your other sessions were ended/);
});

t.test('the MFA section renders only when factors exist, with working forms', async (t) => {
  t.equal(renderMfaSection([], 'tok'), '', 'no factors, no section');
  const html = renderMfaSection([
    { kind: 'webauthn', label: 'YubiKey <5>', detail: 'Added 1 Dec 2026', actions: [{ label: 'Remove', action: '/.auth/mfa/webauthn/credentials/abc/delete', danger: true }] },
    { kind: 'recovery', label: 'Recovery codes', detail: '7 of 10 left', actions: [{ label: 'Regenerate', action: '/.auth/mfa/recovery/regenerate', fields: { confirm: 'yes' } }] },
  ], 'form-token');
  t.match(html, /YubiKey &lt;5&gt;/);
  t.match(html, /<form method="post" action="\/\.auth\/mfa\/webauthn\/credentials\/abc\/delete"><input type="hidden" name="_csrf" value="form-token">/);
  t.match(html, /name="confirm" value="yes"/);
  t.match(html, /class="btn danger small">Remove</);
});
