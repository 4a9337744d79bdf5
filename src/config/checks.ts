// Checks the schema cannot express: references between sections, files that must exist,
// URLs and patterns that must parse, and secrets that must not be the well-known defaults.
// Relative paths are resolved against the config file's directory and rewritten absolute.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Config } from './schema.js';
import { describeCandidates, findExistingFile } from './paths.js';
import { isPlainObject } from './schema-walk.js';
import type { ConfigIssue, ConfigPath } from './source.js';

/** Literal session secrets from docs and examples that must never protect a real deployment. */
export const KNOWN_EXAMPLE_SECRETS: readonly string[] = [
  'a secret with minimum length of 32 characters',
  'keyboard cat',
  'this-is-a-very-long-secret-at-least-32-chars',
  'change-me-to-a-long-random-string-of-32-bytes',
  'replace-with-at-least-32-random-bytes',
];

/** Placeholder words that never appear in a generated secret (compared lower-case, letters and digits only). */
const PLACEHOLDER_WORDS = [
  'changeme', 'changethis', 'replaceme', 'replacethis', 'placeholder', 'example', 'insecure', 'notsecret',
  'notasecret', 'dontuse', 'donotuse', 'yoursecret', 'keyboardcat', 'loremipsum', 'password', 'qwerty',
  '123456789', 'abcdefgh',
];

export const MIN_SESSION_SECRET_BYTES = 32;

