// Passkeys and security keys (SPEC 6 `/mfa/webauthn/*`) with @simplewebauthn/server. The RP ID
// and the expected origin come from `server.publicUrl` only — never from Host or forwarded
// headers. Challenges are single use (taken from the store) and live 2 minutes. A sign counter
// that goes backwards is refused; one that stays 0 (synced passkeys) is fine. No attestation is
// requested, so no AAGUID allow-list is pretended. Store layout:
//   mfa:webauthn:cred:<sha256(id)>   sealed credential (public key, counter, user, name, times)
//   mfa:webauthn:user:<user>         index of the user's credential ids
//   mfa:webauthn:uid:<user>          the WebAuthn user handle (random, stable per user)
//   mfa:webauthn:chal:<challenge>    what a challenge was issued for (TTL 2 min, taken once)
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { randomBytes } from 'node:crypto';
import type { GatewayContext } from '../context.js';
import { GatewayError } from '../errors.js';
import { sha256Hex } from '../util/secure.js';
import type { MfaKeys } from './sealing.js';

const CHALLENGE_TTL_MS = 2 * 60_000;
const MAX_CREDENTIALS = 20;

const K = {
  cred: (id: string) => `mfa:webauthn:cred:${sha256Hex(id)}`,
  index: (u: string) => `mfa:webauthn:user:${u}`,
  uid: (u: string) => `mfa:webauthn:uid:${u}`,
  challenge: (c: string) => `mfa:webauthn:chal:${sha256Hex(c)}`,
};

interface StoredCredential {
  id: string;
  user: string;
  publicKey: string;
  counter: number;
  transports: AuthenticatorTransportFuture[];
  name: string;
  /** credProps.rk as the browser reported it (undefined: not reported). */
  discoverable: boolean | null;
  createdAt: number;
  lastUsedAt: number | null;
}

/** What the API and the account page show of a credential: never key material. */
export interface CredentialView {
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
}

export type ChallengePurpose = 'register' | 'second-factor' | 'passkey-login';

interface ChallengeRecord {
  purpose: ChallengePurpose;
  /** The session the ceremony belongs to (absent for a password-less sign-in). */
  session?: string;
  user?: string;
}

type Ctx = Pick<GatewayContext, 'config' | 'store' | 'publicUrl' | 'log'>;

export class WebAuthnCredentials {
  readonly #ctx: Ctx;
  readonly #keys: () => Promise<MfaKeys>;
  readonly #now: () => number;

  constructor(ctx: Ctx, keys: () => Promise<MfaKeys>, now: () => number) {
    this.#ctx = ctx;
    this.#keys = keys;
    this.#now = now;
  }

  get rpId(): string {
    return this.#ctx.publicUrl.hostname;
  }

  get origin(): string {
    return this.#ctx.publicUrl.origin;
  }

  get #userVerification(): 'required' | 'preferred' | 'discouraged' {
    return (this.#ctx.config.mfa?.webauthn?.userVerification ?? 'preferred') as 'required' | 'preferred' | 'discouraged';
  }

  get passkeyLogin(): boolean {
    return this.#ctx.config.mfa?.passkeyLogin === true;
  }

