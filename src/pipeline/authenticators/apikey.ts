// `apikey`: static API keys from the config, stored as `sha256:<hex>`. Mine: the configured
// header (default X-API-Key), or the configured query parameter when one is set (off unless
// set). Exact match only — no trimming, no case folding — compared in constant time on the
// SHA-256 digests (THREATS 15, 16).
import { hash } from 'node:crypto';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import type { GatewayContext } from '../../context.js';
import { digestEqual } from '../../util/secure.js';
import { authenticated, NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Identity } from '../types.js';

export const DEFAULT_APIKEY_HEADER = 'X-API-Key';
/** Longer values are no key of ours: refused without hashing. */
const MAX_KEY_LENGTH = 512;

type KeyEntry = NonNullable<AuthenticatorConfigOf<'apikey'>['keys']>[number];

interface ConfiguredKey {
  readonly digest: Buffer;
  readonly identity: Omit<Identity, 'authTime'>;
}

/** Where the request carries the key: one value, none, or more than one (ambiguous → 400). */
function presentedKey(request: AuthRequest, header: string, queryParam: string | undefined): string | undefined | 'duplicate' {
  const raw = request.headers[header];
  const fromHeader: string[] = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const fromQuery = queryParam !== undefined && request.query !== '' ? new URLSearchParams(request.query).getAll(queryParam) : [];
  const all = [...fromHeader, ...fromQuery];
  if (all.length === 0) return undefined;
  if (all.length > 1) return 'duplicate';
  const value = all[0] as string;
  // Node joins repeated headers it does not know with ", ": a comma means two headers (a key never has one).
  if (fromHeader.length === 1 && value.includes(',')) return 'duplicate';
  return value;
}

export function createApiKeyAuthenticator(name: string, cfg: AuthenticatorConfigOf<'apikey'>, _ctx?: GatewayContext): Authenticator {
  const header = (cfg.header ?? DEFAULT_APIKEY_HEADER).toLowerCase();
  const queryParam = cfg.queryParam;
  const keys = new Map<string, ConfiguredKey>();
  for (const entry of cfg.keys ?? []) {
    const hex = entry.hash.slice('sha256:'.length).toLowerCase();
    if (keys.has(hex)) throw new Error(`authenticators.${name}: key "${entry.id}" has the same hash as another key`);
    keys.set(hex, { digest: Buffer.from(hex, 'hex'), identity: identityFor(name, entry) });
  }

  function authenticate(request: AuthRequest): AuthOutcome {
    const key = presentedKey(request, header, queryParam);
    if (key === undefined) return NOT_MINE;
    if (key === 'duplicate') return rejected('bad_request', 'Duplicate credential headers.');
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) return rejected('invalid_credentials');
    const digest = hash('sha256', key, 'buffer');
    // The map lookup works on the digest (revealing nothing about the key); the final check is constant-time.
    const found = keys.get(digest.toString('hex'));
    if (!found || !digestEqual(digest, found.digest)) return rejected('invalid_credentials');
    return authenticated({ ...found.identity, authTime: Math.floor(Date.now() / 1000) });
  }

  return { name, type: 'apikey', authenticate };
}

function identityFor(name: string, entry: KeyEntry): Omit<Identity, 'authTime'> {
  return Object.freeze({
    user: entry.user,
    email: entry.email,
    groups: Object.freeze([...(entry.groups ?? [])]),
    scopes: Object.freeze([...(entry.scopes ?? [])]),
    method: 'apikey',
    authenticator: name,
    mfa: false,
    amr: Object.freeze(['key']),
    subject: entry.user,
    tokenId: entry.id,
  });
}
