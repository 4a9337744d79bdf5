// A real OpenID Provider for tests (oidc-provider 9 on 127.0.0.1, port 0) and a small browser
// (fetch with redirect: manual, a cookie jar, and form filling for the provider's dev login pages).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

// oidc-provider ships no type declarations: load it untyped and describe the little used here.
type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;
interface ProviderInstance {
  callback(): RequestListener;
  on(event: string, fn: (...args: unknown[]) => void): void;
}
type ProviderCtor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
const oidcProviderModule = 'oidc-provider';
const { default: Provider } = (await import(oidcProviderModule)) as { default: ProviderCtor };

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export type AccountClaims = Record<string, unknown>;

export interface TestClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  backchannel_logout_uri?: string;
  backchannel_logout_session_required?: boolean;
  token_endpoint_auth_method?: string;
  jwks?: { keys: JWK[] };
}

export interface TestOp {
  readonly issuer: string;
  /** Accounts by login name: what the provider says about each (sub = the login name). */
  readonly accounts: Map<string, AccountClaims>;
  /** Starts serving with these clients (requests made before wait for it). */
  configure(clients: TestClient[], opts?: { extraClaims?: string[] }): void;
  /** Replaces the signing key (JWKS rotation): new tokens are signed with a new kid. */
  rotateKey(): Promise<void>;
  /** Signs a JWT with the provider's current key (for logout tokens and forged ID tokens). */
  sign(payload: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /** Makes the provider unreachable (every request gets a 503) or serves again. */
  setDown(down: boolean): void;
  readonly requests: string[];
  /** Errors the provider met calling back-channel logout URIs. */
  readonly backchannelErrors: string[];
  /** Rewrites the token endpoint's JSON answers (forged ID tokens); undefined = untouched. */
  tamperToken: ((json: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>) | undefined;
}

interface SigningKey {
  privateJwk: JWK;
  privateKey: CryptoKey;
  kid: string;
}

async function newKey(n: number): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `k${n}-${Math.random().toString(36).slice(2, 8)}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateJwk, privateKey: privateKey as CryptoKey, kid };
}

export async function startTestOp(t: Teardown): Promise<TestOp> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const accounts = new Map<string, AccountClaims>();
  const keys: SigningKey[] = [await newKey(1)];
  let handler: RequestListener | undefined;
  let waiting: (() => void)[] = [];
  let down = false;
  let clients: TestClient[] = [];
  let extraClaims: string[] = [];
  const requests: string[] = [];
  const backchannelErrors: string[] = [];

  const build = () => {
    const provider = new Provider(issuer, {
      clients,
      jwks: { keys: keys.map((k) => k.privateJwk) },
      cookies: { keys: ['test-cookie-key-0123456789abcdef0123'] },
      pkce: { required: () => true },
      conformIdTokenClaims: false,
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'], groups: ['groups'], extra: ['hd', 'tid', 'realm_access', 'amr_hint', ...extraClaims] },
      scopes: ['openid', 'email', 'profile', 'groups', 'extra', 'offline_access'],
      features: {
        devInteractions: { enabled: true },
        rpInitiatedLogout: { enabled: true },
        backchannelLogout: { enabled: true },
      },
      findAccount: (_ctx: unknown, id: string) => {
        const claims = accounts.get(id) ?? { email: `${id}@example.test`, email_verified: true, preferred_username: id };
        return { accountId: id, claims: () => ({ sub: id, ...claims }) };
      },
      // Consent is asked once per client and answered by the fake browser's form filling.
      // Its outgoing calls (back-channel logout) refuse loopback addresses as SSRF protection; the
      // gateway under test is on 127.0.0.1, so they go through the plain global fetch here.
      fetch: (url: string, options: RequestInit & { dispatcher?: unknown }) => {
        delete options.dispatcher;
        return globalThis.fetch(url, options);
      },
    });
    provider.on('server_error', () => undefined);
    provider.on('backchannel.error', (...args: unknown[]) => { backchannelErrors.push(String(args[1])); });
    handler = provider.callback();
    for (const w of waiting) w();
    waiting = [];
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method ?? 'GET'} ${req.url ?? ''}`);
    if (down) {
      res.writeHead(503).end();
      return;
    }
    const tamper = op.tamperToken;
    if (tamper !== undefined && req.method === 'POST' && req.url === '/token') {
      // Koa answers with one res.end(body): swap the body before it leaves.
      const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
      (res as unknown as { end: (chunk?: unknown) => void }).end = (chunk?: unknown) => {
        void (async () => {
          const json = JSON.parse(String(chunk)) as Record<string, unknown>;
          const body = JSON.stringify(await tamper(json));
          if (!res.headersSent) res.setHeader('content-length', Buffer.byteLength(body));
          end(body);
        })();
      };
    }
    if (handler) return handler(req, res);
    waiting.push(() => handler?.(req, res));
  });
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const op: TestOp = {
    tamperToken: undefined,
    issuer,
    accounts,
    requests,
    backchannelErrors,
    configure(c, opts) {
      clients = c;
      extraClaims = opts?.extraClaims ?? [];
      build();
    },
    async rotateKey() {
      keys.unshift(await newKey(keys.length + 1));
      keys.length = 1; // the old key is gone from the JWKS
      build();
    },
    async sign(payload, header = {}) {
      const k = keys[0] as SigningKey;
      return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: k.kid, ...header }).sign(k.privateKey);
    },
    setDown(d) {
      down = d;
    },
  };
  return op;
}

