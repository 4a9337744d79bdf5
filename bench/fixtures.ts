// Everything the benchmark's gateways need, made fresh in a temp directory: a users file (bcrypt),
// an API key, RS256 keys with a tiny JWKS server (the "external IdP"), a tiny RFC 7662
// introspection endpoint, a plugin module, and the gateway configs (one route per authenticator).
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';

export const BENCH_USER = 'bench';
export const BENCH_PASSWORD = 'bench-password-0123';
/** bcrypt cost for the users file and nginx's htpasswd: the same hash on both sides. */
export const BCRYPT_COST = 10;
export const PREFIX = '/.auth';
export const EXT_AUDIENCE = 'bench-api';
export const INTROSPECTION_CLIENT = { id: 'bench-gw', secret: 'bench-introspection-secret-0123456789' };

export interface AuxServers {
  /** Issuer URL of the external IdP; its JWKS is at `${issuer}/jwks.json`. */
  issuer: string;
  jwksUri: string;
  introspectionUrl: string;
  /** Introspection calls answered (a warm cache keeps this flat during the runs). */
  introspectionCalls(): number;
  close(): Promise<void>;
}

export interface BenchFixtures {
  dir: string;
  user: { name: string; password: string; bcryptHash: string };
  apiKey: string;
  /** PEM files of the external IdP's RS256 key pair (HAProxy's jwt_verify reads the public one). */
  extPublicKeyFile: string;
  extKey: { privateKey: KeyObject; kid: string };
  aux: AuxServers;
  /** Session secret shared by every gateway of the run (so a session made on one is valid on all). */
  sessionSecret: string;
  pluginModule: string;
  pluginSecret: string;
  redisPrefix: string;
}

function b64url(v: Buffer | string): string {
  return Buffer.from(v).toString('base64url');
}

/** An RS256 JWT signed with the external IdP's key. */
export function signExternalJwt(fx: BenchFixtures, claims: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: fx.extKey.kid }));
  const payload = b64url(JSON.stringify(claims));
  const sig = cryptoSign('sha256', Buffer.from(`${header}.${payload}`), fx.extKey.privateKey);
  return `${header}.${payload}.${b64url(sig)}`;
}

