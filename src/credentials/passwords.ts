// Password hashes (SPEC 3.1): argon2id/argon2i/argon2d PHC strings, bcrypt, and Django's
// pbkdf2_sha256 / pbkdf2_sha1 / scrypt formats, verified as-is. All hashing runs off the event
// loop (libuv pool or napi threads), and every hash's cost parameters are capped so a hostile
// hash cannot be used to stall the gateway.
import { pbkdf2, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify, parseOptions as argon2ParseOptions, type Options as Argon2Options } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';

/** Longer passwords are refused before any hashing (a 1 MB password must not cost CPU). */
export const MAX_PASSWORD_BYTES = 1024;
/** bcrypt only reads the first 72 bytes: longer passwords are refused so prefixes are not equivalent. */
export const BCRYPT_MAX_PASSWORD_BYTES = 72;

/** The policy for new hashes (OWASP's argon2id minimum): m=19456 KiB, t=2, p=1. */
const ARGON2_POLICY: Argon2Options = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

// Caps on the cost parameters a stored hash may ask for (denial of service by a hostile hash).
const ARGON2_MAX_MEMORY_KIB = 262_144; // 256 MiB
const ARGON2_MAX_TIME = 16;
const ARGON2_MAX_PARALLELISM = 16;
const BCRYPT_MAX_COST = 15;
const PBKDF2_MAX_ITERATIONS = 10_000_000;
const SCRYPT_MAX_N = 2 ** 20;
const SCRYPT_MAX_R = 32;
const SCRYPT_MAX_P = 16;
const SCRYPT_MAX_MEMORY = 256 * 1024 * 1024;
const SCRYPT_MAX_WORK = 2 ** 27; // N * r * p

/**
 * An argon2id hash (policy parameters) of a random password nobody knows. Verifying against it
 * costs what a real check costs, so an unknown user answers as slowly as a wrong password.
 */
export const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$Ngu9ASAtm1fXPd4i/T0pgQ$OdMuA7GY1+YdsURFbYrghI2EV+eesdXDvhseJwLn3iY';

export type PasswordHashFormat = 'argon2' | 'bcrypt' | 'pbkdf2_sha256' | 'pbkdf2_sha1' | 'scrypt';

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const DECIMAL = /^[1-9][0-9]{0,9}$/;
const BCRYPT_RE = /^\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}$/;

interface Pbkdf2Hash {
  format: 'pbkdf2_sha256' | 'pbkdf2_sha1';
  digest: 'sha256' | 'sha1';
  iterations: number;
  salt: string;
  expected: Buffer;
}

interface ScryptHash {
  format: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  expected: Buffer;
}

function decodeB64(text: string | undefined, maxBytes: number): Buffer | undefined {
  if (text === undefined || !B64.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length > 0 && bytes.length <= maxBytes ? bytes : undefined;
}

function parsePbkdf2(encoded: string): Pbkdf2Hash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 4) return undefined;
  const [alg, iter, salt, b64] = parts as [string, string, string, string];
  if (alg !== 'pbkdf2_sha256' && alg !== 'pbkdf2_sha1') return undefined;
  if (!DECIMAL.test(iter) || salt.length === 0) return undefined;
  const iterations = Number(iter);
  if (iterations > PBKDF2_MAX_ITERATIONS) return undefined;
  const expected = decodeB64(b64, 64);
  if (!expected) return undefined;
  return { format: alg, digest: alg === 'pbkdf2_sha256' ? 'sha256' : 'sha1', iterations, salt, expected };
}

/** Django's ScryptPasswordHasher: `scrypt$<N>$<salt>$<r>$<p>$<base64 of a 64-byte key>`. */
function parseScrypt(encoded: string): ScryptHash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [, n, salt, r, p, b64] = parts as [string, string, string, string, string, string];
  if (!DECIMAL.test(n) || !DECIMAL.test(r) || !DECIMAL.test(p) || salt.length === 0) return undefined;
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  if (N < 2 || N > SCRYPT_MAX_N || (N & (N - 1)) !== 0) return undefined;
  if (R > SCRYPT_MAX_R || P > SCRYPT_MAX_P || 128 * N * R > SCRYPT_MAX_MEMORY || N * R * P > SCRYPT_MAX_WORK) return undefined;
  const expected = decodeB64(b64, 128);
  if (!expected) return undefined;
  return { format: 'scrypt', N, r: R, p: P, salt, expected };
}

