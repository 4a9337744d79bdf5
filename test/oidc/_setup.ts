// Shared set-up of the OIDC tests: a real OpenID Provider, an echo upstream and a gateway whose
// routes accept the session an OIDC login creates.
import { startTestEcho, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { CookieJar, signInAtProvider, startTestOp, type TestClient, type TestOp, type Teardown } from '../helpers/oidc.js';

export interface OidcRig {
  op: TestOp;
  gw: TestGateway;
  echoUrl: string;
  callbackPrefix: string;
}

export async function oidcRig(t: Teardown, opts: { auth?: Record<string, unknown>; client?: Partial<TestClient> & Record<string, unknown>; config?: Record<string, unknown>; users?: string; extraAuthenticators?: Record<string, unknown>; route?: Record<string, unknown> } = {}): Promise<OidcRig> {
  const op = await startTestOp(t);
  const echo = await startTestEcho(t);
  const gw = await startTestGateway(t, {
    ...(opts.users !== undefined ? { users: { file: './users.yaml' }, login: { identifiers: ['username', 'email'] } } : {}),
    authenticators: {
      web: { type: 'session' },
      corp: { type: 'oidc', issuer: op.issuer, clientId: 'gateway', clientSecret: 'gateway-secret', label: 'Corp SSO', scopes: ['openid', 'email', 'profile', 'groups', 'extra'], ...(opts.auth ?? {}) },
      ...(opts.extraAuthenticators ?? {}),
    },
    routes: [
      { name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'corp'], onUnauthenticated: 'login', ...(opts.route ?? {}) },
    ],
    ...(opts.config ?? {}),
  }, { files: opts.users !== undefined ? { 'users.yaml': opts.users } : {} });
  op.configure([
    {
      client_id: 'gateway',
      client_secret: 'gateway-secret',
      redirect_uris: [`${gw.url}/.auth/oidc/corp/callback`],
      post_logout_redirect_uris: [`${gw.url}/`, `${gw.url}/bye`],
      backchannel_logout_uri: `${gw.url}/.auth/oidc/corp/backchannel-logout`,
      backchannel_logout_session_required: true,
      ...(opts.client ?? {}),
    },
  ]);
  return { op, gw, echoUrl: echo.url, callbackPrefix: `${gw.url}/.auth/oidc/corp/callback` };
}

/** Signs `login` in through the provider and returns the jar (with the gateway session) and the final hop. */
export async function oidcSignIn(rig: OidcRig, login: string, rd = '/app/x', jar = new CookieJar()) {
  const res = await signInAtProvider(jar, `${rig.gw.url}/.auth/oidc/corp/login?rd=${encodeURIComponent(rd)}`, login, () => false);
  return { jar, last: res.last };
}

/** Runs a sign-in up to the callback and returns the callback URL the provider sent the browser to. */
export async function upToCallback(rig: OidcRig, login: string, jar = new CookieJar(), rd = '/app/x') {
  const res = await signInAtProvider(jar, `${rig.gw.url}/.auth/oidc/corp/login?rd=${encodeURIComponent(rd)}`, login, (u) => u.startsWith(rig.callbackPrefix));
  if (res.stoppedAt === undefined) throw new Error(`no callback reached: ${res.last.status} ${res.last.body.slice(0, 300)}`);
  return { jar, callback: res.stoppedAt };
}
