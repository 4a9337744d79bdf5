// The scenarios of one run: which server, which path, which credential, and which target it is
// held to. The gateway configs are built from the authenticator types the tree registers, so a
// type that has not landed yet is skipped with a note instead of failing the run.
import { apiKeyEntry, externalAccessToken, INTROSPECTION_CLIENT, pluginHeaders, type BenchFixtures, type RouteSpec } from './fixtures.js';
import type { SeededCredentials } from './seed.js';

/** Which process serves a scenario. */
export type TargetName = 'bare' | 'floor' | 'gateway' | 'gateway-w2' | 'gateway-redis' | 'gateway-django' | 'nginx' | 'haproxy';

/** The share of bare @fastify/http-proxy a scenario must keep (issue #6 targets). */
export type Group = 'ceiling' | 'anonymous' | 'auth' | 'session' | 'peer';

export interface Scenario {
  id: string;
  label: string;
  target: TargetName;
  path: string;
  headers: Record<string, string>;
  group: Group;
  /** Log level of the gateway for this scenario (the info-level comparison line). */
  level?: 'info';
  /** Each request with a different credential (setupRequest), e.g. cold JWT verification. */
  rotating?: () => Record<string, string>;
  /** Overrides for a scenario whose requests take very long (nginx checking bcrypt). */
  connections?: number;
  minDuration?: number;
}

export const MIN_THROUGHPUT_RATIO: Record<Group, number | undefined> = { ceiling: undefined, anonymous: 0.95, auth: 0.9, session: 0.85, peer: undefined };

/** Authenticators and routes of the main (sqlite) gateway for the types that are available. */
export function mainGatewayAuth(fx: BenchFixtures, types: ReadonlySet<string>): { authenticators: Record<string, Record<string, unknown>>; routes: RouteSpec[] } {
  const authenticators: Record<string, Record<string, unknown>> = {};
  const routes: RouteSpec[] = [{ id: 'anonymous', auth: 'anonymous' }];
  const add = (type: string, route: string, name: string, cfg: Record<string, unknown>): void => {
    if (!types.has(type)) return;
    authenticators[name] = { type, ...cfg };
    routes.push({ id: route, auth: [name] });
  };
  add('basic', 'basic', 'staff-basic', { realm: 'bench' });
  add('apikey', 'apikey', 'partners', { keys: [apiKeyEntry(fx)] });
  add('token', 'token', 'api-token', {});
  add('jwt', 'jwt-rs256', 'ext-jwt', { issuer: fx.aux.issuer, jwksUri: fx.aux.jwksUri, audience: 'bench-api', algorithms: ['RS256'] });
  add('jwt', 'jwt-self', 'local-jwt', { issuer: 'self' });
  add('session', 'session-sqlite', 'web', {});
  add('introspection', 'introspection', 'as-introspect', {
    endpoint: fx.aux.introspectionUrl,
    clientId: INTROSPECTION_CLIENT.id,
    clientSecret: INTROSPECTION_CLIENT.secret,
    cacheTtl: '60s',
  });
  add('plugin', 'plugin', 'bench-plugin', { module: './plugins/bench-hmac.mjs', options: { secret: fx.pluginSecret } });
  return { authenticators, routes };
}

export function redisGatewayAuth(): { authenticators: Record<string, Record<string, unknown>>; routes: RouteSpec[] } {
  return { authenticators: { web: { type: 'session' } }, routes: [{ id: 'session-redis', auth: ['web'] }] };
}

const basicHeader = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export interface ScenarioInputs {
  fx: BenchFixtures;
  types: ReadonlySet<string>;
  main: SeededCredentials;
  redis?: SeededCredentials | undefined;
  peers: { nginx: boolean; haproxy: boolean };
  /** Add the cold RS256 scenario (a different valid token on every request). */
  coldJwt: boolean;
  /** Pool of valid RS256 tokens for the cold scenario. */
  coldJwtPool?: string[];
  /** Credentials a real Django site issued, served by the gateway-django target (bench/django.ts). */
  django?: { session: string; token: string; access: string } | undefined;
  /** A second gateway with server.workers: 2 is running (throughput scaling). */
  workers2?: boolean;
}