function argon2Acceptable(encoded: string): boolean {
  if (!/^\$argon2(id|i|d)\$/.test(encoded)) return false;
  try {
    const o = argon2ParseOptions(encoded);
    return o.memoryCost <= ARGON2_MAX_MEMORY_KIB && o.timeCost <= ARGON2_MAX_TIME && o.parallelism <= ARGON2_MAX_PARALLELISM;
  } catch {
    return false;
  }
}

function bcryptCost(encoded: string): number | undefined {
  const m = BCRYPT_RE.exec(encoded);
  if (!m) return undefined;
  const cost = Number(m[1]);
  return cost >= 4 && cost <= BCRYPT_MAX_COST ? cost : undefined;
}

/**
 * The format of a stored hash, or undefined when it is not one authgate verifies (or asks for
 * more work than the caps allow). Used to validate users files at load.
 */
export function passwordHashFormat(encoded: string): PasswordHashFormat | undefined {
  if (encoded.startsWith('$argon2')) return argon2Acceptable(encoded) ? 'argon2' : undefined;
  if (encoded.startsWith('$2')) return bcryptCost(encoded) !== undefined ? 'bcrypt' : undefined;
  if (encoded.startsWith('pbkdf2_')) return parsePbkdf2(encoded)?.format;
  if (encoded.startsWith('scrypt$')) return parseScrypt(encoded) ? 'scrypt' : undefined;
  return undefined;
}

