// Provider kind `github` against a GitHub-shaped stub (authorize, token with PKCE, /user,
// /user/emails, /user/orgs and /user/teams with Link pagination, org memberships).
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { startTestEcho, startTestGateway, type Teardown } from '../helpers/gateway.js';
import { browse, CookieJar } from '../helpers/oidc.js';

interface GhUser {
  login: string;
  id: number;
  emails: { email: string; primary: boolean; verified: boolean }[];
  orgs: string[];
  teams: [string, string][];
  /** Orgs whose membership lookup answers 403 (OAuth app access restrictions). */
  restricted?: string[];
}

async function githubStub(t: Teardown) {
  const codes = new Map<string, { challenge: string; redirect: string; user: GhUser }>();
  const tokens = new Map<string, GhUser>();
  const state = { next: undefined as GhUser | undefined, tokenCalls: 0 };
  const page = <T>(req: IncomingMessage, res: ServerResponse, items: T[], base: string) => {
    const u = new URL(req.url ?? '/', base);
    const p = Number(u.searchParams.get('page') ?? '1');
    const size = 2; // small pages, so every list needs the Link header
    const slice = items.slice((p - 1) * size, p * size);
    if (p * size < items.length) {
      u.searchParams.set('page', String(p + 1));
      res.setHeader('link', `<${u.toString()}>; rel="next", <${u.toString()}>; rel="last"`);
    }
    json(res, 200, slice);
  };
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = createServer(async (req, res) => {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const u = new URL(req.url ?? '/', base);
    if (u.pathname === '/login/oauth/authorize') {
      const user = state.next as GhUser;
      const code = randomBytes(10).toString('hex');
      codes.set(code, { challenge: u.searchParams.get('code_challenge') ?? '', redirect: u.searchParams.get('redirect_uri') ?? '', user });
      const back = new URL(u.searchParams.get('redirect_uri') ?? '');
      back.searchParams.set('code', code);
      back.searchParams.set('state', u.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    if (u.pathname === '/login/oauth/access_token' && req.method === 'POST') {
      state.tokenCalls++;
      let body = '';
      for await (const c of req) body += String(c);
      const f = new URLSearchParams(body);
      const entry = codes.get(f.get('code') ?? '');
      codes.delete(f.get('code') ?? '');
      const verifierOk = entry !== undefined && createHash('sha256').update(f.get('code_verifier') ?? '').digest('base64url') === entry.challenge;
      if (f.get('client_id') !== 'gh-client' || f.get('client_secret') !== 'gh-secret' || !entry || !verifierOk || f.get('redirect_uri') !== entry.redirect) {
        json(res, 200, { error: 'bad_verification_code' }); // GitHub answers 200 with an error member
        return;
      }
      const token = `gho_${randomBytes(8).toString('hex')}`;
      tokens.set(token, entry.user);
      json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:org,user:email' });
      return;
    }
    const user = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (!user) return json(res, 401, { message: 'Bad credentials' });
    if (u.pathname === '/api/user') return json(res, 200, { login: user.login, id: user.id });
    if (u.pathname === '/api/user/emails') return json(res, 200, user.emails);
    if (u.pathname === '/api/user/orgs') return page(req, res, user.orgs.filter((o) => !(user.restricted ?? []).includes(o)).map((login) => ({ login })), base);
    if (u.pathname === '/api/user/teams') return page(req, res, user.teams.map(([org, slug]) => ({ slug, organization: { login: org } })), base);
    const m = /^\/api\/user\/memberships\/orgs\/([^/]+)$/.exec(u.pathname);
    if (m) {
      const org = decodeURIComponent(m[1] as string);
      if ((user.restricted ?? []).includes(org)) return json(res, 403, { message: 'Although you appear to have the correct authorization credentials, the organization has enabled OAuth App access restrictions' });
      return user.orgs.includes(org) ? json(res, 200, { state: 'active' }) : json(res, 404, { message: 'Not Found' });
    }
    json(res, 404, { message: 'Not Found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state };
}

async function rig(t: Teardown, extra: Record<string, unknown> = {}) {
  const gh = await githubStub(t);
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    authenticators: {
      web: { type: 'session' },
      github: { type: 'oidc', provider: 'github', clientId: 'gh-client', clientSecret: 'gh-secret', baseUrl: gh.url, apiUrl: `${gh.url}/api`, label: 'GitHub', ...extra },
    },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'github'], onUnauthenticated: 'login' }],
  });
  return { gh, gw };
}

const octocat = (over: Partial<GhUser> = {}): GhUser => ({
  login: 'octocat',
  id: 583231,
  emails: [
    { email: 'old@example.test', primary: false, verified: true },
    { email: 'octo@example.test', primary: true, verified: true },
  ],
  orgs: ['one', 'two', 'acme'],
  teams: [['one', 'x'], ['two', 'y'], ['acme', 'devs']],
  ...over,
});

async function signIn(gw: { url: string }) {
  const jar = new CookieJar();
  let hop = await browse(jar, `${gw.url}/.auth/oidc/github/login?rd=/app/x`);
  for (let i = 0; i < 5 && hop.status >= 300 && hop.status < 400 && hop.location; i++) hop = await browse(jar, hop.location);
  const headers = hop.status === 200 && hop.url.endsWith('/app/x') ? (JSON.parse(hop.body) as { headers: Record<string, string> }).headers : undefined;
  return { jar, hop, headers };
}

t.test('github: login, verified primary email, orgs across pages, PKCE and scopes', async (t) => {
  const { gh, gw } = await rig(t, { allowedOrgs: ['acme'] });
  gh.state.next = octocat();
  const jar = new CookieJar();
  const start = await browse(jar, `${gw.url}/.auth/oidc/github/login?rd=/app/x`);
  const auth = new URL(start.location ?? '');
  t.equal(auth.searchParams.get('scope'), 'read:org user:email');
  t.equal(auth.searchParams.get('code_challenge_method'), 'S256');
  t.equal(auth.searchParams.get('redirect_uri'), `${gw.url}/.auth/oidc/github/callback`);
  const { headers } = await signIn(gw);
  t.equal(headers?.['x-auth-user'], 'octocat');
  t.equal(headers?.['x-auth-email'], 'octo@example.test', 'the verified primary address');
  t.equal(headers?.['x-auth-method'], 'oidc:github');
  t.match(headers?.['x-auth-groups'] ?? '', /acme/, 'an org from the second page (Link pagination)');
});

t.test('github: an unverified primary address is never the email', async (t) => {
  const { gh, gw } = await rig(t);
  gh.state.next = octocat({ emails: [{ email: 'octo@example.test', primary: true, verified: false }] });
  const { headers } = await signIn(gw);
  t.equal(headers?.['x-auth-user'], 'octocat');
  t.notOk(headers?.['x-auth-email']);
});

t.test('github: not a member of an allowed org vs an org that has not approved the app', async (t) => {
  const { gh, gw } = await rig(t, { allowedOrgs: ['acme'] });
  gh.state.next = octocat({ orgs: ['one'] });
  const out = await signIn(gw);
  t.equal(out.hop.status, 403);
  t.match(out.hop.body, /not a member of an organization/);
  t.notOk(out.jar.get('authgate_session'));
  gh.state.next = octocat({ orgs: ['one', 'acme'], restricted: ['acme'] });
  const restricted = await signIn(gw);
  t.equal(restricted.hop.status, 403);
  t.match(restricted.hop.body, /has not approved this application/);
  t.notOk(restricted.jar.get('authgate_session'));
});

t.test('github: allowedTeams through paginated /user/teams', async (t) => {
  const { gh, gw } = await rig(t, { allowedTeams: ['acme/devs'] });
  gh.state.next = octocat();
  t.equal((await signIn(gw)).headers?.['x-auth-user'], 'octocat', 'acme/devs is on the second page');
  gh.state.next = octocat({ teams: [['acme', 'ops']] });
  const out = await signIn(gw);
  t.equal(out.hop.status, 403);
  t.match(out.hop.body, /not in a team/);
  t.notOk(out.jar.get('authgate_session'));
});

t.test('github: a replayed code is refused by the token endpoint; logout just ends the gateway session', async (t) => {
  const { gh, gw } = await rig(t);
  gh.state.next = octocat();
  const jar = new CookieJar();
  const start = await browse(jar, `${gw.url}/.auth/oidc/github/login?rd=/app/x`);
  const cb = await browse(jar, start.location as string);
  const callback = cb.location as string;
  const ok = await browse(jar, callback);
  t.equal(ok.status, 302);
  // A second flow in a new browser, fed the first (spent) code.
  const other = new CookieJar();
  const s2 = await browse(other, `${gw.url}/.auth/oidc/github/login?rd=/app/x`);
  const cb2 = new URL((await browse(other, s2.location as string)).location as string);
  cb2.searchParams.set('code', new URL(callback).searchParams.get('code') ?? '');
  const replay = await browse(other, cb2.toString());
  t.equal(replay.status, 400);
  t.match(replay.body, /already used or has expired/);
  t.notOk(other.get('authgate_session'));

  const out = await browse(jar, `${gw.url}/.auth/logout`, { method: 'POST', body: 'rd=%2Fbye', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: gw.url } });
  t.equal(out.location, `${gw.url}/bye`, 'no end-session endpoint: back to rd');
  t.equal((await browse(jar, `${gw.url}/app/x`)).status, 302);
});
