// Clients of the gateway as an OAuth 2.0 provider (`oauth.clients`, SPEC 3 and 6) and their
// authentication at /oauth/*: HTTP Basic (RFC 6749 2.3.1, id and secret form-urlencoded) or
// `client_id`/`client_secret` in the form body — one method per request (RFC 6749 2.3).
//
// Secrets are stored as password hashes (argon2id, bcrypt, pbkdf2 …); a verified (id, secret)
// pair is remembered under an HMAC so token issuance does not pay for a slow hash every time.
// Uncached verifications are bounded in number, so a flood of wrong secrets cannot queue up
// unbounded hashing work; an unknown client costs as much as a wrong secret. Uncached checks
// also go through the login lockout (account `oauth-client:<id>`, and the caller's address), so
// guessing a client secret is limited like guessing a password (issue 9.12).
import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';
import type { GatewayContext, Lockout } from '../context.js';
import { attemptWithLockout } from '../credentials/lockout.js';
import { audit, type AuditSink } from '../ops/audit.js';
import { burnPasswordTime, verifyPassword } from '../credentials/passwords.js';
import { durationMs } from '../util/duration.js';
import { keyedHash } from '../util/secure.js';

export const DEFAULT_CLIENT_TOKEN_TTL = '10m';
const VERIFIED_CACHE_TTL_MS = 10 * 60_000;
const VERIFIED_CACHE_MAX = 1_000;
const MAX_VERIFICATIONS_IN_FLIGHT = 8;
const MAX_CREDENTIAL_LENGTH = 1024;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

export interface OAuthClient {
  readonly id: string;
  readonly secretHash: string;
  readonly scopes: readonly string[];
  readonly tokenTtlSeconds: number;
}

/** An RFC 6749 5.2 error: what /oauth/* answer with `{error, error_description}`. */
export interface OAuthError {
  readonly status: 400 | 401 | 503;
  readonly error: 'invalid_request' | 'invalid_client' | 'temporarily_unavailable';
  readonly description: string;
}

export type ClientAuthentication =
  | { readonly ok: true; readonly client: OAuthClient }
  | ({ readonly ok: false } & OAuthError)
  /** Too many failed client authentications for this client id or from this address (429 `locked`). */
  | { readonly ok: false; readonly status: 429; readonly error: 'locked'; readonly retryAfterSeconds: number };

interface PresentedCredentials {
  readonly id: string;
  readonly secret: string;
}

const invalidRequest = (description: string): ClientAuthentication => ({ ok: false, status: 400, error: 'invalid_request', description });
const invalidClient = (description = 'Client authentication failed.'): ClientAuthentication => ({ ok: false, status: 401, error: 'invalid_client', description });

/** application/x-www-form-urlencoded decoding of one Basic credential part; undefined when malformed. */
function formDecode(part: string): string | undefined {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** The Basic credentials of an Authorization header: undefined when the scheme is not Basic. */
function basicCredentials(header: string | undefined): PresentedCredentials | 'malformed' | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space <= 0 || header.slice(0, space).toLowerCase() !== 'basic') return undefined;
  const encoded = header.slice(space + 1).trim();
  if (encoded.length > MAX_CREDENTIAL_LENGTH * 3 || !BASE64_RE.test(encoded)) return 'malformed';
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  const id = formDecode(decoded.slice(0, colon));
  const secret = formDecode(decoded.slice(colon + 1));
  return id === undefined || secret === undefined ? 'malformed' : { id, secret };
}

export function clientsFromConfig(config: Pick<Config, 'oauth'>): Map<string, OAuthClient> {
  const out = new Map<string, OAuthClient>();
  for (const c of config.oauth?.clients ?? []) {
    out.set(c.id, { id: c.id, secretHash: c.secretHash, scopes: [...new Set(c.scopes ?? [])], tokenTtlSeconds: Math.max(1, Math.floor(durationMs(c.tokenTtl, DEFAULT_CLIENT_TOKEN_TTL) / 1000)) });
  }
  return out;
}

export interface OAuthClientsOptions {
  /** The hash check (tests count calls through it). */
  readonly verify?: (secret: string, encoded: string) => Promise<boolean>;
  readonly maxInFlight?: number;
}

export class OAuthClients {
  readonly clients: ReadonlyMap<string, OAuthClient>;
  private readonly cacheKey: Buffer;
  private readonly verify: (secret: string, encoded: string) => Promise<boolean>;
  private readonly maxInFlight: number;
  private readonly lockout: Lockout | undefined;
  private readonly sink: AuditSink | undefined;
  private readonly verified = new LRUCache<string, true>({ max: VERIFIED_CACHE_MAX, ttl: VERIFIED_CACHE_TTL_MS });
  private inFlight = 0;