/** A valid external access token for the bench user, good for `ttlSeconds`. */
export function externalAccessToken(fx: BenchFixtures, ttlSeconds = 7200, extra: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return signExternalJwt(fx, {
    iss: fx.aux.issuer,
    sub: 'ext-user',
    aud: EXT_AUDIENCE,
    iat: now,
    exp: now + ttlSeconds,
    scope: 'orders:read',
    jti: randomBytes(8).toString('hex'),
    ...extra,
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function startAux(extPublic: KeyObject, kid: string): Promise<AuxServers> {
  const jwk = { ...extPublic.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const jwks = Buffer.from(JSON.stringify({ keys: [jwk] }));
  const expectedAuth = `Basic ${Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString('base64')}`;
  let calls = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/jwks.json') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': jwks.length });
        return res.end(jwks);
      }
      if (req.url === '/introspect' && req.method === 'POST') {
        calls++;
        const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('token') ?? '';
        const authorized = req.headers.authorization === expectedAuth;
        const active = authorized && token.startsWith('intro-valid-');
        const body = JSON.stringify(
          active
            ? { active: true, username: 'intro-user', sub: 'intro-user', scope: 'orders:read', client_id: 'bench-client', exp: Math.floor(Date.now() / 1000) + 3600 }
            : { active: false },
        );
        res.writeHead(authorized ? 200 : 401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        return res.end(body);
      }
      res.writeHead(404).end();
    });
  });
  const url = await listen(server);
  return {
    issuer: url,
    jwksUri: `${url}/jwks.json`,
    introspectionUrl: `${url}/introspect`,
    introspectionCalls: () => calls,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * The benchmark's custom authenticator (SPEC 9): an HMAC of the client id in a header, the shape
 * of a typical webhook/partner check. Written as plain ESM so the gateway loads it as a user would.
 */
const PLUGIN_SOURCE = `// Written by bench/fixtures.ts: a plugin authenticator for the benchmark.
import { createHmac, timingSafeEqual } from 'node:crypto';
export default {
  type: 'bench-hmac',
  create(options) {
    const key = Buffer.from(String(options.secret), 'utf8');
    return {
      authenticate(request) {
        const client = request.headers['x-bench-client'];
        const sig = request.headers['x-bench-signature'];
        if (typeof client !== 'string' || typeof sig !== 'string') return { kind: 'not-mine' };
        const expected = createHmac('sha256', key).update(client).digest();
        const given = Buffer.from(sig, 'hex');
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { kind: 'reject', code: 'invalid_credentials' };
        return { kind: 'identity', identity: { user: client, groups: [], scopes: [], method: 'plugin:bench', authenticator: 'bench-plugin', mfa: false, amr: ['key'], authTime: Math.floor(Date.now() / 1000) } };
      },
    };
  },
};
`;

export async function createFixtures(): Promise<BenchFixtures> {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-bench-'));
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  const bcryptHash = bcrypt.hashSync(BENCH_PASSWORD, BCRYPT_COST);
  writeFileSync(
    join(dir, 'users.yaml'),
    stringify({ users: { [BENCH_USER]: { email: 'bench@example.com', password: bcryptHash, groups: ['staff'] } } }),
  );
  const apiKey = `bench-key-${randomBytes(16).toString('hex')}`;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const extPublicKeyFile = join(dir, 'ext-public.pem');
  writeFileSync(extPublicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const kid = 'bench-rs256';
  const aux = await startAux(publicKey, kid);
  const pluginModule = join(dir, 'plugins', 'bench-hmac.mjs');
  writeFileSync(pluginModule, PLUGIN_SOURCE);
  return {
    dir,
    user: { name: BENCH_USER, password: BENCH_PASSWORD, bcryptHash },
    apiKey,
    extPublicKeyFile,
    extKey: { privateKey, kid },
    aux,
    sessionSecret: randomBytes(32).toString('base64url'),
    pluginModule,
    pluginSecret: randomBytes(16).toString('hex'),
    redisPrefix: `bench:${randomBytes(6).toString('hex')}:`,
  };
}

/** The plugin scenario's headers: client id and its HMAC. */
export function pluginHeaders(fx: BenchFixtures, client = 'bench-partner'): Record<string, string> {
  return { 'x-bench-client': client, 'x-bench-signature': createHmac('sha256', fx.pluginSecret).update(client).digest('hex') };
}

/** One route per authenticator, named and prefixed by the scenario id. */
export interface RouteSpec {
  id: string;
  auth: 'anonymous' | string[];
}

export interface GatewayConfigInput {
  name: string;
  store: 'sqlite' | 'redis' | 'memory';
  upstream: string;
  authenticators: Record<string, Record<string, unknown>>;
  routes: RouteSpec[];
  /** Extra top-level keys (jwt settings etc.). */
  extra?: Record<string, unknown>;
  workers?: number | 'auto';
}

/** Writes a gateway config file and returns its path. */
export function writeGatewayConfig(fx: BenchFixtures, input: GatewayConfigInput): string {
  const store =
    input.store === 'redis'
      ? { driver: 'redis', redis: { url: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0', keyPrefix: fx.redisPrefix } }
      : input.store === 'sqlite'
        ? { driver: 'sqlite', sqlite: { path: `./${input.name}.db` } }
        : { driver: 'memory' };
  const config = {
    server: {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      prefix: PREFIX,
      // /verify answers only trusted proxies; the load generator plays nginx here.
      trustedProxies: ['127.0.0.1'],
      ...(input.workers !== undefined ? { workers: input.workers } : {}),
    },
    secrets: { session: fx.sessionSecret },
    store,
    users: { file: './users.yaml' },
    signing: { keys: [{ kid: 'bench-k1', alg: 'EdDSA', privateKey: { file: `./${input.name}-k1.pem` } }] },
    jwt: { accessTtl: '2h' },
    authenticators: input.authenticators,
    routes: input.routes.map((r) => ({ name: r.id, match: { path: `/${r.id}/**` }, upstream: input.upstream, auth: r.auth })),
    ...input.extra,
  };
  const file = join(fx.dir, `${input.name}.yaml`);
  writeFileSync(file, stringify(config));
  return file;
}

/** The apikey authenticator's config entry for the fixture key. */
export function apiKeyEntry(fx: BenchFixtures): Record<string, unknown> {
  return { id: 'bench', hash: `sha256:${createHash('sha256').update(fx.apiKey).digest('hex')}`, user: 'svc-bench', scopes: ['orders:read'] };
}
