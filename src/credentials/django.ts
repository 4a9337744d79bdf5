// Django's own signing, exactly as django.core.signing and django.contrib.auth do it (SPEC 3.2),
// so the gateway can read what a running Django site issued: signed session data (3.1+), the
// pre-3.1 `base64(hash:json)` session format, and the session auth hash that ties a session to
// the user's current password hash. Every comparison is constant time; every key in
// `django.secretKey` is tried (the first is SECRET_KEY, the rest SECRET_KEY_FALLBACKS), with
// sha256 and the legacy sha1 (Django 3.1/3.2 DEFAULT_HASHING_ALGORITHM / legacy_algorithm).
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { inflateSync } from 'node:zlib';
import type { Config } from '../config/schema.js';
import { safeEqual } from '../util/secure.js';

type DjangoAlgorithm = 'sha256' | 'sha1';
const ALGORITHMS: readonly DjangoAlgorithm[] = ['sha256', 'sha1'];

/** SessionBase.key_salt for django.contrib.sessions.backends.db.SessionStore. */
export const SESSION_SALT = 'django.contrib.sessions.SessionStore';
/** SessionBase._hash's key salt (pre-3.1 format): "django.contrib.sessions" + class name, no dot. */
const LEGACY_SESSION_SALT = 'django.contrib.sessionsSessionStore';
/** AbstractBaseUser.get_session_auth_hash's key salt. */
const SESSION_AUTH_HASH_SALT = 'django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash';

/** Session data larger than this (encoded or inflated) is not a session Django wrote for a login. */
const MAX_SESSION_BYTES = 256 * 1024;

/** `django.secretKey` as a list: [SECRET_KEY, ...SECRET_KEY_FALLBACKS]; empty when not configured. */
export function djangoSecretKeys(cfg: Config, configDir: string): string[] {
  const v = cfg.django?.secretKey;
  if (v === undefined) return [];
  // The loader resolves { file } secrets; accept an unresolved one too (as users.ts does).
  const read = (s: string | { file: string }): string => (typeof s === 'string' ? s : readFileSync(resolve(configDir, s.file), 'utf8').trim());
  return (Array.isArray(v) ? v : [v]).map(read);
}

/** django.utils.crypto.salted_hmac: HMAC(key = H(key_salt + secret), value). */
export function saltedHmac(keySalt: string, value: string | Buffer, secret: string, algorithm: DjangoAlgorithm): Buffer {
  const key = createHash(algorithm).update(keySalt + secret, 'utf8').digest();
  return createHmac(algorithm, key).update(value).digest();
}

/** Signer.unsign (any key, sha256 or sha1) then TimestampSigner's timestamp removed; undefined if forged. */
function unsign(signed: string, salt: string, keys: readonly string[]): string | undefined {
  const sep = signed.lastIndexOf(':');
  if (sep <= 0) return undefined;
  const value = signed.slice(0, sep);
  const signature = signed.slice(sep + 1);
  let ok = false;
  for (const key of keys) {
    for (const alg of ALGORITHMS) {
      // base64_hmac: urlsafe base64 without padding.
      if (safeEqual(signature, saltedHmac(`${salt}signer`, value, key, alg).toString('base64url'))) ok = true;
    }
  }
  if (!ok) return undefined;
  const ts = value.lastIndexOf(':');
  return ts < 0 ? undefined : value.slice(0, ts);
}

/** django.core.signing.loads with the JSON serializer (zlib-compressed when prefixed with '.'). */
export function signingLoads(signed: string, salt: string, keys: readonly string[]): unknown {
  const payload = unsign(signed, salt, keys);
  if (payload === undefined) return undefined;
  const compressed = payload.startsWith('.');
  let data = Buffer.from(compressed ? payload.slice(1) : payload, 'base64url');
  if (compressed) data = inflateSync(data, { maxOutputLength: MAX_SESSION_BYTES });
  return JSON.parse(data.toString('utf8'));
}

/** SessionBase._legacy_decode: base64("<hex sha1 salted_hmac>:<json>") as Django < 3.1 wrote it. */
function legacyDecode(sessionData: string, keys: readonly string[]): unknown {
  const raw = Buffer.from(sessionData, 'base64');
  const colon = raw.indexOf(0x3a);
  if (colon <= 0) return undefined;
  const hash = raw.subarray(0, colon).toString('latin1');
  const serialized = raw.subarray(colon + 1);
  let ok = false;
  for (const key of keys) if (safeEqual(hash, saltedHmac(LEGACY_SESSION_SALT, serialized, key, 'sha1').toString('hex'))) ok = true;
  return ok ? JSON.parse(serialized.toString('utf8')) : undefined;
}

export type DecodedSession = { ok: true; data: Readonly<Record<string, unknown>> } | { ok: false };

/**
 * SessionBase.decode: the signed format first, else the pre-3.1 one. Unlike Django, which turns a
 * corrupted session into an empty one, a forged or unreadable session is reported (refused).
 */
export function decodeSessionData(sessionData: string, keys: readonly string[]): DecodedSession {
  if (sessionData.length === 0 || sessionData.length > MAX_SESSION_BYTES || keys.length === 0) return { ok: false };
  let data: unknown;
  try {
    data = signingLoads(sessionData, SESSION_SALT, keys);
    if (data === undefined) data = legacyDecode(sessionData, keys);
  } catch {
    try {
      data = legacyDecode(sessionData, keys);
    } catch {
      data = undefined;
    }
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return { ok: false };
  return { ok: true, data: data as Record<string, unknown> };
}

/**
 * Whether a session's `_auth_user_hash` is the user's get_session_auth_hash() for the CURRENT
 * password hash, under any key and either algorithm (as django.contrib.auth.get_user checks it).
 */
export function sessionAuthHashMatches(sessionHash: string, password: string, keys: readonly string[]): boolean {
  let ok = false;
  for (const key of keys) {
    for (const alg of ALGORITHMS) if (safeEqual(sessionHash, saltedHmac(SESSION_AUTH_HASH_SALT, password, key, alg).toString('hex'))) ok = true;
  }
  return ok;
}