/** Why a session secret is unacceptable, or undefined when it is fine. Never echoes the secret. */
export function weakSecretReason(secret: string): string | undefined {
  if (Buffer.byteLength(secret, 'utf8') < MIN_SESSION_SECRET_BYTES) return `must be at least ${MIN_SESSION_SECRET_BYTES} bytes`;
  const lower = secret.toLowerCase();
  if (KNOWN_EXAMPLE_SECRETS.some((s) => s.toLowerCase() === lower)) return 'is a published example value; generate one with `openssl rand -base64 48`';
  const letters = lower.replace(/[^a-z0-9]/g, '');
  if (PLACEHOLDER_WORDS.some((w) => letters.includes(w))) return 'looks like a placeholder; generate one with `openssl rand -base64 48`';
  if (new Set(secret).size < 8) return 'has too little variety to be random; generate one with `openssl rand -base64 48`';
  return undefined;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PLUGIN_EXTENSIONS = ['', '.js', '.mjs', '.ts'] as const;

const str = (v: unknown): v is string => typeof v === 'string';
const entries = (v: unknown): [string, Record<string, unknown>][] =>
  isPlainObject(v) ? Object.entries(v).filter((e): e is [string, Record<string, unknown>] => isPlainObject(e[1])) : [];
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function validUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/** `scheme://host[:port]`, host optionally `*.`-prefixed (SPEC 4.6); returns a problem or undefined. */
export function originPatternProblem(pattern: string): string | undefined {
  const wildcard = pattern.includes('://*.');
  const url = validUrl(pattern.replace('://*.', '://wildcard.'));
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return `'${pattern}' is not a valid scheme://host[:port] origin`;
  if (url.pathname !== '/' || url.search || url.hash || url.username) return `'${pattern}' must be an origin only, without path or credentials`;
  const host = url.hostname;
  if (host.startsWith('.') || host.endsWith('.') || host.includes('..')) return `'${pattern}' has an invalid host`;
  if (wildcard && host.split('.').length < 3) return `'${pattern}' is too broad: a wildcard must cover a domain, not a top-level domain`;
  return undefined;
}

function cidrProblem(value: string): string | undefined {
  const [address = '', bits, extra] = value.split('/');
  const family = isIP(address);
  if (!family || extra !== undefined) return `'${value}' is not an IP address or CIDR`;
  if (bits === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^[0-9]+$/.test(bits) || Number(bits) > max) return `'${value}' has an invalid prefix length (0-${max})`;
  // Trusting every address lets any client forge X-Forwarded-For/Proto/Host (THREATS 81).
  if (Number(bits) === 0) return `'${value}' trusts every client's X-Forwarded-* headers; list your proxies' addresses instead`;
  return undefined;
}

/** The literal part of a route path before the first wildcard segment, without a trailing '/'. */
export function literalPathPrefix(pattern: string): string {
  const segments = pattern.split('/').slice(1);
  const literal: string[] = [];
  for (const seg of segments) {
    if (seg.includes('*')) break;
    literal.push(seg);
  }
  return `/${literal.join('/')}`.replace(/\/+$/, '');
}

function keyAlgorithmProblem(pem: string, alg: string): string | undefined {
  let type: string | undefined;
  let curve: string | undefined;
  try {
    const key = createPrivateKey(pem);
    type = key.asymmetricKeyType;
    curve = key.asymmetricKeyDetails?.namedCurve;
  } catch {
    return 'is not a PEM private key';
  }
  const ok = alg === 'EdDSA' ? type === 'ed25519' || type === 'ed448' : alg === 'ES256' ? type === 'ec' && curve === 'prime256v1' : alg === 'RS256' ? type === 'rsa' : false;
  return ok ? undefined : `is a ${type ?? 'unknown'}${curve ? ` (${curve})` : ''} key, which does not match alg ${alg}`;
}

/** Runs the semantic checks on schema-shaped data; rewrites relative paths absolute in place. */
export async function checkConfig(config: Config, dir: string): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const add = (p: ConfigPath, message: string, at?: ConfigPath): void => {
    issues.push(at ? { path: p, message, at } : { path: p, message });
  };
  const cfg = config as unknown as Record<string, unknown>;

  // server
  const server = isPlainObject(cfg.server) ? cfg.server : {};
  if (str(server.publicUrl) && !validUrl(server.publicUrl)) add(['server', 'publicUrl'], 'is not a valid URL');
  list(server.allowedOrigins).forEach((o, i) => {
    const problem = str(o) ? originPatternProblem(o) : undefined;
    if (problem) add(['server', 'allowedOrigins', i], problem);
  });
  list(server.trustedProxies).forEach((p, i) => {
    const problem = str(p) ? cidrProblem(p) : undefined;
    if (problem) add(['server', 'trustedProxies', i], problem);
  });

  // secrets.session
  const secrets = isPlainObject(cfg.secrets) ? cfg.secrets : {};
  const sessionSecrets = Array.isArray(secrets.session) ? secrets.session.map((s, i) => [s, ['secrets', 'session', i]] as const) : [[secrets.session, ['secrets', 'session']] as const];
  for (const [secret, at] of sessionSecrets) {
    const reason = str(secret) ? weakSecretReason(secret) : undefined;
    if (reason) add(at, `session secret ${reason}`);
  }

  // MFA (issue 11): a real sealing key; WebAuthn needs a host name (browsers refuse an IP as rpId).
  if (str(secrets.mfa)) {
    const reason = weakSecretReason(secrets.mfa);
    if (reason) add(['secrets', 'mfa'], `MFA secret ${reason}`);
  }
  const mfa = isPlainObject(cfg.mfa) ? cfg.mfa : undefined;
  const publicUrl = str(server.publicUrl) ? validUrl(server.publicUrl) : undefined;
  if (mfa !== undefined && (mfa.passkeyLogin === true || mfa.webauthn !== undefined) && (publicUrl === undefined || isIP(publicUrl.hostname.replace(/^\[|\]$/g, '')) !== 0)) {
    add(['server', 'publicUrl'], 'WebAuthn (mfa.webauthn, mfa.passkeyLogin) needs publicUrl with a host name, not an IP address', ['mfa']);
  }
  if (mfa !== undefined && isPlainObject(mfa.email) && str(mfa.email.smtp)) {
    const smtp = validUrl(mfa.email.smtp);
    if (smtp === undefined || (smtp.protocol !== 'smtp:' && smtp.protocol !== 'smtps:')) add(['mfa', 'email', 'smtp'], 'must be an smtp:// or smtps:// URL');
  }

  // store
  const store = isPlainObject(cfg.store) ? cfg.store : undefined;
  if (store?.driver === 'redis' && store.redis === undefined) add(['store', 'redis'], 'is required when driver is redis', ['store', 'driver']);
  if (store && isPlainObject(store.sqlite) && str(store.sqlite.path) && store.sqlite.path !== ':memory:') {
    store.sqlite.path = path.resolve(dir, store.sqlite.path);
  }
  if (store && isPlainObject(store.redis) && str(store.redis.url)) {
    const url = validUrl(store.redis.url);
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) add(['store', 'redis', 'url'], 'must be a redis:// or rediss:// URL');
  }
  if (store && isPlainObject(store.redis)) {
    // One way to reach Redis: a URL, Sentinel (sentinels + name) or Cluster.
    const r = store.redis;
    const ways = ['url', 'sentinels', 'cluster'].filter((k) => r[k] !== undefined);
    if (ways.length !== 1) add(['store', 'redis'], 'needs exactly one of url, sentinels (with name) or cluster');
    if (r.sentinels !== undefined && !str(r.name)) add(['store', 'redis', 'name'], 'is required with sentinels (the master group name)');
    if (r.name !== undefined && r.sentinels === undefined) add(['store', 'redis', 'name'], 'is only used with sentinels');
    if (r.password !== undefined && r.url !== undefined) add(['store', 'redis', 'password'], 'goes in the url when url is used');
  }

  // users
  const users = isPlainObject(cfg.users) ? cfg.users : {};
  if (str(users.file)) {
    const file = await findExistingFile(dir, users.file);
    if (file) users.file = file;
    else add(['users', 'file'], `users file not found (looked for ${describeCandidates(dir, users.file)})`);
  }
  if (isPlainObject(users.postgres) && str(users.postgres.url)) {
    const url = validUrl(users.postgres.url);
    if (!url || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) add(['users', 'postgres', 'url'], 'must be a postgres:// URL');
  }

  // signing keys
  const signing = isPlainObject(cfg.signing) ? cfg.signing : {};
  const kids = new Map<string, number>();
  list(signing.keys).forEach((key, i) => {
    if (!isPlainObject(key)) return;
    if (str(key.kid)) {
      if (kids.has(key.kid)) add(['signing', 'keys', i, 'kid'], `duplicate kid '${key.kid}' (also signing.keys.${kids.get(key.kid)})`);
      else kids.set(key.kid, i);
    }
    if (str(key.privateKey) && str(key.alg)) {
      const problem = keyAlgorithmProblem(key.privateKey, key.alg);
      if (problem) add(['signing', 'keys', i, 'privateKey'], `private key ${problem}`);
    }
  });

  // identity
  const identity = isPlainObject(cfg.identity) ? cfg.identity : {};
  for (const [name, header] of Object.entries(isPlainObject(identity.headers) ? identity.headers : {})) {
    if (str(header) && !HEADER_NAME.test(header)) add(['identity', 'headers', name], `'${header}' is not a valid header name`);
  }
  if (isPlainObject(identity.assertion) && str(identity.assertion.header) && !HEADER_NAME.test(identity.assertion.header)) {
    add(['identity', 'assertion', 'header'], `'${identity.assertion.header}' is not a valid header name`);
  }

  // login
  const login = isPlainObject(cfg.login) ? cfg.login : {};
  list(login.allowedRedirects).forEach((o, i) => {
    const problem = str(o) ? originPatternProblem(o) : undefined;
    if (problem) add(['login', 'allowedRedirects', i], problem);
  });
  if (isPlainObject(login.branding) && str(login.branding.logo) && !login.branding.logo.startsWith('data:')) {
    const logo = await findExistingFile(dir, login.branding.logo);
    if (logo) login.branding.logo = logo;
    else add(['login', 'branding', 'logo'], `logo file not found (looked for ${describeCandidates(dir, login.branding.logo)})`);
  }

  // authenticators
  const authenticators = entries(cfg.authenticators);
  const authenticatorNames = new Set(authenticators.map(([name]) => name));
  for (const [name, a] of authenticators) {
    const at = ['authenticators', name];
    if (name === 'anonymous' && a.type !== 'anonymous') add([...at, 'type'], "the name 'anonymous' is reserved for the built-in anonymous authenticator");
    if (a.type === 'jwt' && str(a.issuer) && a.preset === undefined) {
      const external = a.issuer !== 'self';
      const discoverable = /^https?:\/\//.test(a.issuer);
      if (external && a.jwksUri === undefined && a.publicKeys === undefined && !discoverable) {
        add([...at, 'issuer'], 'an external issuer needs jwksUri, publicKeys, or an http(s) issuer URL (for discovery)');
      }
      if (!external && (a.jwksUri !== undefined || a.publicKeys !== undefined)) {
        add([...at, 'issuer'], "issuer 'self' verifies with the gateway's signing keys; remove jwksUri/publicKeys");
      }
      if (discoverable && !validUrl(a.issuer)) add([...at, 'issuer'], 'is not a valid URL');
      if (str(a.jwksUri) && !validUrl(a.jwksUri)) add([...at, 'jwksUri'], 'is not a valid URL');
      list(a.publicKeys).forEach((pem, i) => {
        if (!str(pem)) return;
        try {
          createPublicKey(pem);
        } catch {
          add([...at, 'publicKeys', i], 'is not a PEM public key or certificate');
        }
      });
    }
    djangoChecks(cfg, a, at, add);
    if (a.type === 'introspection' && str(a.endpoint) && !validUrl(a.endpoint)) add([...at, 'endpoint'], 'is not a valid URL');
    if (a.type === 'oidc') {
      if (a.provider !== 'github' && a.issuer === undefined && a.preset !== 'google' && a.preset !== 'gitlab' && a.preset !== 'entra') add([...at, 'issuer'], "is required for provider 'oidc'", at);
      if (a.preset === 'entra' && a.issuer === undefined && a.tenant === undefined) add([...at, 'tenant'], "is required for preset 'entra'", at);
      if (a.preset === 'entra' && (a.tenant === 'common' || a.tenant === 'organizations') && list(a.allowedTenants).length === 0) add([...at, 'allowedTenants'], 'a multi-tenant app must list the tenants (tid) it accepts', at);
      // openid-client resolves Entra's `{tenantid}` issuer template for the global authority only.
      if (a.preset === 'entra' && (a.tenant === 'common' || a.tenant === 'organizations') && a.authority !== undefined && a.authority !== 'https://login.microsoftonline.com') add([...at, 'authority'], 'a multi-tenant app needs the global authority; name the tenant for a sovereign cloud', at);
      if (a.clientAuth === 'private_key_jwt' ? a.privateKey === undefined : a.clientSecret === undefined) add([...at, a.clientAuth === 'private_key_jwt' ? 'privateKey' : 'clientSecret'], 'is required for this client authentication', at);
      if (str(a.issuer) && !validUrl(a.issuer)) add([...at, 'issuer'], 'is not a valid URL');
    }
    if (a.type === 'apikey') {
      const ids = new Set<string>();
      list(a.keys).forEach((k, i) => {
        if (isPlainObject(k) && str(k.id)) {
          if (ids.has(k.id)) add([...at, 'keys', i, 'id'], `duplicate key id '${k.id}'`);
          ids.add(k.id);
        }
      });
    }
    if (a.type === 'plugin' && str(a.module)) {
      const resolved = await findExistingFile(dir, a.module, PLUGIN_EXTENSIONS);
      if (resolved) a.module = resolved;
      else add([...at, 'module'], `plugin module not found (looked for ${describeCandidates(dir, a.module)}, also with .js, .mjs, .ts)`);
    }
  }

  // oauth clients
  const oauth = isPlainObject(cfg.oauth) ? cfg.oauth : {};
  const clientIds = new Set<string>();
  list(oauth.clients).forEach((c, i) => {
    if (!isPlainObject(c) || !str(c.id)) return;
    if (clientIds.has(c.id)) add(['oauth', 'clients', i, 'id'], `duplicate client id '${c.id}'`);
    clientIds.add(c.id);
  });

  // routes
  const routeNames = new Map<string, number>();
  list(cfg.routes).forEach((route, i) => {
    if (!isPlainObject(route)) return;
    const at = ['routes', i];
    if (str(route.name)) {
      const first = routeNames.get(route.name);
      if (first !== undefined) add([...at, 'name'], `duplicate route name '${route.name}' (also routes.${first})`);
      else routeNames.set(route.name, i);
    }
    if (Array.isArray(route.auth)) {
      route.auth.forEach((name, j) => {
        if (!str(name) || name === 'anonymous' || authenticatorNames.has(name)) return;
        const known = [...authenticatorNames];
        add([...at, 'auth', j], `unknown authenticator '${name}'${known.length ? ` (defined: ${known.join(', ')})` : ' (no authenticators are defined)'}`);
      });
      // An oidc authenticator only starts sign-ins; the session it creates is read by a `session` one.
      const typeOf = (n: unknown): unknown => authenticators.find(([name]) => name === n)?.[1]?.type;
      const oidcAt = route.auth.findIndex((n) => typeOf(n) === 'oidc');
      if (oidcAt >= 0 && !route.auth.some((n) => typeOf(n) === 'session')) {
        add([...at, 'auth', oidcAt], 'an oidc authenticator needs a session authenticator in the same chain (e.g. [web, google]): it reads the session the sign-in creates');
      }
    }
    const upstreams = str(route.upstream) ? [route.upstream] : list(route.upstream);
    upstreams.forEach((u, j) => {
      if (str(u) && !validUrl(u)) add(str(route.upstream) ? [...at, 'upstream'] : [...at, 'upstream', j], 'is not a valid URL');
    });
    const match = isPlainObject(route.match) ? route.match : {};
    if (str(match.path)) {
      const segments = match.path.split('/');
      const bad = segments.findIndex((s, k) => s.includes('**') && (s !== '**' || k !== segments.length - 1));
      if (bad >= 0) add([...at, 'match', 'path'], "'**' is allowed only as the whole last segment");
      if (str(route.stripPath)) {
        const literal = literalPathPrefix(match.path);
        const strip = route.stripPath.length > 1 ? route.stripPath.replace(/\/+$/, '') : route.stripPath;
        if (literal !== '' && strip !== '/' && literal !== strip && !literal.startsWith(`${strip}/`)) {
          add([...at, 'stripPath'], `must be a prefix of the match path's literal part '${literal}'`);
        }
      }
    }
  });

  return issues;
}

