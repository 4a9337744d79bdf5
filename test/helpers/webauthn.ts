// A software WebAuthn authenticator (ES256, attestation "none") for tests: it answers the
// gateway's registration and authentication options exactly as a browser would hand a
// RegistrationResponseJSON / AuthenticationResponseJSON over, so the full ceremony runs through
// @simplewebauthn/server without a browser. Knobs let a test misbehave (counter, UV, origin).
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

const b64u = (b: Uint8Array | Buffer): string => Buffer.from(b).toString('base64url');
const sha256 = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0, 0); return b; };

const UP = 0x01;
const UV = 0x04;
const AT = 0x40;

export interface SoftAuthenticatorOptions {
  /** What the browser would put in clientDataJSON.origin. */
  origin: string;
  rpId: string;
  /** Added to the sign counter per assertion; 0 = a synced passkey that always reports 0. */
  counterStep?: number;
  /** The authenticator verifies the user (UV flag). */
  userVerified?: boolean;
  /** credProps.rk as reported at registration. */
  residentKey?: boolean;
}

export class SoftAuthenticator {
  readonly credentialId = randomBytes(32);
  readonly #key: { privateKey: KeyObject; publicKey: KeyObject } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  counter = 0;
  userHandle: string | undefined;
  constructor(readonly opts: SoftAuthenticatorOptions) {}

  get id(): string {
    return b64u(this.credentialId);
  }

  #flags(extra = 0): number {
    return UP | (this.opts.userVerified === false ? 0 : UV) | extra;
  }

  register(options: { challenge: string; user: { id: string } }, origin = this.opts.origin) {
    this.userHandle = options.user.id;
    const jwk = this.#key.publicKey.export({ format: 'jwk' });
    const cose = new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, 'base64url')], [-3, Buffer.from(jwk.y!, 'base64url')]]);
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(this.credentialId.length, 0);
    const authData = Buffer.concat([sha256(this.opts.rpId), Buffer.from([this.#flags(AT)]), u32(this.counter), Buffer.alloc(16), idLen, this.credentialId, Buffer.from(isoCBOR.encode(cose))]);
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]) as never);
    const clientDataJSON = JSON.stringify({ type: 'webauthn.create', challenge: options.challenge, origin, crossOrigin: false });
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key' as const,
      response: { clientDataJSON: b64u(Buffer.from(clientDataJSON)), attestationObject: b64u(attestationObject), transports: ['internal' as const] },
      clientExtensionResults: { credProps: { rk: this.opts.residentKey ?? true } },
    };
  }

  /** An assertion; `counter` overrides the next sign counter (to go backwards). */
  authenticate(options: { challenge: string }, over: { origin?: string; counter?: number } = {}) {
    this.counter = over.counter ?? this.counter + (this.opts.counterStep ?? 1);
    const authenticatorData = Buffer.concat([sha256(this.opts.rpId), Buffer.from([this.#flags()]), u32(this.counter)]);
    const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin: over.origin ?? this.opts.origin, crossOrigin: false }));
    const signature = sign('sha256', Buffer.concat([authenticatorData, sha256(clientDataJSON)]), this.#key.privateKey);
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key' as const,
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authenticatorData), signature: b64u(signature), ...(this.userHandle !== undefined ? { userHandle: this.userHandle } : {}) },
      clientExtensionResults: {},
    };
  }
}
