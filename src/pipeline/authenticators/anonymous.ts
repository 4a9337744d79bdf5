// `anonymous`: always answers with the anonymous identity. Routes with `auth: anonymous` still
// get their inbound identity headers stripped; nothing identifying is forwarded.
import type { Authenticator, AuthOutcome } from '../types.js';
import { authenticated } from '../types.js';

export const ANONYMOUS_USER = 'anonymous';

export function createAnonymousAuthenticator(name: string): Authenticator {
  const outcome: AuthOutcome = authenticated(
    Object.freeze({
      user: ANONYMOUS_USER,
      groups: Object.freeze([]),
      scopes: Object.freeze([]),
      method: 'anonymous',
      authenticator: name,
      mfa: false,
      amr: Object.freeze([]),
      authTime: 0,
    }),
  );
  return { name, type: 'anonymous', authenticate: () => outcome };
}