/** Every scenario of the run, in the order each round runs them. */
export function buildScenarios(inp: ScenarioInputs): { scenarios: Scenario[]; notes: string[] } {
  const { fx, types } = inp;
  const notes: string[] = [];
  const s: Scenario[] = [];
  const basic = basicHeader(fx.user.name, fx.user.password);
  const extJwt = externalAccessToken(fx);
  s.push({ id: 'bare', label: 'bare @fastify/http-proxy', target: 'bare', path: '/bare/x', headers: {}, group: 'ceiling' });
  // The Node floor (issue 12): plain node:http + undici Pool, without and with a cached RS256 check.
  s.push({ id: 'node-floor', label: 'Node floor: node:http + undici Pool', target: 'floor', path: '/floor/x', headers: {}, group: 'ceiling' });
  s.push({ id: 'node-floor-jwt', label: 'Node floor + cached fast-jwt RS256 + user header', target: 'floor', path: '/floor-jwt/x', headers: { authorization: `Bearer ${extJwt}` }, group: 'ceiling' });
  s.push({ id: 'anonymous', label: 'anonymous', target: 'gateway', path: '/anonymous/x', headers: {}, group: 'anonymous' });
  const skip = (type: string, what: string): void => void notes.push(`${what}: skipped, authenticator type '${type}' is not registered in this tree`);
  if (types.has('basic')) s.push({ id: 'basic', label: 'basic (warm cache)', target: 'gateway', path: '/basic/x', headers: { authorization: basic }, group: 'auth' });
  else skip('basic', 'basic');
  if (types.has('apikey')) s.push({ id: 'apikey', label: 'apikey', target: 'gateway', path: '/apikey/x', headers: { 'x-api-key': fx.apiKey }, group: 'auth' });
  else skip('apikey', 'apikey');
  if (types.has('token') && inp.main.apiToken) s.push({ id: 'token', label: 'token (opaque, warm)', target: 'gateway', path: '/token/x', headers: { authorization: `Token ${inp.main.apiToken}` }, group: 'auth' });
  else notes.push('token: skipped (no token authenticator or no token could be made)');
  if (types.has('jwt')) {
    s.push({ id: 'jwt-rs256', label: 'jwt RS256 via JWKS', target: 'gateway', path: '/jwt-rs256/x', headers: { authorization: `Bearer ${extJwt}` }, group: 'auth' });
    // The same route at log level info (one JSON line per request), and with server.workers: 2.
    s.push({ id: 'jwt-rs256@info', label: 'jwt RS256 via JWKS, log level info', target: 'gateway', path: '/jwt-rs256/x', headers: { authorization: `Bearer ${extJwt}` }, group: 'auth', level: 'info' });
    if (inp.workers2) s.push({ id: 'jwt-rs256-w2', label: 'jwt RS256 via JWKS, server.workers: 2', target: 'gateway-w2', path: '/jwt-rs256/x', headers: { authorization: `Bearer ${extJwt}` }, group: 'auth' });
    const pool = inp.coldJwtPool;
    if (inp.coldJwt && pool && pool.length > 0) {
      let i = 0;
      s.push({
        id: 'jwt-rs256-cold',
        label: 'jwt RS256, new token each request',
        target: 'gateway',
        path: '/jwt-rs256/x',
        headers: {},
        group: 'auth',
        rotating: () => ({ authorization: `Bearer ${pool[i++ % pool.length] as string}` }),
      });
    }
    if (inp.main.selfJwt) s.push({ id: 'jwt-self', label: 'jwt issued by the gateway', target: 'gateway', path: '/jwt-self/x', headers: { authorization: `Bearer ${inp.main.selfJwt}` }, group: 'auth' });
    else notes.push('jwt-self: skipped (no gateway JWT could be issued)');
  } else skip('jwt', 'jwt-rs256, jwt-self');
  if (types.has('session') && inp.main.sessionCookie) s.push({ id: 'session-sqlite', label: 'session (sqlite)', target: 'gateway', path: '/session-sqlite/x', headers: { cookie: inp.main.sessionCookie }, group: 'session' });
  else notes.push('session-sqlite: skipped (no session authenticator or no session could be made)');
  // A session an OIDC sign-in created is a normal session on the request path (issue 10).
  if (types.has('session') && inp.main.oidcSessionCookie) s.push({ id: 'session-oidc', label: 'session from an OIDC sign-in (sqlite)', target: 'gateway', path: '/session-sqlite/x', headers: { cookie: inp.main.oidcSessionCookie }, group: 'session' });
  if (inp.redis?.sessionCookie) s.push({ id: 'session-redis', label: 'session (redis)', target: 'gateway-redis', path: '/session-redis/x', headers: { cookie: inp.redis.sessionCookie }, group: 'session' });
  else notes.push('session-redis: skipped (no Redis at 127.0.0.1:6379, or no session authenticator)');
  if (types.has('introspection')) s.push({ id: 'introspection', label: 'introspection (warm cache)', target: 'gateway', path: '/introspection/x', headers: { authorization: 'Bearer intro-valid-0123456789abcdef' }, group: 'auth' });
  else skip('introspection', 'introspection');
  if (types.has('plugin')) s.push({ id: 'plugin', label: 'plugin (HMAC header)', target: 'gateway', path: '/plugin/x', headers: pluginHeaders(fx), group: 'auth' });
  else skip('plugin', 'plugin');
  if (inp.django) {
    const d = inp.django;
    s.push({ id: 'django-session', label: 'django-session (warm)', target: 'gateway-django', path: '/django-session/x', headers: { cookie: `sessionid=${d.session}` }, group: 'session' });
    s.push({ id: 'django-token', label: 'DRF token (warm)', target: 'gateway-django', path: '/django-token/x', headers: { authorization: `Token ${d.token}` }, group: 'auth' });
    s.push({ id: 'django-jwt', label: 'simplejwt access token (warm)', target: 'gateway-django', path: '/django-jwt/x', headers: { authorization: `Bearer ${d.access}` }, group: 'auth' });
  }
  // The same scenario with one JSON log line per request (level info), for comparison.
  const infoBase = s.find((x) => x.id === 'apikey') ?? s.find((x) => x.id === 'anonymous');
  if (infoBase) s.push({ ...infoBase, id: `${infoBase.id}@info`, label: `${infoBase.label}, log level info`, level: 'info' });
  if (inp.peers.nginx) {
    s.push({ id: 'nginx', label: 'nginx proxy_pass', target: 'nginx', path: '/plain/x', headers: {}, group: 'peer' });
    // Each request is a bcrypt check (tens of ms) on nginx's one worker: its throughput is bound
    // by that whatever the concurrency, so fewer connections let requests finish within a run.
    s.push({ id: 'nginx-basic-bcrypt', label: 'nginx auth_basic (bcrypt)', target: 'nginx', path: '/basic/x', headers: { authorization: basic }, group: 'peer', connections: 4, minDuration: 5 });
  }
  if (inp.peers.haproxy) {
    s.push({ id: 'haproxy', label: 'HAProxy', target: 'haproxy', path: '/plain/x', headers: {}, group: 'peer' });
    s.push({ id: 'haproxy-jwt', label: 'HAProxy jwt_verify RS256', target: 'haproxy', path: '/jwt/x', headers: { authorization: `Bearer ${extJwt}` }, group: 'peer' });
  }
  return { scenarios: s, notes };
}
