// The gateway's JWT signing keys (SPEC 3 `signing`): the first key signs, every key verifies, so a
// new key can be put first while tokens signed by the old one stay valid until they expire.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createSigner } from 'fast-jwt';
import type { Config, Secret } from '../config/schema.js';
import type { PublicJwk, SigningKeys } from '../context.js';

export type SigningAlg = SigningKeys['active']['alg'];

/** The part of a logger key loading uses. */
export interface KeysLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface LoadSigningKeysOptions {
  /** Relative key files resolve against the config file's directory. */
  configDir: string;
  log: KeysLogger;
}

/** Used when the config has no `signing` section. */
export const DEFAULT_SIGNING_KEY = { kid: 'k1', alg: 'EdDSA', privateKey: { file: './data/k1.pem' } } as const;

/** Which node:crypto key type (and curve) each signing algorithm needs. */
const KEY_TYPE: Record<SigningAlg, { type: 'ed25519' | 'ec' | 'rsa'; curve?: string }> = {
  EdDSA: { type: 'ed25519' },
  ES256: { type: 'ec', curve: 'prime256v1' },
  RS256: { type: 'rsa' },
};

const MIN_RSA_BITS = 2048;

/** A new private key for `alg` as PKCS#8 PEM (also used by `authgate gen-key`). */
export function generatePrivateKeyPem(alg: SigningAlg): string {
  const pair =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * The PEM for a configured private key. A `{ file }` that does not exist yet is generated and
 * written with mode 0600; a literal string is the PEM itself (the config loader has usually
 * already replaced an existing `{ file }` with its content).
 */
function privateKeyPem(kid: string, alg: SigningAlg, secret: Secret, opts: LoadSigningKeysOptions): string {
  if (typeof secret === 'string') return secret;
  const path = resolve(opts.configDir, secret.file);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`signing key ${kid}: cannot read ${path}: ${(err as Error).message}`);
  }
  const pem = generatePrivateKeyPem(alg);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    // 'wx': when two processes start at once, the second one reads the first one's key.
    writeFileSync(path, pem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path, 'utf8');
    throw new Error(`signing key ${kid}: cannot write ${path}: ${(err as Error).message}`);
  }
  opts.log.info({ kid, alg, path }, 'generated a new signing key');
  return pem;
}

/** Parses the PEM and checks that the key fits the algorithm (never echoes key material). */
function parsePrivateKey(kid: string, alg: SigningAlg, pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error(`signing key ${kid}: not a valid PEM private key`);
  }
  const want = KEY_TYPE[alg];
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType !== want.type || (want.curve !== undefined && details.namedCurve !== want.curve)) {
    throw new Error(`signing key ${kid}: the key does not fit algorithm ${alg}`);
  }
  if (want.type === 'rsa' && (details.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new Error(`signing key ${kid}: RSA keys need at least ${MIN_RSA_BITS} bits`);
  }
  return key;
}

interface LoadedKey {
  kid: string;
  alg: SigningAlg;
  privateKey: KeyObject;
  publicPem: string;
  jwk: PublicJwk;
}

type Signer = (payload: Record<string, unknown>) => string;

export async function loadSigningKeys(cfg: Config['signing'], opts: LoadSigningKeysOptions): Promise<SigningKeys> {
  const configured = cfg?.keys ?? [DEFAULT_SIGNING_KEY];
  const seen = new Set<string>();
  const keys: LoadedKey[] = configured.map((k) => {
    const alg = k.alg as SigningAlg;
    if (seen.has(k.kid)) throw new Error(`signing key ${k.kid}: duplicate kid`);
    seen.add(k.kid);
    const privateKey = parsePrivateKey(k.kid, alg, privateKeyPem(k.kid, alg, k.privateKey, opts));
    const publicKey = createPublicKey(privateKey);
    const exported = publicKey.export({ format: 'jwk' });
    const jwk: PublicJwk = { ...exported, kty: String(exported.kty), kid: k.kid, alg, use: 'sig' };
    return { kid: k.kid, alg, privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), jwk };
  });
  return new KeySet(keys);
}

class KeySet implements SigningKeys {
  readonly active: { kid: string; alg: SigningAlg };
  readonly #byKid: Map<string, LoadedKey>;
  readonly #jwks: { keys: PublicJwk[] };
  readonly #activePem: string;
  /** One signer per `typ` header value: built once, reused for every token. */
  readonly #signers = new Map<string, Signer>();

  constructor(keys: LoadedKey[]) {
    const first = keys[0];
    if (first === undefined) throw new Error('signing: at least one key is required');
    this.active = { kid: first.kid, alg: first.alg };
    this.#byKid = new Map(keys.map((k) => [k.kid, k]));
    this.#jwks = Object.freeze({ keys: keys.map((k) => Object.freeze(k.jwk)) }) as { keys: PublicJwk[] };
    this.#activePem = first.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  sign(payload: Record<string, unknown>, opts: { typ?: string } = {}): string {
    const typ = opts.typ ?? 'JWT';
    let signer = this.#signers.get(typ);
    if (signer === undefined) {
      signer = createSigner({ key: this.#activePem, algorithm: this.active.alg, kid: this.active.kid, header: { alg: this.active.alg, typ } }) as Signer;
      this.#signers.set(typ, signer);
    }
    return signer(payload);
  }

  publicKey(kid: string): { alg: string; pem: string } | undefined {
    const k = this.#byKid.get(kid);
    return k === undefined ? undefined : { alg: k.alg, pem: k.publicPem };
  }

  jwks(): { keys: PublicJwk[] } {
    return this.#jwks;
  }
}