/** A cookie jar as browsers keep one for 127.0.0.1: by name and path, ignoring the port. */
export class CookieJar {
  readonly cookies = new Map<string, { value: string; path: string }>();

  store(setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const path = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a));
      const key = `${name};${path}`;
      if (expired || value === '') this.cookies.delete(key);
      else this.cookies.set(key, { value, path });
    }
  }

  header(url: string): string {
    const path = new URL(url).pathname;
    const out: string[] = [];
    for (const [key, c] of this.cookies) if (path.startsWith(c.path.replace(/\/$/, '')) || c.path === '/') out.push(`${key.split(';')[0]}=${c.value}`);
    return out.join('; ');
  }

  get(name: string): string | undefined {
    for (const [key, c] of this.cookies) if (key.split(';')[0] === name) return c.value;
    return undefined;
  }
}

export interface Hop {
  url: string;
  status: number;
  location: string | undefined;
  body: string;
  headers: Headers;
}

/** One request as the browser makes it (cookies from the jar, none followed). */
export async function browse(jar: CookieJar, url: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Hop> {
  const cookie = jar.header(url);
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers: { accept: 'text/html', ...(cookie ? { cookie } : {}), ...(init.headers ?? {}) },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  jar.store(res.headers.getSetCookie());
  const location = res.headers.get('location') ?? undefined;
  return { url, status: res.status, location: location !== undefined ? new URL(location, url).toString() : undefined, body: await res.text(), headers: res.headers };
}

/**
 * Follows redirects and fills the provider's login and consent forms (as `login`) until the next
 * URL satisfies `stop`, which is returned unrequested; or until a non-redirect answer.
 */
export async function signInAtProvider(jar: CookieJar, start: string, login: string, stop: (url: string) => boolean): Promise<{ stoppedAt?: string; last: Hop }> {
  let next: { url: string; method?: string; body?: string; headers?: Record<string, string> } = { url: start };
  for (let i = 0; i < 20; i++) {
    if (stop(next.url)) return { stoppedAt: next.url, last: { url: next.url, status: 0, location: undefined, body: '', headers: new Headers() } };
    const hop = await browse(jar, next.url, next);
    if (hop.location !== undefined && hop.status >= 300 && hop.status < 400) {
      next = { url: hop.location };
      continue;
    }
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(hop.body);
    if (hop.status === 200 && form) {
      const fields = new URLSearchParams();
      for (const m of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
        const tag = m[0];
        const name = /name="([^"]+)"/.exec(tag)?.[1];
        if (name === undefined) continue;
        const value = /value="([^"]*)"/.exec(tag)?.[1] ?? '';
        fields.set(name, name === 'login' ? login : name === 'password' ? 'any' : value);
      }
      next = { url: new URL(form[1] as string, hop.url).toString(), method: 'POST', body: fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
      continue;
    }
    return { last: hop };
  }
  throw new Error('too many hops');
}