  constructor(
    ctx: { readonly config: Pick<Config, 'oauth'>; readonly cacheKey: GatewayContext['cacheKey']; readonly lockout?: Lockout | undefined } & Partial<AuditSink>,
    options: OAuthClientsOptions = {},
  ) {
    this.lockout = ctx.lockout;
    this.sink = ctx.log === undefined ? undefined : { log: ctx.log, audit: ctx.audit };
    this.clients = clientsFromConfig(ctx.config);
    this.cacheKey = ctx.cacheKey;
    this.verify = options.verify ?? verifyPassword;
    this.maxInFlight = options.maxInFlight ?? MAX_VERIFICATIONS_IN_FLIGHT;
  }

  /**
   * Authenticates the client of a request to /oauth/*, from its headers and (parsed) form body.
   * With `address` (the caller's), uncached checks go through the lockout and a proven (cached)
   * secret is refused while the client is locked. Throws StoreUnavailableError (fail closed).
   */
  async authenticate(headers: IncomingHttpHeaders, body: Readonly<Record<string, unknown>>, address?: string): Promise<ClientAuthentication> {
    const basic = basicCredentials(headers.authorization);
    const formId = Object.hasOwn(body, 'client_id') ? body.client_id : undefined;
    const formSecret = Object.hasOwn(body, 'client_secret') ? body.client_secret : undefined;
    if ((formId !== undefined && typeof formId !== 'string') || (formSecret !== undefined && typeof formSecret !== 'string')) {
      return invalidRequest('client_id and client_secret must be strings.');
    }
    let presented: PresentedCredentials;
    if (basic === 'malformed') return invalidClient('The Basic credentials are malformed.');
    if (basic !== undefined) {
      if (formSecret !== undefined) return invalidRequest('Use one client authentication method, not both.');
      if (formId !== undefined && formId !== basic.id) return invalidRequest('client_id does not match the authenticated client.');
      presented = basic;
    } else {
      if (formId === undefined || formSecret === undefined) return invalidClient('Client authentication is required.');
      presented = { id: formId, secret: formSecret };
    }
    if (presented.id.length === 0 || presented.id.length > MAX_CREDENTIAL_LENGTH || presented.secret.length > MAX_CREDENTIAL_LENGTH) return invalidClient();

    const client = this.clients.get(presented.id);
    const cacheKey = client === undefined ? undefined : keyedHash(this.cacheKey, 'oauth-client', client.id, client.secretHash, presented.secret);
    const account = `oauth-client:${presented.id}`;
    if (client !== undefined && cacheKey !== undefined && this.verified.has(cacheKey)) {
      // A proven secret skips the hash, not the lock: a locked client is locked for everyone, as a locked login is.
      if (this.lockout !== undefined && address !== undefined) {
        const lock = await this.lockout.check(account, address);
        if (lock.locked) return { ok: false, status: 429, error: 'locked', retryAfterSeconds: lock.retryAfterSeconds };
      }
      return { ok: true, client };
    }

    if (this.inFlight >= this.maxInFlight) return { ok: false, status: 503, error: 'temporarily_unavailable', description: 'Too many client authentications in progress; retry shortly.' };
    this.inFlight++;
    try {
      const check = async (): Promise<boolean> => {
        if (client === undefined) {
          await burnPasswordTime(presented.secret);
          return false;
        }
        return this.verify(presented.secret, client.secretHash);
      };
      if (this.lockout !== undefined && address !== undefined) {
        const outcome = await attemptWithLockout(this.lockout, account, address, check);
        if (!outcome.ok && outcome.reason === 'wrong' && outcome.newlyLocked && this.sink) {
          audit(this.sink, 'lockout', { user: presented.id.slice(0, 200), ip: address, method: 'oauth-client', reason: 'max_failures' });
        }
        if (!outcome.ok) return outcome.reason === 'locked' ? { ok: false, status: 429, error: 'locked', retryAfterSeconds: outcome.retryAfterSeconds } : invalidClient();
      } else if (!(await check())) {
        return invalidClient();
      }
    } finally {
      this.inFlight--;
    }
    if (client === undefined || cacheKey === undefined) return invalidClient();
    this.verified.set(cacheKey, true);
    return { ok: true, client };
  }
}