function pbkdf2Async(password: string, h: Pbkdf2Hash): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, h.salt, h.iterations, h.expected.length, h.digest, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function scryptAsync(password: string, h: ScryptHash): Promise<Buffer> {
  // OpenSSL needs 128*r*(N+2) bytes for V plus 128*r*p for B; leave a little headroom.
  const options: ScryptOptions = { N: h.N, r: h.r, p: h.p, maxmem: 128 * h.r * (h.N + 2) + 128 * h.r * h.p + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, h.salt, h.expected.length, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function passwordBytes(password: string): number {
  // UTF-8 never uses fewer bytes than UTF-16 code units, so a long string is refused without encoding it.
  return password.length > MAX_PASSWORD_BYTES ? MAX_PASSWORD_BYTES + 1 : Buffer.byteLength(password, 'utf8');
}

/**
 * Whether `password` matches the stored hash `encoded`. Unknown or malformed formats, passwords
 * over MAX_PASSWORD_BYTES, and (for bcrypt) passwords over 72 bytes or containing NUL give false.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (typeof password !== 'string' || typeof encoded !== 'string') return false;
  const bytes = passwordBytes(password);
  if (bytes > MAX_PASSWORD_BYTES) return false;
  try {
    if (encoded.startsWith('$argon2')) {
      return argon2Acceptable(encoded) && (await argon2Verify(encoded, password));
    }
    if (encoded.startsWith('$2')) {
      if (bcryptCost(encoded) === undefined) return false;
      if (bytes > BCRYPT_MAX_PASSWORD_BYTES || password.includes('\0')) return false;
      return await bcrypt.compare(password, encoded);
    }
    if (encoded.startsWith('pbkdf2_')) {
      const h = parsePbkdf2(encoded);
      if (!h) return false;
      return timingSafeEqual(await pbkdf2Async(password, h), h.expected);
    }
    if (encoded.startsWith('scrypt$')) {
      const h = parseScrypt(encoded);
      if (!h) return false;
      return timingSafeEqual(await scryptAsync(password, h), h.expected);
    }
  } catch {
    // A hash the library cannot parse is a hash nobody can log in with.
    return false;
  }
  return false;
}

/** A new argon2id hash with the gateway's policy (m=19456 KiB, t=2, p=1). */
export async function hashPassword(password: string): Promise<string> {
  if (passwordBytes(password) > MAX_PASSWORD_BYTES) throw new Error(`password longer than ${MAX_PASSWORD_BYTES} bytes`);
  if (password.length === 0) throw new Error('empty password');
  // No `algorithm` option: the const enum is `{}` at runtime, and the default is argon2id.
  const encoded = await argon2Hash(password, ARGON2_POLICY);
  if (!encoded.startsWith('$argon2id$')) throw new Error('argon2 did not produce an argon2id hash');
  return encoded;
}

// Dummy hashes shaped like real ones (same algorithm and cost), so the time burnt for an unknown
// user matches the time a known user's hash takes, whatever format the directory uses.
const dummies = new LRUCache<string, string>({ max: 32 });
const pendingDummies = new Set<string>();

function dummyShape(encoded: string): string | undefined {
  if (encoded.startsWith('$argon2')) return argon2Acceptable(encoded) ? encoded.split('$').slice(0, 4).join('$') : undefined;
  if (encoded.startsWith('$2')) return bcryptCost(encoded) !== undefined ? encoded.slice(0, 7) : undefined;
  return undefined;
}

/**
 * A hash with the same algorithm and cost as `encoded` but of an unknown random password, or
 * undefined while one is being prepared (argon2 and bcrypt shapes are computed once, off the
 * request path) or when `encoded` is not a supported hash.
 */
export function dummyHashLike(encoded: string): string | undefined {
  const pb = encoded.startsWith('pbkdf2_') ? parsePbkdf2(encoded) : undefined;
  if (pb) return `${pb.format}$${pb.iterations}$dummysalt$${Buffer.alloc(pb.expected.length).toString('base64')}`;
  const sc = encoded.startsWith('scrypt$') ? parseScrypt(encoded) : undefined;
  if (sc) return `scrypt$${sc.N}$dummysalt$${sc.r}$${sc.p}$${Buffer.alloc(sc.expected.length).toString('base64')}`;
  const shape = dummyShape(encoded);
  if (!shape) return undefined;
  if (shape === DUMMY_HASH.split('$').slice(0, 4).join('$')) return DUMMY_HASH;
  const ready = dummies.get(shape);
  if (ready || pendingDummies.has(shape)) return ready;
  pendingDummies.add(shape);
  const secret = randomBytes(24).toString('base64url');
  const make = shape.startsWith('$argon2')
    ? (() => {
        const o = argon2ParseOptions(encoded);
        return argon2Hash(secret, { algorithm: o.algorithm, version: o.version, memoryCost: o.memoryCost, timeCost: o.timeCost, parallelism: o.parallelism, outputLen: o.outputLen });
      })()
    : bcrypt.hash(secret, bcryptCost(encoded) ?? 10);
  make
    .then((h) => void dummies.set(shape, h))
    .catch(() => undefined)
    .finally(() => pendingDummies.delete(shape));
  return undefined;
}

/**
 * Spend the time of one password check without a real user (THREATS 26): unknown users must
 * not answer faster than wrong passwords. `like` is a real hash whose cost should be matched.
 */
export async function burnPasswordTime(password: string, like?: string): Promise<void> {
  const dummy = (like !== undefined ? dummyHashLike(like) : undefined) ?? DUMMY_HASH;
  await verifyPassword(password, dummy);
}

/**
 * What a hash costs to check, as a key: algorithm and cost parameters (argon2 m/t/p, bcrypt
 * cost, pbkdf2 iterations, scrypt N/r/p), without salt or digest. Undefined for unsupported hashes.
 */
export function hashShape(encoded: string): string | undefined {
  const format = passwordHashFormat(encoded);
  if (format === undefined) return undefined;
  const parts = encoded.split('$');
  if (format === 'argon2') return parts.slice(0, 4).join('$');
  if (format === 'bcrypt') return encoded.slice(0, 7);
  if (format === 'scrypt') return `scrypt$${parts[1]}$${parts[3]}$${parts[4]}`;
  return `${parts[0]}$${parts[1]}`;
}

/**
 * Whether checking `password` against `encoded` runs the full hash (verifyPassword's early
 * refusals — too long, bcrypt's 72 bytes, NUL — answer at once, and their time says nothing of the hash's cost).
 */
export function checksWholeHash(password: string, encoded: string): boolean {
  const bytes = passwordBytes(password);
  if (bytes > MAX_PASSWORD_BYTES) return false;
  if (encoded.startsWith('$2')) return bytes <= BCRYPT_MAX_PASSWORD_BYTES && !password.includes('\0');
  return true;
}