/** The Django drop-in's references (SPEC 3.2): its authenticators read the Django database and key. */
function djangoChecks(cfg: Record<string, unknown>, a: Record<string, unknown>, at: ConfigPath, add: (path: ConfigPath, message: string, at?: ConfigPath) => void): void {
  const simplejwt = a.type === 'jwt' && a.preset === 'simplejwt';
  const django = simplejwt || a.type === 'django-session' || (a.type === 'token' && a.source === 'django');
  if (a.type === 'jwt' && !simplejwt && a.issuer === undefined) add([...at, 'issuer'], 'is required (unless preset: simplejwt)', at);
  if (!django) return;
  const users = isPlainObject(cfg.users) ? cfg.users : {};
  if (!isPlainObject(users.postgres)) add([...at, 'type'], 'reads the Django database: set users.postgres (preset: django)');
  const hasKey = isPlainObject(cfg.django) && cfg.django.secretKey !== undefined;
  if (a.type === 'django-session' && !hasKey) add([...at, 'type'], 'needs django.secretKey (the site\'s SECRET_KEY)');
  if (simplejwt && !hasKey && a.secret === undefined) add([...at, 'secret'], "is required when django.secretKey is not set (simplejwt's SIGNING_KEY)", at);
  if (simplejwt) {
    for (const key of ['jwksUri', 'publicKeys', 'algorithms', 'claims', 'types', 'jwksRefreshInterval', 'maxAge']) {
      if (a[key] !== undefined) add([...at, key], 'does not apply to preset simplejwt: it verifies HS256 with the Django secret only');
    }
  }
}
