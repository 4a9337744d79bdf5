// Who may sign in through a provider, and the gateway session it gets (issue 10). Identity is
// keyed on (iss, sub); an email links to a local user only when `linkUsers: email` is set and the
// provider verified the address. Domain rules never look at an unverified address (Google: the
// `hd` claim, not the email suffix). The session never takes the provider's lifetimes.
import type { GatewayContext } from '../context.js';
import { MFA_AMR } from '../jose/claims.js';
import type { NewSession } from '../sessions/types.js';
import type { OidcAuthenticatorConfig } from './presets.js';
import { OidcLoginError, type ProviderIdentity } from './types.js';

/**
 * Budget for the identity headers a session produces (user, email, groups): beyond it the upstream
 * or a proxy in between would refuse or cut the request, so the sign-in is refused with a clear
 * error instead of a silent cut.
 */
export const IDENTITY_HEADER_BUDGET = 8 * 1024;

/** The domain of an address with exactly one `@` (`a@evil.test@corp.test` has none), lower-cased. */
function domainOf(email: string): string | undefined {
  const at = email.indexOf('@');
  if (at <= 0 || at !== email.lastIndexOf('@')) return undefined;
  return email.slice(at + 1).toLowerCase();
}

export async function sessionForIdentity(ctx: Pick<GatewayContext, 'users'>, name: string, cfg: OidcAuthenticatorConfig, id: ProviderIdentity, opts: { hostedDomainClaim: boolean }): Promise<NewSession> {
  const domains = (cfg.allowedDomains ?? []).map((d) => d.toLowerCase());
  if (domains.length > 0) {
    // Google: the hosted domain is the account's organisation; the email suffix proves nothing.
    const domain = opts.hostedDomainClaim ? id.hostedDomain?.toLowerCase() : id.emailVerified && id.email !== undefined ? domainOf(id.email) : undefined;
    if (domain === undefined || !domains.includes(domain)) {
      throw new OidcLoginError('forbidden', 'Accounts of your domain may not sign in here (or your email address is not verified).', 'domain_not_allowed');
    }
  }
  const allowedGroups = cfg.allowedGroups ?? [];
  if (allowedGroups.length > 0 && !allowedGroups.some((g) => id.groups.includes(g))) {
    throw new OidcLoginError('forbidden', 'Your account is not in a group that may sign in here.', 'group_not_allowed');
  }

  let user = id.user;
  let groups = [...id.groups];
  let email = id.emailVerified ? id.email : undefined;
  let linked = false;
  if (cfg.linkUsers === 'email' && id.emailVerified && id.email !== undefined) {
    const local = await ctx.users.lookup(id.email);
    if (local !== undefined && local.email?.toLowerCase() === id.email.toLowerCase()) {
      if (local.disabled) throw new OidcLoginError('forbidden', 'This account is disabled.', 'user_disabled');
      user = local.username;
      groups = [...new Set([...local.groups, ...groups])];
      email = local.email;
      linked = true;
    }
  }

  const headerBytes = Buffer.byteLength(user) + Buffer.byteLength(email ?? '') + Buffer.byteLength(groups.join(','));
  if (headerBytes > IDENTITY_HEADER_BUDGET) {
    throw new OidcLoginError('forbidden', `Your account has too many groups to pass on (${groups.length}). Ask your administrator to limit the groups sent for this application.`, 'identity_too_large');
  }
  // An IdP's MFA counts only when this provider is trusted to report it.
  const mfa = cfg.trustProviderMfa === true && id.amr.some((a) => MFA_AMR.has(a));
  return {
    user,
    email,
    groups,
    method: `oidc:${name}`,
    amr: id.amr.length > 0 ? [...id.amr, 'fed'] : ['fed'],
    mfa,
    authTime: id.authTime,
    oidc: { provider: name, sub: id.sub, sid: id.sid, iss: id.iss, acr: id.acr, idToken: id.idToken, ...(linked ? { linked } : {}) },
  };
}