  async count(user: string): Promise<number> {
    return (await this.#ctx.store.indexMembers(K.index(user))).length;
  }

  async list(user: string): Promise<CredentialView[]> {
    const ids = await this.#ctx.store.indexMembers(K.index(user));
    const creds = await Promise.all(ids.map((id) => this.#load(id)));
    return creds
      .filter((c): c is { record: StoredCredential; raw: string } => c !== undefined && c.record.user === user)
      .map(({ record }) => ({ id: record.id, name: record.name, createdAt: new Date(record.createdAt).toISOString(), lastUsedAt: record.lastUsedAt === null ? null : new Date(record.lastUsedAt).toISOString() }))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async remove(user: string, id: string): Promise<boolean> {
    const found = await this.#load(id);
    if (found === undefined || found.record.user !== user) return false;
    await Promise.all([this.#ctx.store.delete(K.cred(id)), this.#ctx.store.indexRemove(K.index(user), id)]);
    return true;
  }

  async removeAll(user: string): Promise<number> {
    const ids = await this.#ctx.store.indexMembers(K.index(user));
    let n = 0;
    for (const id of ids) if (await this.remove(user, id)) n++;
    await this.#ctx.store.delete(K.index(user));
    return n;
  }

  // ---- Registration -----------------------------------------------------------------------

  async registrationOptions(user: string, sessionId: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const ids = await this.#ctx.store.indexMembers(K.index(user));
    if (ids.length >= MAX_CREDENTIALS) throw new GatewayError('bad_request', `At most ${MAX_CREDENTIALS} credentials per user.`);
    const existing = (await Promise.all(ids.map((id) => this.#load(id)))).filter((c) => c !== undefined);
    const options = await generateRegistrationOptions({
      rpName: this.#ctx.config.mfa?.webauthn?.rpName ?? 'authgate',
      rpID: this.rpId,
      userName: user,
      userID: Buffer.from(await this.#userHandle(user), 'base64url'),
      attestationType: 'none',
      excludeCredentials: existing.map(({ record }) => ({ id: record.id, transports: record.transports })),
      authenticatorSelection: {
        // Password-less sign-in needs a credential the authenticator can find by itself.
        residentKey: this.passkeyLogin ? 'required' : 'preferred',
        userVerification: this.#userVerification,
      },
      extensions: { credProps: true },
    });
    await this.#saveChallenge(options.challenge, { purpose: 'register', session: sessionId, user });
    return options;
  }

  /** Verifies a registration response for the session that asked for the options. */
  async register(user: string, sessionId: string, response: RegistrationResponseJSON, name: string | undefined): Promise<CredentialView> {
    const challenge = await this.#takeChallenge(response.response?.clientDataJSON);
    if (challenge === undefined || challenge.record.purpose !== 'register' || challenge.record.session !== sessionId || challenge.record.user !== user) {
      throw new GatewayError('bad_request', 'Unknown or expired challenge; start again.');
    }
    let verification;
    try {
      verification = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge.value,
        expectedOrigin: this.origin,
        expectedRPID: this.rpId,
        requireUserVerification: this.#userVerification === 'required',
      });
    } catch {
      throw new GatewayError('bad_request', 'The registration response is not valid.');
    }
    if (!verification.verified) throw new GatewayError('bad_request', 'The registration response is not valid.');
    const info = verification.registrationInfo;
    const rk = response.clientExtensionResults?.credProps?.rk;
    const record: StoredCredential = {
      id: info.credential.id,
      user,
      publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
      counter: info.credential.counter,
      transports: info.credential.transports ?? response.response.transports ?? [],
      name: cleanName(name) ?? `Passkey ${new Date(this.#now()).toISOString().slice(0, 10)}`,
      discoverable: typeof rk === 'boolean' ? rk : null,
      createdAt: this.#now(),
      lastUsedAt: null,
    };
    const keys = await this.#keys();
    // setIfAbsent: a credential id already registered (to anybody) is never overwritten.
    if (!(await this.#ctx.store.setIfAbsent(K.cred(record.id), keys.seal(JSON.stringify(record), `webauthn:${record.id}`)))) {
      throw new GatewayError('bad_request', 'This credential is already registered.');
    }
    await this.#ctx.store.indexAdd(K.index(user), record.id);
    return { id: record.id, name: record.name, createdAt: new Date(record.createdAt).toISOString(), lastUsedAt: null };
  }

  // ---- Authentication ---------------------------------------------------------------------

  /** Options for a second factor (the user's credentials) or, without a user, a passkey sign-in. */
  async authenticationOptions(target: { user: string; sessionId: string } | undefined): Promise<PublicKeyCredentialRequestOptionsJSON> {
    let allow: { id: string; transports: AuthenticatorTransportFuture[] }[] | undefined;
    if (target !== undefined) {
      const ids = await this.#ctx.store.indexMembers(K.index(target.user));
      const creds = (await Promise.all(ids.map((id) => this.#load(id)))).filter((c) => c !== undefined);
      allow = creds.map(({ record }) => ({ id: record.id, transports: record.transports }));
    }
    const options = await generateAuthenticationOptions({
      rpID: this.rpId,
      ...(allow !== undefined ? { allowCredentials: allow } : {}),
      // A password-less sign-in stands for two factors only with user verification.
      userVerification: target === undefined ? 'required' : this.#userVerification,
    });
    await this.#saveChallenge(options.challenge, target === undefined ? { purpose: 'passkey-login' } : { purpose: 'second-factor', session: target.sessionId, user: target.user });
    return options;
  }

  /**
   * Verifies an assertion. `expected` says for whom (second factor) or undefined (password-less:
   * the credential names the user, and its user handle must match). Returns the user and whether
   * the authenticator verified the user, or undefined for any failure. The account the failure
   * counts against is returned too (an unknown credential counts against a stand-in).
   */
  async authenticate(response: AuthenticationResponseJSON, expected: { user: string; sessionId: string } | undefined): Promise<{ ok: true; user: string; userVerified: boolean } | { ok: false; account: string | undefined }> {
    const challenge = await this.#takeChallenge(response.response?.clientDataJSON);
    const purpose: ChallengePurpose = expected === undefined ? 'passkey-login' : 'second-factor';
    if (challenge === undefined || challenge.record.purpose !== purpose || (expected !== undefined && (challenge.record.session !== expected.sessionId || challenge.record.user !== expected.user))) {
      return { ok: false, account: expected?.user };
    }
    const id = typeof response.id === 'string' ? response.id : '';
    const found = id === '' ? undefined : await this.#load(id);
    const account = expected?.user ?? found?.record.user;
    if (found === undefined || (expected !== undefined && found.record.user !== expected.user)) return { ok: false, account };
    const record = found.record;
    if (expected === undefined) {
      // Password-less: only a discoverable credential, and the user handle must be this user's.
      const handle = response.response?.userHandle;
      if (typeof handle !== 'string' || handle !== (await this.#ctx.store.get(K.uid(record.user))) || record.discoverable === false) return { ok: false, account };
    }
    let verification;
    try {
      verification = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge.value,
        expectedOrigin: this.origin,
        expectedRPID: this.rpId,
        credential: { id: record.id, publicKey: Buffer.from(record.publicKey, 'base64url'), counter: record.counter, transports: record.transports },
        requireUserVerification: expected === undefined || this.#userVerification === 'required',
      });
    } catch {
      // Includes a sign counter that did not move forward (a cloned authenticator).
      return { ok: false, account };
    }
    if (!verification.verified) return { ok: false, account };
    // Counter and last use, by compare-and-set: a concurrent assertion with the same counter loses.
    const keys = await this.#keys();
    const next: StoredCredential = { ...record, counter: verification.authenticationInfo.newCounter, lastUsedAt: this.#now() };
    if (!(await this.#ctx.store.compareAndSet(K.cred(record.id), found.raw, keys.seal(JSON.stringify(next), `webauthn:${record.id}`)))) {
      return { ok: false, account };
    }
    return { ok: true, user: record.user, userVerified: verification.authenticationInfo.userVerified };
  }

  async #userHandle(user: string): Promise<string> {
    await this.#ctx.store.setIfAbsent(K.uid(user), randomBytes(16).toString('base64url'));
    const handle = await this.#ctx.store.get(K.uid(user));
    if (handle === null) throw new GatewayError('store_unavailable');
    return handle;
  }

  async #saveChallenge(challenge: string, record: ChallengeRecord): Promise<void> {
    await this.#ctx.store.set(K.challenge(challenge), JSON.stringify(record), CHALLENGE_TTL_MS);
  }

  /** The challenge inside clientDataJSON, taken from the store (single use). */
  async #takeChallenge(clientDataJSON: unknown): Promise<{ value: string; record: ChallengeRecord } | undefined> {
    if (typeof clientDataJSON !== 'string' || clientDataJSON.length > 4096) return undefined;
    let value: unknown;
    try {
      value = (JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown }).challenge;
    } catch {
      return undefined;
    }
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) return undefined;
    const json = await this.#ctx.store.take(K.challenge(value));
    if (json === null) return undefined;
    return { value, record: JSON.parse(json) as ChallengeRecord };
  }

  async #load(id: string): Promise<{ record: StoredCredential; raw: string } | undefined> {
    if (id.length === 0 || id.length > 1400) return undefined;
    const raw = await this.#ctx.store.get(K.cred(id));
    if (raw === null) return undefined;
    const json = (await this.#keys()).open(raw, `webauthn:${id}`);
    if (json === undefined) return undefined;
    return { record: JSON.parse(json) as StoredCredential, raw };
  }
}

function cleanName(name: string | undefined): string | undefined {
  const n = name?.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return n === undefined || n === '' ? undefined : n.slice(0, 64);
}
